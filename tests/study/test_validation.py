"""The validation run: its budget, and the verdict on the law."""

from __future__ import annotations

import json
import logging

import pandas as pd
import pytest

from flops_fit.parameters.study import StudyConfig
from flops_fit.study.rounds import StudyConfigError
from flops_fit.study.validation import (
    check_validation_budget,
    checks_fit,
    plan_validation,
    score_validation,
    validation_budget,
)
from tests.study.conftest import simulate, six_nd_planner
from tests.study.test_rounds import PILOT

#: C* and max_compute of a study whose pilot is PILOT (budgets up to 1e19)
STUDY = {"target_budget": 1e20, "max_compute": 5e20}


def test_the_budget_is_out_of_sample_by_default_and_the_leftover_on_request():
    cfg = StudyConfig.from_params({"target_budget": 1e21})
    assert validation_budget(cfg, PILOT) == (2e19, pytest.approx(
        validation_budget(cfg, PILOT)[1]))
    left = StudyConfig.from_params({"target_budget": 1e21, "max_compute": 5e20,
                                    "validation": {"budget": "leftover"}})
    budget, why = validation_budget(left, PILOT)
    assert budget == pytest.approx(4.67e20) and "leaves" in why
    at_target = StudyConfig.from_params({"target_budget": 1e20, "max_compute": 5e20,
                                         "validation": {"budget": "leftover"}})
    assert validation_budget(at_target, PILOT)[0] == 1e20
    explicit = StudyConfig.from_params({**STUDY, "validation": {"budget": 3e19}})
    assert validation_budget(explicit, PILOT) == (3e19, "study.validation.budget")
    inside = StudyConfig.from_params({**STUDY, "validation": {"budget": 1e19}})  # the pilot's
    with pytest.raises(StudyConfigError, match=r"study.validation.budget \(1e\+19 FLOPs\) is "
                       r"not above the pilot's largest budget \(1e\+19 FLOPs\)"):
        check_validation_budget(inside, 1e19)
    check_validation_budget(explicit, 1e19)
    # the rounds trained up to it: the nearest budget beyond the fit, saying why
    budget, why = validation_budget(inside, PILOT)
    assert budget == 2e19
    assert why.endswith("as study.validation.budget (1e+19 FLOPs) is not above the budgets the "
                        "rounds trained")
    with pytest.raises(ValueError, match="valid boolean"):
        StudyConfig.from_params({"validation": {"neighbours": "no"}})


def test_a_validation_budget_beyond_the_study_fails_or_is_said(caplog):
    """Costing more than study.max_compute (three runs with neighbours) fails the parameter
    check, before any work; above C* it is a warning when it is chosen, and validation.json's
    budget_from says so."""
    def cfg(budget, neighbours=False):
        return StudyConfig.from_params({**STUDY, "validation": {"budget": budget,
                                                                "neighbours": neighbours}})

    with pytest.raises(ValueError, match=r"study.validation.budget \(6e\+20 FLOPs\) costs "
                       r"more than study.max_compute \(5e\+20 FLOPs\), the training the whole "
                       r"study may spend"):
        cfg(6e20)
    with pytest.raises(ValueError, match=r"2e\+20 FLOPs x 3 runs with "
                       r"study.validation.neighbours\) costs more than study.max_compute"):
        cfg(2e20, neighbours=True)
    StudyConfig.from_params({**STUDY, "validation": {"budget": 6e20, "enabled": False}})

    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="flops_fit.study.validation"):
        check_validation_budget(cfg(2e20), 1e19)  # within max_compute, above C* = 1e20
        budget, why = validation_budget(cfg(2e20), PILOT)
    beyond = ("above study.target_budget (1e+20 FLOPs): it checks an extrapolation beyond the "
              "answer the study is for")
    warned = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warned) == 1 and beyond in warned[0]
    assert budget == 2e20 and why == f"study.validation.budget, {beyond}"

    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="flops_fit.study.validation"):
        assert validation_budget(cfg(1e20), PILOT) == (1e20, "study.validation.budget")  # at C*
    assert not caplog.records


def _validate(analysis, results, neighbours=False, enabled=True):
    cfg = StudyConfig.from_params({"target_budget": 1e22,
                                   "validation": {"neighbours": neighbours, "enabled": enabled}})
    plan = [{**r, "planned_flops": r["compute_budget"]} for r in
            analysis.runs.to_dict("records")]
    records, about = plan_validation(cfg, plan, analysis.scaling_laws, analysis.draws,
                                     six_nd_planner(0))
    return records, about


def test_a_validation_turned_off_plans_no_run_and_says_why(pilot_analysis):
    """`kedro run` runs the validation pipeline too: study.validation.enabled false trains
    nothing there, and validation.json says the law was not scored, and why."""
    _, analysis = pilot_analysis
    records, about = _validate(analysis, None, enabled=False)
    assert records == [] and about["not_planned"] == "study.validation.enabled is false"
    scored = score_validation(records, pd.DataFrame(), analysis.scaling_laws, analysis.draws,
                              about)
    assert scored["passed"] is None and scored["verdict"] == (
        "no validation run: study.validation.enabled is false; the law is not scored")


