"""Analysis nodes: thin adapters from the catalog to `flops_fit.fitting.analysis`.

Each node unpacks `params:analysis`, calls one domain function and returns plain data. The
science, and its documentation, live in `flops_fit.fitting`.
"""

from __future__ import annotations

from typing import Any

import pandas as pd

from flops_fit.fitting import analysis as fa


def _cfg(params: dict[str, Any]) -> fa.AnalysisConfig:
    return fa.AnalysisConfig.from_params(params)


def prepare_analysis_runs(
    results: Any,
    analysis_params: dict[str, Any],
) -> tuple[pd.DataFrame, dict[str, Any]]:
    """Map columns, group runs into budgets, leave out failed / non-finite / outlier runs."""
    return fa.prepare_runs(results, _cfg(analysis_params))


def fit_isoflop_power_laws(
    analysis_runs: pd.DataFrame, analysis_params: dict[str, Any]
) -> dict[str, Any]:
    """Approaches 1 and 2: per-budget optima and N_opt, D_opt, L_opt power laws, bootstrapped."""
    return fa.fit_isoflop_approaches(analysis_runs, _cfg(analysis_params))


def fit_parametric_loss_surface(
    analysis_runs: pd.DataFrame, analysis_params: dict[str, Any]
) -> dict[str, Any]:
    """Approach 3: L(N, D) = E + A/N^alpha + B/D^beta by Huber on log-loss, bootstrapped."""
    return fa.fit_surface(analysis_runs, _cfg(analysis_params))


def check_extrapolation_to_largest_budget(
    analysis_runs: pd.DataFrame, analysis_params: dict[str, Any]
) -> dict[str, Any]:
    """Refit without the largest budget and predict its optimum: how far the laws extrapolate."""
    return fa.extrapolation_check(analysis_runs, _cfg(analysis_params))


def tabulate_optimal_points(
    analysis_runs: pd.DataFrame, isoflop_fits: dict[str, Any], parametric_surface: dict[str, Any]
) -> pd.DataFrame:
    """Per budget per approach: optimal N, D, loss, and whether the power-law fits used it."""
    return fa.optimal_points_table(isoflop_fits, parametric_surface, analysis_runs)


def predict_target_budgets(
    isoflop_fits: dict[str, Any],
    parametric_surface: dict[str, Any],
    analysis_runs: pd.DataFrame,
    analysis_params: dict[str, Any],
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """N_opt, D_opt, tokens/param and loss with intervals at the target budgets, and the
    fitted laws with their bands on a grid of budgets (for figures)."""
    return fa.predict(isoflop_fits, parametric_surface, analysis_runs, _cfg(analysis_params))


def summarise_scaling_laws(
    analysis_runs_summary: dict[str, Any],
    analysis_runs: pd.DataFrame,
    isoflop_fits: dict[str, Any],
    parametric_surface: dict[str, Any],
    extrapolation_check: dict[str, Any],
    predictions: pd.DataFrame,
    analysis_params: dict[str, Any],
) -> dict[str, Any]:
    """Every fitted law with intervals, diagnostics, agreement and warnings, as plain JSON."""
    return fa.summarise(
        analysis_runs_summary,
        analysis_runs,
        isoflop_fits,
        parametric_surface,
        extrapolation_check,
        predictions,
        _cfg(analysis_params),
    )
