"""The `optimal_points` table: per budget per approach, the optimum (N, D, loss), whether the
power laws used it, and why not.

Approaches 1-2 list their per-budget optima (`fitting.isoflop_laws`); Approach 3 lists the
surface's compute-optimal allocation at each budget's compute read as 6 N D
(`surface_fit.ComputeRatios`).
"""

from __future__ import annotations

import pandas as pd

from flops_fit.fitting.isoflop import budget_groups
from flops_fit.fitting.isoflop_laws import IsoflopFit
from flops_fit.fitting.surface import optimal_allocation, parametric_loss
from flops_fit.fitting.surface_fit import SurfaceFit
from flops_fit.schema import ISOFLOP_APPROACHES, OPTIMAL_POINT_COLUMNS


def optimal_points_table(
    isoflop: dict[str, IsoflopFit], surface: SurfaceFit, runs: pd.DataFrame
) -> pd.DataFrame:
    """Per budget per approach: the optimum (N, D, loss), whether the fit used it and why not."""
    rows = []
    for approach in ISOFLOP_APPROACHES:
        for pt in isoflop[approach].points:
            rows.append(
                {
                    "approach": approach,
                    "compute_budget": pt.compute_budget,
                    "model_size": pt.model_size,
                    "num_tokens": pt.num_tokens,
                    "loss": pt.loss,
                    "used_in_fit": bool(pt.valid),
                    "reason": pt.reason,
                    **(pt.parabola or {}),
                }
            )
    fit = surface.fit
    if fit is not None:
        for g in budget_groups(runs):
            c6 = surface.compute_ratios.as_6nd(g.budget_id, g.budget)
            n, d = optimal_allocation(c6, fit)
            rows.append(
                {
                    "approach": "approach_3",
                    "compute_budget": g.budget,
                    "model_size": float(n),
                    "num_tokens": float(d),
                    "loss": float(parametric_loss(n, d, fit)),
                    "used_in_fit": True,
                    "reason": "",
                }
            )
    df = pd.DataFrame(rows, columns=list(OPTIMAL_POINT_COLUMNS))
    df["tokens_per_param"] = df["num_tokens"] / df["model_size"]
    df["used_in_fit"] = df["used_in_fit"].astype(bool)
    df["reason"] = df["reason"].fillna("")
    return df
