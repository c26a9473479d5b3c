"""Results-shaped tables from a known loss surface: ground truth for tests and benchmarks.

A law family's surface (`fitting.laws.families`; Chinchilla's L = E + A/N^alpha + B/D^beta by
default) with multiplicative log-normal noise, on an IsoFLOP grid: per budget C, model sizes
log-spaced around the true N_opt(C), D = C / (6 N). The columns follow the `results` table
(docs/guides/outputs.md) so the analysis sees what training would write.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd

from flops_fit.fitting.laws.families import DEFAULT_LAW
from flops_fit.fitting.surface.compute_model import ComputeModel, allocation_of_family
from flops_fit.fitting.surface.law import CHINCHILLA_APPROACH_3 as CHINCHILLA_TRUTH
from flops_fit.fitting.surface.law import loss_of_family
from flops_fit.planning.flops import compute_6nd, tokens_6nd

#: one truth per law family (its named parameters), each with losses of a language model's
#: order over 1e17-1e21 FLOPs: Chinchilla's is Hoffmann et al.'s Approach 3; Kaplan's is
#: Kaplan et al.'s (alpha_N 0.076, alpha_D 0.095, N_c 8.8e13, D_c 5.4e13); the interaction
#: term is a seventh of the optimal loss at 1e19 FLOPs (0.39 of 2.69); the saturating law has
#: a classifier's plateau ln 10 and falls from 1.7 to 0.6 over the budgets
FAMILY_TRUTHS: dict[str, dict[str, float]] = {
    "chinchilla": dict(CHINCHILLA_TRUTH),
    "kaplan": {"A": 8.8e13 ** (0.076 / 0.095), "B": 5.4e13, "alpha": 0.076 / 0.095,
               "q": 0.095},
    "interaction": {"E": 1.5, "A": 300.0, "B": 400.0, "F": 3.0e5, "alpha": 0.35, "beta": 0.3},
    "saturating": {"A": 3000.0, "B": 1000.0, "alpha": 0.4, "beta": 0.3, "L_max": 2.3026,
                   "k": 2.0},
}


def synthetic_results(
    truth: Mapping[str, float] | None = None,
    budgets: Sequence[float] = (1e17, 1e18, 1e19, 1e20, 1e21),
    sizes_per_budget: int = 9,
    span: float = 10.0,
    noise: float = 0.01,
    seed: int = 0,
    centre_bias: float = 1.0,
    law: str = DEFAULT_LAW,
) -> pd.DataFrame:
    """One row per run: experiment_id, compute_budget, model_size, num_tokens, planned_flops,
    flops_6nd, final_loss, true_loss, status, error_message.

    `truth` holds family `law`'s named parameters (default: `FAMILY_TRUTHS[law]`). Sizes run
    from N_opt/span to N_opt*span (times `centre_bias`) on a log grid.
    """
    truth = dict(truth or FAMILY_TRUTHS[law])
    rng = np.random.default_rng(seed)
    rows: list[dict[str, Any]] = []
    for c in budgets:
        n_opt, _ = allocation_of_family(law, c, truth, ComputeModel.six_nd())
        centre = float(n_opt) * centre_bias
        sizes = np.geomspace(centre / span, centre * span, sizes_per_budget)
        for i, n in enumerate(sizes):
            d = tokens_6nd(c, n)
            true = float(loss_of_family(law, n, d, truth))
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
