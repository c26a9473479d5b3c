"""The result record (flops_fit.execution.records)."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from flops_fit.execution.records import build_result_record, check_metrics, record_problem
from flops_fit.execution.tasks import expand_plan
from flops_fit.schema import EXECUTION_FIELDS, PLAN_FIELDS, RESULT_FIELDS
from tests.execution.helpers import result_record as _record


def test_completed_record_with_nan_loss_is_partial(plan):
    task = expand_plan(plan[:1], 1, 0)[0]
    rec = _record(task)
    rec["final_loss"] = None
    assert "final_loss" in record_problem(rec, task.experiment_id, 0)
    assert record_problem(_record(task), task.experiment_id, 1).startswith("holds replica")


def test_result_record_layout_and_json_safety(plan):
    task = expand_plan(plan[:1], 1, 0)[0]
    metrics = {
        "final_loss": np.float64(3.5),
        "train_loss": math.nan,
        "actual_flops": 1e17,
        "tokens_seen": np.int64(10),
        "device": "cpu",
        "experiment_id": "clobber!",
    }
    rec = build_result_record(
        task.record,
        replica=0,
        seed=task.seed,
        backend="synthetic",
        status="completed",
        metrics=metrics,
        attempts=2,
    )
    keys = list(rec)
    assert keys[: len(PLAN_FIELDS)] == list(PLAN_FIELDS)
    n = len(PLAN_FIELDS)
    assert keys[n : n + len(RESULT_FIELDS)] == list(RESULT_FIELDS)
    assert keys[n + len(RESULT_FIELDS) : n + len(RESULT_FIELDS) + 2] == list(EXECUTION_FIELDS)
    assert keys[-1] == "device"
    assert rec["experiment_id"] == task.experiment_id  # extras never overwrite plan fields
    assert rec["train_loss"] is None and type(rec["final_loss"]) is float
    assert type(rec["tokens_seen"]) is int and rec["attempts"] == 2
    json.dumps(rec, allow_nan=False)
    with pytest.raises(ValueError, match="status"):
        build_result_record(task.record, replica=0, seed=1, backend="x", status="done")


@pytest.mark.parametrize(
    ("metrics", "message"),
    [
        ({"final_loss": 1.0}, "returned no"),
        (
            {"final_loss": math.inf, "train_loss": 1, "actual_flops": 1, "tokens_seen": 1},
            "final_loss inf is not a positive finite number",
        ),
        (
            {"final_loss": -1.0, "train_loss": 1, "actual_flops": 1, "tokens_seen": 1},
            "final_loss -1.0 is not a positive finite number",
        ),
        (
            {"final_loss": 0.0, "train_loss": 1, "actual_flops": 1, "tokens_seen": 1},
            "final_loss 0.0 is not a positive finite number",
        ),
        (
            {"final_loss": np.float64("nan"), "train_loss": 1, "actual_flops": 1,
             "tokens_seen": 1},
            "final_loss NaN is not a positive finite number",
        ),
        (None, "expected a mapping"),
    ],
)
def test_check_metrics(metrics, message):
    assert message in check_metrics(metrics)


class NegativeLossBackend:
    """A backend whose run 'completes' with a loss of -1.0 (e.g. a buggy custom loss)."""

    name = "negative"
    needs_data = False

    def validate_params(self, params):
        return params

    def train(self, record, params, ctx):
        return {"final_loss": -1.0, "train_loss": 2.0, "actual_flops": 1e15, "tokens_seen": 10}


def test_a_backend_returning_a_negative_loss_gives_a_failed_record(plan, monkeypatch):
    """The training end of the loss rule (schema.loss_problem); analysis applies the same one."""
    from flops_fit.backends.base import BACKENDS
    from flops_fit.execution.run import run_task

    monkeypatch.setitem(BACKENDS, "negative", f"{__name__}:NegativeLossBackend")
    task = expand_plan(plan[:1], 1, 0)[0]
    rec = run_task(task, "negative", {})
    assert rec["status"] == "failed"
    assert rec["error_message"] == "final_loss -1.0 is not a positive finite number"
    assert rec["final_loss"] == -1.0  # kept for the record, but the run is not completed


def test_the_loss_rule_is_one_function():
    from flops_fit.fitting.runs import selection
    from flops_fit.schema import loss_problem

    assert selection.loss_problem is loss_problem
    assert loss_problem(2.5) is None and loss_problem(np.float32(1.0)) is None
    for bad in (0, 0.0, -1.0, math.nan, math.inf, -math.inf, None, True, "3.0"):
        assert loss_problem(bad).endswith("not a positive finite number)") or \
            loss_problem(bad).endswith("not a positive finite number")


def test_a_failed_run_keeps_what_its_backend_measured_before_it_failed(monkeypatch):
    """A diverged run's loss curve survives in its failed record."""
    from flops_fit.execution import run as run_module
    from flops_fit.execution.tasks import RunTask
    from flops_fit.schema import LOSS_CURVE_FIELD

    curve = [{"step": 1, "units": 8, "heldout_loss": 5.0, "train_loss": 5.1}]

    class Diverging:
        def train(self, record, params, ctx):
            exc = FloatingPointError("training loss became nan by step 3")
            exc.partial_metrics = {LOSS_CURVE_FIELD: curve}
            raise exc

    monkeypatch.setattr(run_module, "get_backend", lambda name: Diverging())
    plan = {"experiment_id": "x", "compute_budget": 1e9, "model_size": 10, "num_tokens": 100}
    task = RunTask("x", "x", 0, 1, plan)
    record = run_module.run_task(task, "torch", {})
    assert record["status"] == "failed" and "nan" in record["error_message"]
    assert record[LOSS_CURVE_FIELD] == curve and record["final_loss"] is None
