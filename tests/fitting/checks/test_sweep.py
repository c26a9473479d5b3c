"""Sweep diagnostics, the recommended approach and the headline."""

from __future__ import annotations

import logging
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from flops_fit.fitting.checks.recommend import recommend_approach
from flops_fit.fitting.checks.sweep import (
    budget_checks,
    identification,
    loss_check,
    surface_misfit,
    sweep_diagnostics,
)
from flops_fit.fitting.isoflop.approaches import fit_isoflop_approaches
from flops_fit.fitting.runs.prepare import prepare_runs
from flops_fit.fitting.runs.simulated import synthetic_results
from flops_fit.fitting.surface.compute_model import ComputeModel
from flops_fit.fitting.surface.study import SurfaceFit, fit_surface
from flops_fit.parameters.analysis import AnalysisConfig

CFG = AnalysisConfig.from_params({"bootstrap": {"draws": 100}, "outliers": {"enabled": False}})


def fitted(table):
    runs, _ = prepare_runs(table, CFG)
    return runs, fit_isoflop_approaches(runs, CFG), fit_surface(runs, CFG, ComputeModel.six_nd())


@pytest.fixture(scope="module")
def centred():
    return fitted(synthetic_results(noise=0.005, seed=1))


def test_a_centred_sweep_raises_nothing(centred):
    runs, isoflop, surface = centred
    doc = sweep_diagnostics(runs, isoflop, surface, ComputeModel.six_nd(), 0.95, "final_loss")
    assert doc["warnings"] == []
    assert doc["identified"] is True and doc["misfit"] is False
    assert doc["not_a_loss_warning"] is None and doc["downward_parabolas"] == 0
    for row in doc["budgets"]:
        assert 0.8 < row["centre_over_optimum"] < 1.25
        assert not row["off_centre"] and not row["optimum_at_edge"]


def test_an_off_centre_sweep_is_flagged_with_the_fix():
    runs, isoflop, surface = fitted(synthetic_results(noise=0.005, seed=1, span=8,
                                                      centre_bias=4))
    rows, warnings = budget_checks(runs, isoflop, surface, ComputeModel.six_nd())
    assert all(r["off_centre"] for r in rows)
    assert all(3 < r["centre_over_optimum"] < 5 for r in rows)
    assert len(warnings) == len(rows)
    assert re.search(r"centred [34](\.\d)?x above its fitted optimum", warnings[0])
    assert "planning.model_sizes.centre: power_law" in warnings[0]


def test_an_optimum_beyond_the_sweep_is_flagged():
    # every size below a third of the optimum: the lowest loss is the largest size
    runs, isoflop, surface = fitted(synthetic_results(noise=0.002, seed=2, span=2.5,
                                                      centre_bias=0.12))
    rows, warnings = budget_checks(runs, isoflop, surface, ComputeModel.six_nd())
    assert all(r["optimum_at_edge"] for r in rows)
    assert any("its lowest loss is at the largest size" in w for w in warnings)


def test_an_accuracy_analysed_as_the_loss_is_flagged_once(caplog):
    """A real study's held-out accuracy: it rises with compute and peaks within each budget."""
    table = pd.read_csv(Path(__file__).parents[1] / "studies/mnist1d_7_budgets_results.csv")
    cfg = AnalysisConfig.from_params({"bootstrap": {"draws": 0},
                                      "columns": {"loss": "heldout_accuracy"}})
    runs, _ = prepare_runs(table, cfg)
    isoflop = fit_isoflop_approaches(runs, cfg)
    with caplog.at_level(logging.WARNING):
        out, warnings = loss_check(runs, isoflop, "heldout_accuracy")
    assert out["downward_parabolas"] == out["fitted_parabolas"] == 7
    assert out["lowest_loss_rises"] is True
    assert warnings == [out["not_a_loss_warning"]]
    assert warnings[0].startswith(
        "the analysed values (column 'heldout_accuracy') may not be a loss: 7 of 7 budgets' "
        "loss-vs-log N parabolas open downward (a maximum, not a minimum) and its lowest value "
        "per budget rises with compute, from 0.521 at 6.25e+09 FLOPs to 0.928 at 4e+11 FLOPs")
    assert "set analysis.columns.loss" in warnings[0]
    assert [r.getMessage() for r in caplog.records
            if r.name == "flops_fit.fitting.checks.sweep"] == warnings


