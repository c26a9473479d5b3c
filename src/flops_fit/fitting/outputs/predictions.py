"""Predictions at the target budgets, and the fitted laws on a grid of budgets (for figures).

For every approach: N_opt, D_opt (and D/N at the targets) and the loss at budgets C, each with
its percentile interval over the bootstrap draws. Approaches 1-2 evaluate their power laws;
Approach 3 its surface's compute-optimal allocation under the study's compute model
(`compute_model.optimal_allocation`, over all draws at once); above the centre of the budgets its
draws also carry the law's own error (`laws.beyond`).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

import numpy as np
import pandas as pd

from flops_fit.fitting.bootstrap import intervals_columns
from flops_fit.fitting.isoflop.approaches import IsoflopFit
from flops_fit.fitting.laws.beyond import LawError
from flops_fit.fitting.surface.compute_model import ComputeModel, optimal_allocation
from flops_fit.fitting.surface.law import parametric_loss
from flops_fit.fitting.surface.study import SurfaceFit
from flops_fit.parameters.analysis import AnalysisConfig
from flops_fit.schema import APPROACHES, CURVE_COLUMNS, LAW_COLUMNS, PREDICTION_COLUMNS

log = logging.getLogger(__name__)

_VALUES = ("model_size", "num_tokens", "loss")


def _isoflop_values(fit: IsoflopFit, compute: np.ndarray):
    """Point values and draws (B, m) of N, D, loss for an Approach 1/2 fit at budgets C."""
    point, samples = {}, {}
    for key, col in LAW_COLUMNS.items():
        law = fit.laws[key]
        if law.coefficient is None:
            point[col] = np.full(compute.shape, np.nan)
            samples[col] = None
            continue
        point[col] = law.coefficient * compute**law.exponent
        if law.coefficient_draws is not None:
            samples[col] = (
                law.coefficient_draws[:, None] * compute[None, :] ** law.exponent_draws[:, None]
            )
        else:
            samples[col] = None
    return point, samples


def surface_values(params: Mapping[str, Any] | None, draws: Mapping[str, Any] | None,
                   law_error: LawError | None, compute: np.ndarray, model: ComputeModel):
    """Point values and draws (B, m) of N, D, loss on the Approach 3 surface at budgets C:
    `params` the answering family's (its `law` key names it), `draws` the bootstrap's, moved
    by `law_error` beyond the fit. The one computation behind predictions.csv and a steered
    study's answer (`study.target`, from the stored documents)."""
    compute = np.asarray(compute, dtype=float)
    if params is None:
        nan = np.full(compute.shape, np.nan)
        return dict.fromkeys(_VALUES, nan), dict.fromkeys(_VALUES)
    n, d = optimal_allocation(compute, params, model)
    point = {"model_size": n, "num_tokens": d, "loss": parametric_loss(n, d, params)}
    if draws is None:
        return point, dict.fromkeys(_VALUES)
    with np.errstate(all="ignore"):
        ns, ds = optimal_allocation(compute, draws, model)
        ls = parametric_loss(ns, ds, draws)
    if law_error is not None:  # beyond the fit, the law's own error as well
        ns, ds, ls = law_error.widen(compute, ns, ls, model)
    return point, {"model_size": ns, "num_tokens": ds, "loss": ls}


def _table(
    approach: str, compute: np.ndarray, point, samples, level: float, tokens_per_param: bool
) -> pd.DataFrame:
    df = pd.DataFrame({"approach": approach, "compute_budget": compute})
    cols = (
        ["model_size", "num_tokens"] + (["tokens_per_param"] if tokens_per_param else []) + ["loss"]
    )
    point = dict(point)
    samples = dict(samples)
    point["tokens_per_param"] = point["num_tokens"] / point["model_size"]
    if samples["model_size"] is not None and samples["num_tokens"] is not None:
        samples["tokens_per_param"] = samples["num_tokens"] / samples["model_size"]
    else:
        samples["tokens_per_param"] = None
    for col in cols:
        df[col] = point[col]
        if samples[col] is not None:
            df[f"{col}_lo"], df[f"{col}_hi"] = intervals_columns(samples[col], level)
        else:
            df[f"{col}_lo"] = df[f"{col}_hi"] = np.nan
    return df


def _approach_table(isoflop, surface, model, approach, compute, level, tokens_per_param):
    if approach == "approach_3":
        point, samples = surface_values(surface.params, surface.draws, surface.law_error,
                                        compute, model)
    else:
        point, samples = _isoflop_values(isoflop[approach], compute)
    return _table(approach, compute, point, samples, level, tokens_per_param)


def predictions_at(
    isoflop: dict[str, IsoflopFit],
    surface: SurfaceFit,
    model: ComputeModel,
    compute: np.ndarray,
    level: float,
    approaches: tuple[str, ...] = APPROACHES,
) -> pd.DataFrame:
    """The predictions table (`PREDICTION_COLUMNS`) of `approaches` at budgets `compute`."""
    compute = np.asarray(compute, dtype=float)
    tables = [_approach_table(isoflop, surface, model, a, compute, level, True)
              for a in approaches]
    return pd.concat(tables, ignore_index=True)[list(PREDICTION_COLUMNS)]


def predict(
    isoflop: dict[str, IsoflopFit],
    surface: SurfaceFit,
    runs: pd.DataFrame,
    cfg: AnalysisConfig,
    model: ComputeModel,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(predictions at the target budgets, scaling-law curves with bands), every approach,
    under the study's compute model `model` (`compute_model.compute_model_of`)."""
    targets = np.array(sorted(cfg.target_budgets), dtype=float)
    used_budgets = runs.loc[runs["used_in_fit"], "budget"].dropna()
    lo = float(used_budgets.min()) if len(used_budgets) else float(targets.min())
    hi = max(float(targets.max()), float(used_budgets.max()) if len(used_budgets) else lo)
    grid = np.logspace(np.log10(lo), np.log10(hi), cfg.curve_points)
    level = cfg.confidence_level
    predictions = predictions_at(isoflop, surface, model, targets, level)
    curves_df = pd.concat(
        [_approach_table(isoflop, surface, model, a, grid, level, False) for a in APPROACHES],
        ignore_index=True,
    )[list(CURVE_COLUMNS)]
    top = predictions[np.isclose(predictions["compute_budget"], targets.max())]
    for _, row in top.iterrows():
        if np.isfinite(row["model_size"]):
            interval = (f"[{row['model_size_lo']:.3g}, {row['model_size_hi']:.3g}]"
                        if np.isfinite(row["model_size_lo"]) and np.isfinite(row["model_size_hi"])
                        else "(no interval)")
            log.info("%s at %.3g FLOPs: N_opt %.3g %s, D_opt %.3g, loss %.4g", row["approach"],
                     row["compute_budget"], row["model_size"], interval, row["num_tokens"],
                     row["loss"])
    return predictions, curves_df
