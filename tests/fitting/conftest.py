"""A small synthetic study fitted once, shared by the tests of the study-level modules."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pandas as pd
import pytest

from flops_fit.fitting.checks.extrapolation import ExtrapolationCheck, extrapolation_check
from flops_fit.fitting.isoflop.approaches import IsoflopFit, fit_isoflop_approaches
from flops_fit.fitting.outputs.predictions import predict
from flops_fit.fitting.runs.prepare import prepare_runs
from flops_fit.fitting.runs.simulated import synthetic_results
from flops_fit.fitting.surface.compute_model import ComputeModel
from flops_fit.fitting.surface.study import SurfaceFit, fit_surface
from flops_fit.parameters.analysis import AnalysisConfig


@dataclass
class Study:
    cfg: AnalysisConfig
    runs: pd.DataFrame
    summary: dict[str, Any]
    isoflop: dict[str, IsoflopFit]
    surface: SurfaceFit
    check: ExtrapolationCheck
    predictions: pd.DataFrame
    curves: pd.DataFrame


@pytest.fixture(scope="session")
def small_study() -> Study:
    """Chinchilla's surface, 5 budgets x 9 sizes, 1 % noise, 200 bootstrap draws."""
    cfg = AnalysisConfig.from_params(
        {"bootstrap": {"draws": 200}, "target_budgets": [1e21, 1e23, 1e25], "curve_points": 12}
    )
    runs, summary = prepare_runs(synthetic_results(noise=0.01, seed=3), cfg)
    isoflop = fit_isoflop_approaches(runs, cfg)
    surface = fit_surface(runs, cfg, ComputeModel.six_nd())
    check = extrapolation_check(runs, cfg, ComputeModel.six_nd(), surface)
    predictions, curves = predict(isoflop, surface, runs, cfg, ComputeModel.six_nd())
    return Study(cfg, runs, summary, isoflop, surface, check, predictions, curves)
