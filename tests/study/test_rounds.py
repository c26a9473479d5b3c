"""Rounds: the study's plan across rounds, the checks before training, the stop rules."""

from __future__ import annotations

import pandas as pd
import pytest

from flops_fit import analyse
from flops_fit.parameters.base import ParameterError
from flops_fit.parameters.study import StudyConfig
from flops_fit.schema import STUDY_ROUND_COLUMNS
from flops_fit.study import rounds
from flops_fit.study.design import RoundDesign, Unit
from flops_fit.study.target import Answer, answer_at

PILOT = [{"experiment_id": f"p{i}", "round": 0, "compute_budget": c, "planned_flops": c,
          "model_size": 1e6} for i, c in enumerate([1e18, 1e18, 1e18, 1e19, 1e19, 1e19])]


def _answer(ratio):
    return Answer("approach_3", 1e22, 1e9, (1e9 / ratio**0.5, 1e9 * ratio**0.5), 2.0,
                  (1.9, 2.1))


def test_study_plan_adds_each_round_once_in_round_order():
    docs = [{"round": 2, "runs": [{"experiment_id": "b", "round": 2, "planned_flops": 1}]},
            {"round": 1, "runs": [{"experiment_id": "a", "round": 1, "planned_flops": 1},
                                  {"experiment_id": "p0", "round": 1, "planned_flops": 1}]},
            {"round": 3, "runs": [], "stop_reason": "precise"}]
    plan = rounds.study_plan(PILOT, docs)
    assert [r["experiment_id"] for r in plan][-2:] == ["a", "b"]
    assert len(plan) == len(PILOT) + 2 and rounds.current_round(plan) == 2


@pytest.mark.parametrize(("params", "key"), [
    ({"target_budget": 5e18}, "study.target_budget"),
    ({"max_compute": 1e19}, "study.max_compute"),
])
def test_study_values_that_cannot_work_with_the_pilot_name_their_key(params, key):
    with pytest.raises(rounds.StudyConfigError, match=key):
        rounds.check_study(StudyConfig.from_params(params | {"target_budget": params.get(
            "target_budget", 1e22)}), PILOT)


@pytest.mark.parametrize(("params", "key"), [
    ({"precision": 1.0}, "study.precision"), ({"precision": 0.5}, "study.precision"),
    ({"max_rounds": 0}, "study.max_rounds"), ({"round_compute": 0}, "study.round_compute"),
    ({"validation": {"budget": "most"}}, "study.validation.budget"),
])
def test_bad_study_parameters_are_errors_naming_the_key(params, key):
    with pytest.raises(ParameterError, match=key.replace(".", r"\.")):
        StudyConfig.from_params(params)


def test_the_fit_must_include_every_planned_run():
    with pytest.raises(rounds.StudyStateError, match="1 of round 0"):
        rounds.check_fit_is_current(PILOT, {f"p{i}" for i in range(5)})
    rounds.check_fit_is_current(PILOT, {f"p{i}" for i in range(6)})


def test_rounds_planned_from_another_pilot_are_refused():
    mine = rounds.pilot_fingerprint(PILOT)
    rounds.check_pilot([{"round": 1, "pilot": mine}], mine)
    with pytest.raises(rounds.StudyStateError, match="another pilot"):
        rounds.check_pilot([{"round": 1, "pilot": "0123456789ab"}], mine)


def test_rounds_that_answered_another_target_are_refused():
    docs = [{"round": k, "assessment": {"compute_budget": 1e23}} for k in (1, 2)]
    rounds.check_target(docs, 1e23)
    rounds.check_target([{"round": 1}], 3e23)  # a round file from before the assessment
    with pytest.raises(rounds.StudyStateError, match=r"round file\(s\) 1, 2 answered N_opt at "
                       r"1e\+23 FLOPs, but study.target_budget is now 3e\+23: restore it.*"
                       r"deleting the round files \(02_intermediate/study in the data root: "
                       r"data/, or --params data_root\)"):
        rounds.check_target(docs, 3e23)


def test_stop_rules_before_a_round_is_designed():
    cfg = StudyConfig.from_params({"target_budget": 1e22, "precision": 2.0, "max_rounds": 2})
    assert "precise enough" in rounds.stop_before_design(cfg, _answer(1.5), PILOT)
    assert rounds.stop_before_design(cfg, _answer(3.0), PILOT) is None
    later = PILOT + [{"experiment_id": "x", "round": 2, "compute_budget": 1e19,
                      "planned_flops": 1e19}]
    assert "max_rounds" in rounds.stop_before_design(cfg, _answer(3.0), later)
    none = Answer(None, 1e22, None, (None, None), None, (None, None))
    assert "no approach" in rounds.stop_before_design(cfg, none, PILOT)


def test_a_narrow_interval_that_jumped_from_the_last_rounds_is_not_precise_enough():
    """Another approach took over (or the answer moved): its narrow interval misses the one a
    round earlier, so the study goes on, and says so if it must stop on its rounds."""
    cfg = StudyConfig.from_params({"target_budget": 1e22, "precision": 2.0, "max_rounds": 2})
    far = {"approach": "approach_2", "n_opt_lo": 3e9, "n_opt_hi": 5e9}
    near = {"approach": "approach_3", "n_opt_lo": 0.9e9, "n_opt_hi": 1.5e9}
    assert rounds.stop_before_design(cfg, _answer(1.5), PILOT, far) is None
    assert "precise enough" in rounds.stop_before_design(cfg, _answer(1.5), PILOT, near)
    later = PILOT + [{"experiment_id": "x", "round": 2, "compute_budget": 1e19,
                      "planned_flops": 1e19}]
    assert rounds.stop_before_design(cfg, _answer(1.5), later, far) == (
        "study.max_rounds (2) rounds after the pilot are done; N_opt's interval [8.16e+08, "
        "1.22e+09] (approach_3) does not overlap the one a round earlier, [3e+09, 5e+09] "
        "(approach_2), so it is not settled yet")
    docs = [{"round": 1, "assessment": near}, {"round": 2, "assessment": far}, {"round": 3}]
    assert rounds.previous_assessment(docs) is far


