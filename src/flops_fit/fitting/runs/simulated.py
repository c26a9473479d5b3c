"""Results-shaped tables from a known loss surface: ground truth for tests and benchmarks.

L = E + A/N^alpha + B/D^beta with multiplicative log-normal noise, on an IsoFLOP grid: per
budget C, model sizes log-spaced around the true N_opt(C), D = C / (6 N). The columns follow
the `results` table (docs/guides/outputs.md) so the analysis sees what training would write.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd

from flops_fit.fitting.surface.law import CHINCHILLA_APPROACH_3 as CHINCHILLA_TRUTH
from flops_fit.fitting.surface.law import optimal_allocation_6nd, parametric_loss
from flops_fit.planning.flops import compute_6nd, tokens_6nd


def synthetic_results(
    truth: Mapping[str, float] | None = None,
    budgets: Sequence[float] = (1e17, 1e18, 1e19, 1e20, 1e21),
    sizes_per_budget: int = 9,
    span: float = 10.0,
    noise: float = 0.01,
    seed: int = 0,
    centre_bias: float = 1.0,
) -> pd.DataFrame:
    """One row per run: experiment_id, compute_budget, model_size, num_tokens, planned_flops,
    flops_6nd, final_loss, true_loss, status, error_message.

    Sizes run from N_opt/span to N_opt*span (times `centre_bias`) on a log grid.
    """
    truth = dict(truth or CHINCHILLA_TRUTH)
    rng = np.random.default_rng(seed)
    rows: list[dict[str, Any]] = []
    for c in budgets:
        n_opt, _ = optimal_allocation_6nd(c, truth)
        centre = float(n_opt) * centre_bias
        sizes = np.geomspace(centre / span, centre * span, sizes_per_budget)
        for i, n in enumerate(sizes):
            d = tokens_6nd(c, n)
            true = float(parametric_loss(n, d, truth))
            loss = true * float(np.exp(noise * rng.standard_normal())) if noise else true
            rows.append(
                {
                    "experiment_id": f"C{c:.0e}-n{i}",
                    "compute_budget": float(c),
                    "model_size": float(n),
                    "num_tokens": float(d),
                    "planned_flops": float(c),
                    "flops_6nd": float(compute_6nd(n, d)),
                    "final_loss": loss,
                    "true_loss": true,
                    "status": "completed",
                    "error_message": "",
                }
            )
    return pd.DataFrame(rows)
