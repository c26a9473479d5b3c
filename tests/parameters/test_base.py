"""Error messages of the typed parameters: every line names the full key."""

from __future__ import annotations

import pytest

from flops_fit.parameters.analysis import AnalysisConfig
from flops_fit.parameters.base import ParameterError
from flops_fit.parameters.planning import PlanningConfig
from flops_fit.parameters.training import TrainingConfig


def _message(model, params, origin=None) -> str:
    with pytest.raises(ParameterError) as err:
        model.from_params(params, origin=origin)
    return str(err.value)


def test_nested_keys_are_named_in_full():
    msg = _message(PlanningConfig, {"model_sizes": {"fixed_range": {"min": -1}}})
    assert msg.startswith("params:planning.model_sizes.fixed_range.min: ")
    assert msg.endswith("got -1")


def test_booleans_are_not_numbers():
    assert "must be a number, not true/false" in _message(TrainingConfig, {"seeds": True})


def test_a_union_fails_on_one_line():
    msg = _message(TrainingConfig, {"dask": {"n_workers": 0}})
    assert msg.splitlines() == [
        "params:training.dask.n_workers: Input should be 'auto' or Input should be greater "
        "than or equal to 1, got 0"
    ]


def test_unknown_keys_get_a_suggestion_or_the_known_keys():
    assert "(did you mean 'planning.batch_size'?)" in _message(PlanningConfig, {"batchsize": 1})
    assert "known keys: " in _message(PlanningConfig, {"zzz": 1})


def test_origin_is_appended():
    origins = {"planning.batch_size": "conf/mock/parameters_planning.yml",
               "planning.flops_formula": "--params"}
    msg = _message(PlanningConfig, {"batch_size": 0, "flops_formula": "7nd"}, origins.get)
    assert "got 0 in conf/mock/parameters_planning.yml" in msg
    assert "got '7nd' given with --params" in msg


def test_instances_pass_through_and_are_immutable():
    cfg = PlanningConfig()
    assert PlanningConfig.from_params(cfg) is cfg
    with pytest.raises(Exception, match="frozen"):
        cfg.batch_size = 3  # type: ignore[misc]


def test_a_list_emptied_by_its_items_errors_says_only_those():
    msg = _message(AnalysisConfig, {"target_budgets": [float("inf")]})
    assert msg.splitlines() == [
        "params:analysis.target_budgets.0: Input should be a finite number, got inf"]
    assert "at least 1 item" in _message(AnalysisConfig, {"target_budgets": []})


def test_bootstrap_draws_too_few_for_an_interval_and_a_loose_boolean():
    assert "draws: 5 draws give no interval (at least 10; 0 or enabled: false" in _message(
        AnalysisConfig, {"bootstrap": {"draws": 5}})
    for off in ({"draws": 0}, {"enabled": False, "draws": 5}):
        assert not AnalysisConfig.from_params({"bootstrap": off}).bootstrap.active
    assert "params:analysis.law_error: Input should be a valid boolean" in _message(
        AnalysisConfig, {"law_error": "no"})
