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
            "non-finite final_loss",
        ),
        (None, "expected a mapping"),
    ],
)
def test_check_metrics(metrics, message):
    assert message in check_metrics(metrics)
