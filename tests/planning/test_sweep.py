import copy
import math

import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from flops_fit.parameters.base import ParameterError
from flops_fit.parameters.planning import ComputeBudgets, PlanningConfig
from flops_fit.planning.flops import training_flops_per_token
from flops_fit.planning.shapes import ModelShape, non_embedding_params
from flops_fit.planning.sweep import PlanningError, budget_tag, plan_sweep
from flops_fit.schema import PLAN_FIELDS
from tests.conftest import PROJECT_ROOT


def base_params() -> dict:
    with open(PROJECT_ROOT / "conf/base/parameters_planning.yml") as fh:
        return yaml.safe_load(fh)["planning"]


def mock_like_params() -> dict:
    p = base_params()
    p["compute_budgets"] = {"values": None, "min": 1e17, "max": 1e21, "num": 5}
    p["model_sizes"] = {"num": 7, "centre": "power_law", "span_factor": 8.0,
                        "power_law": {"coefficient": 0.5987, "exponent": 0.4516},
                        "fixed_range": {"min": 1.0, "max": 2.0}}
    p["model_family"] = {**p["model_family"], "max_width": 16384, "aspect_ratio": 64.0,
                         "max_layers": 256}
    p["batch_size"] = 256
    p["flops_formula"] = "6nd"
    p["max_epochs"] = None
    return p


def compute_budgets_from_params(spec):
    return ComputeBudgets.from_params(spec).budgets()


def test_explicit_and_log_spaced_budgets():
    assert compute_budgets_from_params({"values": [1e12, 3e11]}) == (3e11, 1e12)
    assert compute_budgets_from_params({"values": None, "min": 1e18, "max": 1e20, "num": 3}) == (
        1e18, 1e19, 1e20)


@pytest.mark.parametrize(
    "spec, match",
    [
        ({"values": [1e12, -1.0]}, r"compute_budgets.values.1: "),
        ({"values": [0]}, r"compute_budgets.values.0: "),
        ({"values": None, "min": 1e20, "max": 1e18, "num": 3}, "min .* is above max"),
        ({"values": None, "min": 1e18, "max": 1e20, "num": 0}, "compute_budgets.num"),
        ({"values": None, "min": 1e18, "max": 1e20, "num": 3, "step": 2},
         "unknown parameter 'planning.compute_budgets.step'"),
    ],
)
def test_bad_budgets_name_the_parameter(spec, match):
    with pytest.raises(ParameterError, match=match):
        compute_budgets_from_params(spec)


def test_fewer_than_three_sizes_is_an_error():
    p = base_params()
    p["model_sizes"]["num"] = 2
    with pytest.raises(ParameterError, match=r"model_sizes.num: an IsoFLOP profile needs at "
                       r"least 3 sizes per budget .*, got 2"):
        PlanningConfig.from_params(p)


def test_unknown_key_is_an_error():
    p = base_params()
    p["batchsize"] = 3
    with pytest.raises(ParameterError, match=r"unknown parameter 'planning.batchsize' "
                       r"\(did you mean 'planning.batch_size'\?\)"):
        PlanningConfig.from_params(p)


def test_power_law_sizes_are_centred():
    cfg = PlanningConfig.from_params(mock_like_params())
    sizes = cfg.model_sizes.targets(1e19)
    centre = 0.5987 * 1e19**0.4516
    assert math.sqrt(sizes[0] * sizes[-1]) == pytest.approx(centre)
    assert sizes[-1] / sizes[0] == pytest.approx(64.0)


def test_plan_records_exact_counts_and_shapes():
    cfg = PlanningConfig.from_params(base_params())
    records, _ = plan_sweep(cfg, corpus_train_tokens=13_000_000)
    assert records
    for r in records:
        assert set(PLAN_FIELDS) <= set(r)
        shape = ModelShape.from_record(r)
        assert r["model_size"] == non_embedding_params(shape)
        assert r["num_tokens"] == r["num_steps"] * r["batch_size"] * r["context_length"]
        assert r["planned_flops"] == pytest.approx(
            r["num_tokens"] * training_flops_per_token(shape, r["flops_formula"]))
        assert r["flops_6nd"] == pytest.approx(6 * r["model_size"] * r["num_tokens"])


