"""Approach 3 over a study: the fit, its bootstrap draws, compute read as 6 N D, warnings."""

from __future__ import annotations

import numpy as np
import pytest

from flops_fit.fitting.analysis_runs import prepare_runs
from flops_fit.fitting.surface_fit import ComputeRatios, fit_surface
from flops_fit.fitting.synthetic import CHINCHILLA_TRUTH, synthetic_results
from flops_fit.parameters.analysis import AnalysisConfig
from flops_fit.schema import SURFACE_KEYS


def test_fit_and_draws_of_the_small_study(small_study):
    surface = small_study.surface
    assert surface.n_runs == 45 and surface.fit.n_runs == 45
    assert set(surface.draws) == set(SURFACE_KEYS)
    assert all(v.shape == (200,) for v in surface.draws.values())
    a_truth = CHINCHILLA_TRUTH["beta"] / (CHINCHILLA_TRUTH["alpha"] + CHINCHILLA_TRUTH["beta"])
    lo, hi = np.nanpercentile(surface.draws["a"], [2.5, 97.5])
    assert lo <= a_truth <= hi
    assert surface.compute_ratios == ComputeRatios({0: 1.0, 1: 1.0, 2: 1.0, 3: 1.0, 4: 1.0}, 1.0)


def test_compute_other_than_6nd_is_read_as_6nd_and_warned_about():
    results = synthetic_results(noise=0.01, seed=1)
    results["planned_flops"] *= 2.0  # the runs' own FLOP count: twice 6 N D
    cfg = AnalysisConfig.from_params({"bootstrap": {"enabled": False}})
    runs, _ = prepare_runs(results, cfg)
    surface = fit_surface(runs, cfg)
    assert surface.compute_ratios.overall == pytest.approx(0.5)
    assert surface.compute_ratios.as_6nd(0, 1e17) == pytest.approx(0.5e17)
    assert "the runs' compute is 2 x 6 N D (median)" in surface.warnings[0]
    assert surface.draws is None


def test_too_few_runs_leave_the_surface_unfitted():
    results = synthetic_results(sizes_per_budget=1, noise=0.01)  # 5 budgets x 1 run
    cfg = AnalysisConfig.from_params({"budgets": {"min_runs": 1}})
    runs, _ = prepare_runs(results, cfg)
    surface = fit_surface(runs, cfg)
    assert surface.fit is None and surface.draws is None
    assert surface.warnings == ["only 5 usable runs: Approach 3 needs at least 6"]