def test_the_allowance_paces_the_rounds_to_max_compute():
    spent = rounds.spent_flops(PILOT)
    cfg = StudyConfig.from_params({"round_compute": 1.0, "max_compute": 1.5 * spent})
    assert rounds.allowance(cfg, PILOT) == pytest.approx(0.5 * spent)  # what is left
    assert rounds.max_compute_binds(cfg, PILOT)
    slow = StudyConfig.from_params({"round_compute": 2.0, "max_compute": 10 * spent,
                                    "max_rounds": 4})
    assert rounds.allowance(slow, PILOT) == pytest.approx(2.0 * spent)  # round_compute
    fast = StudyConfig.from_params({"round_compute": 0.25, "max_compute": 16 * spent,
                                    "max_rounds": 4})
    # 16x in four rounds: each round doubles the study (2^4 = 16)
    assert rounds.allowance(fast, PILOT) == pytest.approx(spent)
    assert not rounds.max_compute_binds(fast, PILOT)


def test_a_round_that_would_barely_narrow_the_answer_stops_with_why():
    cfg = StudyConfig.from_params({"min_expected_gain": 0.1})
    unit = Unit("refine", 1e19, [{"planned_flops": 1e19, "experiment_id": "r"}], "why")
    flat = RoundDesign([unit], 3, 1e20, variance_before=1.0, variance_after=0.97, noise=0.01)
    assert "only 3.0%" in rounds.stop_after_design(cfg, flat, 1e20)
    assert "barely tell" in rounds.stop_after_design(cfg, flat, 1e20)
    assert "raise study.max_compute" in rounds.stop_after_design(cfg, flat, 1e20, squeezed=True)
    useful = RoundDesign([unit], 3, 1e20, variance_before=1.0, variance_after=0.5, noise=0.01)
    assert rounds.stop_after_design(cfg, useful, 1e20) is None
    empty = RoundDesign([], 3, 1e17, None, None, 0.01)
    assert "exceed study.max_compute" in rounds.stop_after_design(cfg, empty, 1e17)


def test_the_rounds_table_puts_each_assessment_on_the_round_it_follows(pilot_analysis):
    _, analysis = pilot_analysis
    answer = answer_at(analysis.scaling_laws, analysis.draws, 1e22)
    assert answer.ratio and answer.ratio > 1 and answer.approach
    plan = list(PILOT) + [{"experiment_id": "a", "round": 1, "compute_budget": 1e20,
                           "planned_flops": 1e20}]
    docs = [rounds.round_document(1, answer, PILOT, RoundDesign([], 0, 1.0, None, None, 0.01),
                                  None, 0.95, 1.0),
            rounds.round_document(2, answer, plan, None, "precise enough", 0.95, 0.0)]
    table = rounds.rounds_table(plan, docs)
    assert list(table.columns) == list(STUDY_ROUND_COLUMNS)
    assert table["runs_added"].tolist() == [6, 1]
    assert table["flops_so_far"].tolist() == pytest.approx([3.3e19, 1.33e20])
    assert table["n_opt"].tolist() == pytest.approx([answer.n_opt] * 2)
    assert table["stop_reason"].tolist() == [None, "precise enough"]


@pytest.mark.parametrize("case", ["mnist1d_measured_results.csv", "default_gpt_full_results.csv"])
def test_the_answer_at_a_budget_is_the_one_predictions_csv_gives(case):
    """From the stored documents, as a study round reads them: the family that answers (MNIST-1D:
    saturating, not Chinchilla's form), its draws widened by the law's error beyond the fit."""
    from tests.fitting.test_api import CASES, STUDIES, analysis_params

    env, _ = CASES[case]
    params = {**analysis_params(env), "target_budgets": [4e12]}
    analysis = analyse(pd.read_csv(STUDIES / case), params, compute_model="auto")
    assert analysis.surface.law_error is not None and analysis.surface.law_error.floor > 0
    answer = answer_at(analysis.scaling_laws, analysis.draws, 4e12, "approach_3")
    row = analysis.predictions.query("approach == 'approach_3'").iloc[0]
    got = [answer.n_opt, *answer.n_opt_interval, answer.loss, *answer.loss_interval]
    want = [row[c] for c in ("model_size", "model_size_lo", "model_size_hi", "loss", "loss_lo",
                             "loss_hi")]
    assert got == pytest.approx(want, rel=1e-9)
    # a table whose rows were reordered (sorted, filtered and joined by a user) reads the same:
    # each draw keeps its own deviate of the law's error
    shuffled = analysis.draws.sample(frac=1.0, random_state=0)
    again = answer_at(analysis.scaling_laws, shuffled, 4e12, "approach_3")
    assert again.n_opt_interval == answer.n_opt_interval
    assert again.loss_interval == answer.loss_interval
