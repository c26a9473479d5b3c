"""Analysis nodes: thin adapters from the catalog to the steps of `flops_fit.analyse`.

`flops_fit.fitting.api.analyse` is the analysis in one Python call; these nodes are its steps
(`api.STEPS`), one node each, so kedro-viz shows how every output depends on the fits. Each
node takes `params:analysis` as an `AnalysisConfig` (Kedro validates it before any node runs; a
direct call with a plain mapping is validated by `AnalysisConfig.from_params`), calls one step
and returns its result. The fit results travel between nodes as typed objects (memory
datasets); `summarise_scaling_laws` turns them into the `scaling_laws` JSON. A test checks that
the pipeline and `analyse` write the same `scaling_laws.json`.
"""

from __future__ import annotations

from typing import Any

import pandas as pd

from flops_fit.fitting.api import resolve_compute_model
from flops_fit.fitting.checks.extrapolation import ExtrapolationCheck, extrapolation_check
from flops_fit.fitting.isoflop.approaches import IsoflopFit, fit_isoflop_approaches
from flops_fit.fitting.outputs.draws import bootstrap_draws_table
from flops_fit.fitting.outputs.optimal_points import optimal_points_table
from flops_fit.fitting.outputs.predictions import predict
from flops_fit.fitting.outputs.scaling_laws import summarise
from flops_fit.fitting.runs.prepare import prepare_runs
from flops_fit.fitting.surface.compute_model import ComputeModel
from flops_fit.fitting.surface.study import SurfaceFit, fit_surface
from flops_fit.parameters.analysis import AnalysisConfig


def prepare_analysis_runs(
    results: Any, analysis: AnalysisConfig
) -> tuple[pd.DataFrame, dict[str, Any]]:
    """Map columns, group runs into budgets, leave out failed / non-finite / outlier runs."""
    return prepare_runs(results, AnalysisConfig.from_params(analysis))


def describe_compute_model(analysis_runs: pd.DataFrame, analysis: AnalysisConfig) -> ComputeModel:
    """C = f(N) D: the study's compute per unit of D as a function of N (`analysis.compute_model`:
    its plan's flops_per_token, 6 N, or each run's C / D), on which Approach 3's compute-optimal
    allocation is solved."""
    return resolve_compute_model(analysis_runs, AnalysisConfig.from_params(analysis).compute_model)


def fit_isoflop_power_laws(
    analysis_runs: pd.DataFrame, analysis: AnalysisConfig
) -> dict[str, IsoflopFit]:
    """Approaches 1 and 2: per-budget optima and N_opt, D_opt, L_opt power laws, bootstrapped."""
    return fit_isoflop_approaches(analysis_runs, AnalysisConfig.from_params(analysis))


def fit_parametric_loss_surface(
    analysis_runs: pd.DataFrame, compute_model: ComputeModel, analysis: AnalysisConfig
) -> SurfaceFit:
    """Approach 3: a scaling law L(N, D) (Chinchilla's form, or the family analysis.law picks)
    by Huber on log-loss, bootstrapped, with its error beyond the fit (N_opt's under the
    study's compute model)."""
    return fit_surface(analysis_runs, AnalysisConfig.from_params(analysis), compute_model)


def check_extrapolation_to_largest_budget(
    analysis_runs: pd.DataFrame,
    compute_model: ComputeModel,
    parametric_surface: SurfaceFit,
    analysis: AnalysisConfig,
) -> ExtrapolationCheck:
    """Refit without the largest budget and predict its optimum: how far the laws extrapolate
    (the law families refitted from the full fits, not from their start grids)."""
    return extrapolation_check(
        analysis_runs, AnalysisConfig.from_params(analysis), compute_model, parametric_surface
    )


def tabulate_optimal_points(
    analysis_runs: pd.DataFrame,
    isoflop_fits: dict[str, IsoflopFit],
    parametric_surface: SurfaceFit,
    compute_model: ComputeModel,
) -> pd.DataFrame:
    """Per budget per approach: optimal N, D, loss, and whether the power-law fits used it."""
    return optimal_points_table(isoflop_fits, parametric_surface, analysis_runs, compute_model)


def predict_target_budgets(
    isoflop_fits: dict[str, IsoflopFit],
    parametric_surface: SurfaceFit,
    analysis_runs: pd.DataFrame,
    compute_model: ComputeModel,
    analysis: AnalysisConfig,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """N_opt, D_opt, tokens/param and loss with intervals at the target budgets, and the
    fitted laws with their bands on a grid of budgets (for figures)."""
    return predict(
        isoflop_fits,
        parametric_surface,
        analysis_runs,
        AnalysisConfig.from_params(analysis),
        compute_model,
    )


def summarise_scaling_laws(
    analysis_runs_summary: dict[str, Any],
    analysis_runs: pd.DataFrame,
    isoflop_fits: dict[str, IsoflopFit],
    parametric_surface: SurfaceFit,
    extrapolation_check: ExtrapolationCheck,
    predictions: pd.DataFrame,
    compute_model: ComputeModel,
    analysis: AnalysisConfig,
) -> dict[str, Any]:
    """Every fitted law with intervals, diagnostics, agreement and warnings, as plain JSON."""
    return summarise(
        analysis_runs_summary,
        analysis_runs,
        isoflop_fits,
        parametric_surface,
        extrapolation_check,
        predictions,
        AnalysisConfig.from_params(analysis),
        compute_model,
    )


def tabulate_bootstrap_draws(
    isoflop_fits: dict[str, IsoflopFit], parametric_surface: SurfaceFit
) -> pd.DataFrame:
    """One row per bootstrap draw of Approaches 2 and 3: what every interval is a percentile of."""
    return bootstrap_draws_table(isoflop_fits, parametric_surface)