def test_a_loss_that_rises_with_compute_is_flagged_without_downward_parabolas():
    table = synthetic_results(noise=0.002, seed=4)
    table["final_loss"] *= (table["compute_budget"] / table["compute_budget"].min()) ** 0.3
    runs, isoflop, _ = fitted(table)
    out, warnings = loss_check(runs, isoflop, "final_loss")
    assert out["downward_parabolas"] == 0 and out["lowest_loss_rises"] is True
    assert "(column 'final_loss') may not be a loss: its lowest value per budget rises" in \
        warnings[0]


def test_exponents_that_trade_off_are_not_identified(centred):
    _, _, surface = centred
    rng = np.random.default_rng(0)
    alpha = surface.fit.alpha * np.exp(0.02 * rng.standard_normal(100))
    ridge = {**surface.draws, "alpha": alpha, "beta": alpha * 0.8}
    out, warnings = identification(SurfaceFit(surface.fit, ridge, [], 45), 0.95)
    assert out["identified"] is False and out["alpha_beta_correlation"] > 0.99
    assert "alpha and beta are not identified" in warnings[0]
    wide = {**surface.draws, "alpha": np.linspace(0.01, 1.5, 100)}
    out, warnings = identification(SurfaceFit(surface.fit, wide, [], 45), 0.95)
    assert out["identified"] is False and "wider than alpha itself" in warnings[0]


def test_a_surface_of_the_wrong_form_misfits():
    table = synthetic_results(noise=0.002, seed=3)
    # an offset per budget, +-8% alternating: each parabola follows its budget, the surface
    # (one smooth L(N, D) for all budgets) cannot
    offset = table["compute_budget"].rank(method="dense").astype(int) % 2 * 2 - 1
    table["final_loss"] *= 1 + 0.08 * offset
    runs, isoflop, surface = fitted(table)
    out, warnings = surface_misfit(runs, surface)
    assert out["misfit"] is True
    assert out["surface_rms_log_residual"] > 2 * out["parabola_rms_log_residual"]
    assert "the surface misfits the runs" in warnings[0]


def doc_of(misfit=False, unreliable2=False, a3_fitted=True):
    law = {"coefficient": 1.0, "exponent": 0.5, "interval": {"exponent": [0.4, 0.6]}}
    empty = {"coefficient": None, "exponent": None, "interval": {"exponent": [None, None]}}
    return {
        "approach_1": {"n_opt": {**law, "interval": {"exponent": [None, None]}}, "d_opt": law},
        "approach_2": {"n_opt": law, "d_opt": law,
                       "bootstrap": {"unreliable": unreliable2},
                       "interval_note": "unreliable: 30% failed" if unreliable2 else None},
        "approach_3": {"n_opt": law if a3_fitted else empty, "d_opt": law if a3_fitted else empty},
        "diagnostics": {"identified": True, "misfit": misfit, "surface_rms_log_residual": 0.1,
                        "parabola_rms_log_residual": 0.02},
        "extrapolation_check": {"approach_2": {"n_opt_rel_error": 0.1}},
    }


def test_the_recommendation_and_its_reasons():
    rec = recommend_approach(doc_of())
    assert rec["approach"] == "approach_3" and rec["passed_every_check"] and not rec["passed_over"]
    rec = recommend_approach(doc_of(misfit=True))
    assert rec["approach"] == "approach_2"
    assert "misfits the runs (RMS residual 10.0%" in rec["passed_over"]["approach_3"][0]
    rec = recommend_approach(doc_of(misfit=True, unreliable2=True))
    assert rec["approach"] == "approach_3" and rec["passed_every_check"] is False
    assert rec["passed_over"]["approach_2"] == ["unreliable: 30% failed"]
    assert rec["passed_over"]["approach_1"] == ["no interval for its N_opt exponent"]
    rec = recommend_approach(doc_of(a3_fitted=False, unreliable2=True))
    assert rec["approach"] == "approach_2"  # the first with an answer
    assert recommend_approach({})["approach"] is None


def test_a_nan_allocation_is_no_answer():
    """The recommendation is made before the document is JSON-safe: a NaN coefficient (a
    degenerate surface) must count as no answer, as it does when the stored file is re-read."""
    doc = doc_of(misfit=True, unreliable2=True)
    doc["approach_3"]["n_opt"] = {**doc["approach_3"]["n_opt"], "coefficient": float("nan")}
    rec = recommend_approach(doc)
    assert rec["approach"] == "approach_2"
    assert rec["passed_over"]["approach_3"] == ["no fitted N_opt(C) and D_opt(C)"]
