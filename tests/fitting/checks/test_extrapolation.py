"""The extrapolation check: hold the largest budget out, refit, predict it."""

from __future__ import annotations

import logging

import pytest

from flops_fit.fitting.checks.extrapolation import ExtrapolationEntry, extrapolation_check
from flops_fit.fitting.runs.prepare import prepare_runs
from flops_fit.fitting.runs.simulated import synthetic_results
from flops_fit.fitting.surface.compute_model import ComputeModel
from flops_fit.fitting.surface.fit import fit_parametric
from flops_fit.fitting.surface.law import optimal_allocation_6nd
from flops_fit.parameters.analysis import AnalysisConfig


def test_extrapolation_check_never_fits_on_budgets_above_the_held_out_one():
    """A largest budget with too few runs for Approaches 1-2 is skipped as the held-out one;
    it must not leak into Approach 3's refit, or the check interpolates instead."""
    results = synthetic_results(noise=0.01, seed=5)
    top = results["compute_budget"].max()
    drop = results.index[results["compute_budget"] == top][2:]  # keep 2 runs: below min_runs
    results = results.drop(index=drop).reset_index(drop=True)
    cfg = AnalysisConfig.from_params({"bootstrap": {"enabled": False}})
    runs, _ = prepare_runs(results, cfg)
    check = extrapolation_check(runs, cfg, ComputeModel.six_nd())
    held = check.held_out_budget
    assert held == pytest.approx(1e20)
    below = runs[runs["used_in_fit"] & (runs["budget"] < held)]
    fit = fit_parametric(
        below["model_size"], below["num_tokens"], below["final_loss"], cfg.approach_3
    )
    n_pred, _ = optimal_allocation_6nd(held, fit.params)
    a3 = check.approaches["approach_3"]
    assert a3.budgets_fitted == 3
    assert a3.predicted_n_opt == pytest.approx(float(n_pred), rel=1e-6)
    for approach in ("approach_1", "approach_2"):
        assert check.approaches[approach].budgets_fitted == 3



def test_too_few_budgets_give_empty_entries():
    results = synthetic_results(budgets=(1e17, 1e18), noise=0.01)
    cfg = AnalysisConfig.from_params({"bootstrap": {"enabled": False}, "min_budgets": 2})
    runs, _ = prepare_runs(results, cfg)
    check = extrapolation_check(runs, cfg, ComputeModel.six_nd())
    assert check.held_out_budget is None
    assert "found 2" in check.warnings[0]
    assert check.approaches == dict.fromkeys(
        ("approach_1", "approach_2", "approach_3"), ExtrapolationEntry.empty("not enough budgets")
    )
    doc = check.to_dict()
    assert list(doc) == ["held_out_budget", "warnings", "approach_1", "approach_2", "approach_3"]
    assert doc["approach_3"]["note"] == "not enough budgets"


def test_check_of_the_small_study(small_study):
    check = small_study.check
    assert check.held_out_budget == pytest.approx(1e21)
    for entry in check.approaches.values():
        assert entry.budgets_fitted == 4
    assert abs(check.approaches["approach_3"].n_opt_rel_error) < 0.5


def test_a_check_that_tests_another_family_than_the_studys_says_so_in_the_report(caplog):
    """MNIST-1D's pilot: the saturating law answers on four budgets; the check has three, too
    few to repeat the choice, so it checks the saturating law pinned (not Chinchilla's form,
    which `auto` falls back to on three budgets), and its note and the report say so."""
    import pandas as pd

    from flops_fit import analyse
    from flops_fit.reporting.summary import _extrapolation_check
    from tests.fitting.test_api import STUDIES, analysis_params

    params = {**analysis_params("mnist1d"), "bootstrap": {"draws": 50}}
    # after the imports above: Kedro's logging set-up, which they load, replaces root handlers
    logging.getLogger("flops_fit").addHandler(caplog.handler)
    with caplog.at_level(logging.INFO, logger="flops_fit"):
        result = analyse(pd.read_csv(STUDIES / "mnist1d_measured_results.csv"), params,
                         compute_model="auto")
    assert result.surface.law == "saturating"
    note = result.scaling_laws["extrapolation_check"]["approach_3"]["note"]
    assert note.startswith("checks the study's saturating law, pinned:")
    # the log names the law the check used, not the one its fewer budgets would default to
    logging.getLogger("flops_fit").removeHandler(caplog.handler)
    said = [r.getMessage() for r in caplog.records if r.levelno >= logging.INFO]
    assert [m for m in said if m.startswith("Approach 3's law:")] == [
        m for m in said if m.startswith("Approach 3's law: saturating")]
    assert f"Extrapolation check: Approach 3 {note}" in said
    check = result.extrapolation.approaches["approach_3"]
    pinned = analyse(pd.read_csv(STUDIES / "mnist1d_measured_results.csv"),
                     {**params, "law": "saturating"}, compute_model="auto")
    assert check.n_opt_rel_error == pytest.approx(
        pinned.extrapolation.approaches["approach_3"].n_opt_rel_error, rel=1e-4)
    assert _extrapolation_check(result.scaling_laws)["notes"] == [f"Approach 3 {note}"]


def test_a_check_that_can_choose_again_says_when_it_chose_another_family():
    """On four budgets below the held-out one the check repeats the choice; when it lands on
    another family than the study's, its note names both (here the study claims kaplan)."""
    from types import SimpleNamespace

    from flops_fit.fitting.checks.extrapolation import _surface_on

    results = synthetic_results(budgets=(1e17, 1e18, 1e19, 1e20, 1e21), noise=0.01, seed=2)
    cfg = AnalysisConfig.from_params({"bootstrap": {"enabled": False}, "law": "auto"})
    runs, _ = prepare_runs(results, cfg)
    below = runs[runs["used_in_fit"] & (runs["budget"] < 1e21)]
    params, note = _surface_on(below, cfg, SimpleNamespace(law="kaplan", choice=None), 1e21)
    assert params["law"] != "kaplan"
    assert note.startswith(f"checks the {params['law']} law, not the study's kaplan law;")
    params, note = _surface_on(below, cfg, SimpleNamespace(law=params["law"], choice=None), 1e21)
    assert note == ""


def test_a_pinned_check_whose_family_cannot_be_fitted_says_so(monkeypatch):
    """When the study's family cannot be fitted to the budgets below the held-out one, the
    check's Approach 3 entry says that instead of an empty row."""
    import numpy as np
    import pandas as pd

    from flops_fit import analyse
    from flops_fit.fitting.checks import extrapolation
    from flops_fit.fitting.laws.solver import FamilyFit
    from tests.fitting.test_api import STUDIES, analysis_params

    real = extrapolation.fit_laws

    def failing(*args, **kwargs):
        choice, draws = real(*args, **kwargs)
        bad = choice.fits["saturating"]
        choice.fits["saturating"] = FamilyFit("saturating", bad.theta * np.nan, np.nan,
                                              bad.n_runs)
        return choice, draws

    monkeypatch.setattr(extrapolation, "fit_laws", failing)
    params = {**analysis_params("mnist1d"), "bootstrap": {"draws": 20}}
    result = analyse(pd.read_csv(STUDIES / "mnist1d_measured_results.csv"), params,
                     compute_model="auto")
    entry = result.extrapolation.approaches["approach_3"]
    assert entry.predicted_n_opt is None
    assert entry.note == ("Approach 3 could not be fitted: the study's saturating law could not "
                          "be fitted to the budgets below the held-out one")