def test_colliding_shapes_are_dropped_not_duplicated():
    p = base_params()
    p["model_sizes"] = {**p["model_sizes"], "num": 12, "centre": "fixed_range",
                        "fixed_range": {"min": 3.0e3, "max": 1.0e6}}
    p["compute_budgets"] = {"values": [3e12]}
    p["min_tokens_per_param"] = 0
    records, dropped = plan_sweep(PlanningConfig.from_params(p))
    shapes = [ModelShape.from_record(r) for r in records]
    assert len(shapes) == len(set(shapes))
    assert any(d["reason"] == "same model as a neighbouring target" for d in dropped)


def test_thin_budget_error_names_budget_and_reason():
    p = base_params()
    p["compute_budgets"] = {"values": [1e8]}
    with pytest.raises(PlanningError, match=r"compute budget 1e\+08 FLOPs keeps only"):
        plan_sweep(PlanningConfig.from_params(p))


def test_corpus_limit_drops_runs():
    p = base_params()
    p["max_epochs"] = 1
    cfg = PlanningConfig.from_params(p)
    full, _ = plan_sweep(cfg)
    tokens = sorted(r["num_tokens"] for r in full)
    limit = tokens[-2]  # the largest run would repeat data
    with pytest.raises(PlanningError) if _thin_after_limit(full, limit) else _nullctx():
        limited, dropped = plan_sweep(cfg, corpus_train_tokens=limit)
        assert all(r["num_tokens"] <= limit for r in limited)
        assert any("epochs of the training set" in d["reason"] for d in dropped)


def _thin_after_limit(records, limit):
    from collections import Counter

    kept = Counter(r["compute_budget"] for r in records if r["num_tokens"] <= limit)
    return any(v < 3 for v in kept.values())


class _nullctx:
    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False


budgets_strategy = st.lists(
    st.floats(min_value=1e17, max_value=1e21), min_size=1, max_size=4, unique=True
).filter(lambda bs: all(abs(math.log(a / b)) > 0.01 for a in bs for b in bs if a != b))


@settings(max_examples=40, deadline=None)
@given(budgets_strategy)
def test_planned_flops_within_one_step_of_budget(budgets):
    p = mock_like_params()
    p["compute_budgets"] = {"values": budgets}
    records, _ = plan_sweep(PlanningConfig.from_params(p))
    for r in records:
        one_step = r["batch_size"] * r["context_length"] * r["flops_per_token"]
        assert abs(r["planned_flops"] - r["compute_budget"]) <= 0.5 * one_step + 1e-6 * one_step


@settings(max_examples=30, deadline=None)
@given(budgets_strategy, st.floats(min_value=1e17, max_value=1e21))
def test_ids_unique_and_stable_under_adding_a_budget(budgets, extra):
    if any(abs(math.log(extra / b)) <= 0.01 for b in budgets):
        return
    p = mock_like_params()
    p["compute_budgets"] = {"values": budgets}
    before, _ = plan_sweep(PlanningConfig.from_params(p))
    q = copy.deepcopy(p)
    q["compute_budgets"] = {"values": [*budgets, extra]}
    after, _ = plan_sweep(PlanningConfig.from_params(q))
    ids_after = [r["experiment_id"] for r in after]
    assert len(ids_after) == len(set(ids_after))
    assert {r["experiment_id"] for r in before} <= set(ids_after)


def test_budget_tag():
    assert budget_tag(3e11) == "3e11"
    assert budget_tag(1.5e12) == "1.5e12"
    assert budget_tag(4.64e19) == "4.64e19"