def test_a_law_that_holds_is_scored_inside_its_interval(pilot_analysis):
    _, analysis = pilot_analysis
    records, about = _validate(analysis, None, neighbours=True)
    assert about["compute_budget"] == 2e20
    assert [r["validation_role"] for r in records] == ["optimum", "half", "double"]
    results = pd.DataFrame(simulate(records, noise=0.0))
    scored = score_validation(records, results, analysis.scaling_laws, analysis.draws, about)
    centre = scored["runs"][0]
    lo, hi = centre["predictive_interval"]
    assert lo < centre["predicted_loss"] < hi
    assert centre["verdict"] == "inside" and scored["passed"] is True
    assert "inside the interval" in scored["verdict"]
    assert scored["lowest_of_three"] is True


def test_a_law_that_misses_fails_and_says_which_way(pilot_analysis):
    _, analysis = pilot_analysis
    records, about = _validate(analysis, None)
    results = pd.DataFrame(simulate(records, noise=0.0))
    results["final_loss"] *= 1.3
    scored = score_validation(records, results, analysis.scaling_laws, analysis.draws, about)
    assert scored["passed"] is False and "above the interval" in scored["verdict"]


def test_a_validation_run_that_failed_is_not_scored(pilot_analysis):
    _, analysis = pilot_analysis
    records, about = _validate(analysis, None)
    results = pd.DataFrame([{**records[0], "status": "failed", "final_loss": None,
                             "error_message": "CUDA out of memory"}])
    scored = score_validation(records, results, analysis.scaling_laws, analysis.draws, about)
    assert scored["passed"] is None
    assert "has failed: CUDA out of memory" in scored["verdict"]
    empty = score_validation(records, pd.DataFrame(), analysis.scaling_laws, analysis.draws,
                             about)
    assert "has not run" in empty["verdict"]


def test_a_validation_run_that_cannot_be_planned_is_reported_not_raised(pilot_analysis):
    _, analysis = pilot_analysis
    cfg = StudyConfig.from_params({"target_budget": 1e22})
    plan = [{**r, "planned_flops": r["compute_budget"]} for r in
            analysis.runs.to_dict("records")]
    records, about = plan_validation(cfg, plan, analysis.scaling_laws, analysis.draws,
                                     lambda budget, targets: [])
    assert records == [] and "cannot be planned" in about["not_planned"]
    scored = score_validation(records, pd.DataFrame(), analysis.scaling_laws, analysis.draws,
                              about)
    assert scored["passed"] is None and scored["verdict"].startswith("no validation run")


def test_beyond_the_fit_the_predicted_loss_carries_the_laws_error(pilot_analysis):
    """The validation run sits beyond the fitted budgets: its interval is widened as
    predictions.csv's are (here by analysis.law_error_floor at least)."""
    _, analysis = pilot_analysis
    records, about = _validate(analysis, None)
    results = pd.DataFrame(simulate(records, noise=0.0))
    widened = score_validation(records, results, analysis.scaling_laws, analysis.draws, about)
    doc = {**analysis.scaling_laws,
           "approach_3": {**analysis.scaling_laws["approach_3"], "law_error": None}}
    bare = score_validation(records, results, doc, analysis.draws, about)
    (lo, hi), (blo, bhi) = (s["runs"][0]["parameter_interval"] for s in (widened, bare))
    assert lo < blo and hi > bhi
    assert widened["runs"][0]["predicted_loss"] == bare["runs"][0]["predicted_loss"]


def test_a_validation_records_the_fit_it_scored_and_matches_only_that_fit(pilot_analysis):
    """validation.json names the fit it scored; a report compares it with the fit it reports:
    the same fit (read back from its JSON file or not) matches, any refit does not."""
    _, analysis = pilot_analysis
    records, about = _validate(analysis, None)
    results = pd.DataFrame(simulate(records, noise=0.0))
    doc = analysis.scaling_laws
    scored = score_validation(records, results, doc, analysis.draws, about)
    fit = scored["fit"]
    assert fit["approach"] == scored["approach"] == "approach_3"
    assert fit["law"] == doc["approach_3"]["law"] and fit["n_runs"] == 15
    assert fit["largest_budget"] == 1e20 and len(fit["fingerprint"]) == 16
    stored = json.loads(json.dumps(scored))
    assert checks_fit(stored, doc) and checks_fit(stored, json.loads(json.dumps(doc)))
    refit = json.loads(json.dumps(doc))
    refit["approach_3"]["law_params"]["E"] *= 1.001
    assert not checks_fit(stored, refit)
    fewer = json.loads(json.dumps(doc))
    fewer["meta"]["n_runs_used"] -= 1
    assert not checks_fit(stored, fewer)
    assert not checks_fit({k: v for k, v in stored.items() if k != "fit"}, doc)
    assert not checks_fit(stored, None)
    unplanned = score_validation([], pd.DataFrame(), doc, analysis.draws,
                                 {**about, "not_planned": "no optimum"})
    assert checks_fit(unplanned, doc)
