"""The `optimal_points` table: per budget per approach, the optimum (N, D, loss), whether the
power laws used it, and why not.

Approaches 1-2 list their per-budget optima (`fitting.isoflop.approaches`); Approach 3 lists the
surface's compute-optimal allocation at each budget's own compute under the study's compute
model (`fitting.surface.compute_model`), so its optimum lies on the budget's IsoFLOP curve:
f(N_opt) · D_opt = C.
"""

from __future__ import annotations

import pandas as pd

from flops_fit.fitting.isoflop.approaches import IsoflopFit
from flops_fit.fitting.isoflop.estimators import budget_groups
from flops_fit.fitting.surface.compute_model import ComputeModel, optimal_allocation
from flops_fit.fitting.surface.law import parametric_loss
from flops_fit.fitting.surface.study import SurfaceFit
from flops_fit.schema import ISOFLOP_APPROACHES, OPTIMAL_POINT_COLUMNS


def optimal_points_table(
    isoflop: dict[str, IsoflopFit],
    surface: SurfaceFit,
    runs: pd.DataFrame,
    model: ComputeModel,
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
    fit = surface.params
    if fit is not None:
        for g in budget_groups(runs):
            n, d = optimal_allocation(g.budget, fit, model)
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
