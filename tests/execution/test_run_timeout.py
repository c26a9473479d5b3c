"""A run that hangs is failed after `training.run_timeout_seconds` with the step it reached, and
the sweep goes on with the other runs; a run with no step for `stall_warning_seconds` is named
in a warning."""

from __future__ import annotations

import logging
import time

import pytest

from flops_fit.execution import prepare_training
from flops_fit.execution.watchdog import timeout_message
from flops_fit.pipelines.planning.nodes import plan_isoflop_sweep, summarise_data
from tests.plugins.toy_plugins import training_params

#: three toy MLPs, ~290 steps in all
PLANNING = {"compute_budgets": {"values": [1.0e7]}, "batch_size": 32, "max_epochs": None,
            "flops_formula": "6nd",
            "model_sizes": {"num": 3, "centre": "fixed_range",
                            "fixed_range": {"min": 300.0, "max": 1500.0}}}


def _training(marker, **extra):
    return training_params(data="hangs_once", data_kwargs={"marker": str(marker)},
                           show_progress=False, checkpoint_dir=None, **extra)


def _plan(training):
    summary = summarise_data(None, {}, training, PLANNING, {})
    plan, _ = plan_isoflop_sweep([1.0e7], summary, None, PLANNING, training, {}, {})
    return plan


def test_the_message_names_the_limit_and_the_step():
    assert timeout_message(1200, {"step": 7, "num_steps": 90}).startswith(
        "run exceeded 0:20:00 at step 7 of 90")
    assert "before its first step" in timeout_message(5, {})


def test_sequential_a_hung_run_is_failed_and_the_others_complete(tmp_path, caplog):
    training = _training(tmp_path / "hung", max_retries=0, run_timeout_seconds=3,
                         stall_warning_seconds=1)
    plan = _plan(training)
    assert len(plan) == 3
    start = time.monotonic()
    with caplog.at_level(logging.WARNING):
        records = prepare_training(plan, {}, training).records()
    assert time.monotonic() - start < 30
    failed = [r for r in records.values() if r["status"] == "failed"]
    assert len(failed) == 1 and len(records) == 3
    assert failed[0]["error_message"].startswith("run exceeded 0:00:03 at step 2 of "), failed
    assert sum(r["status"] == "completed" for r in records.values()) == 2
    stalled = [r.getMessage() for r in caplog.records if "has made no step for" in r.getMessage()]
    assert len(stalled) == 1 and failed[0]["experiment_id"] in stalled[0], stalled


def test_sequential_a_timed_out_run_is_retried_like_any_failure(tmp_path, caplog):
    training = _training(tmp_path / "hung", max_retries=1, run_timeout_seconds=3)
    plan = _plan(training)
    with caplog.at_level(logging.WARNING):
        records = prepare_training(plan, {}, training).records()
    assert all(r["status"] == "completed" for r in records.values())
    retried = [r for r in records.values() if r["attempts"] == 2]
    assert len(retried) == 1
    assert "(attempt 1 of 2, retrying): run exceeded 0:00:03 at step 2 of" in caplog.text


@pytest.fixture(autouse=True)
def _no_alarm_left():
    import signal

    yield
    assert signal.getitimer(signal.ITIMER_REAL) == (0.0, 0.0)


def test_dask_a_hung_run_is_failed_its_worker_restarted_and_the_others_complete(tmp_path,
                                                                                  caplog):
    """A LocalCluster of two single-threaded workers (started and closed by the executor): the
    stuck task is cancelled, its worker restarted, and the sweep completes the other runs."""
    # longer limits than in this process: a fresh worker imports torch before its first step
    training = _training(tmp_path / "hung", max_retries=0, run_timeout_seconds=12,
                         stall_warning_seconds=6, executor="dask",
                         dask={"n_workers": 2, "wait_for_workers_seconds": 60})
    plan = _plan(training)
    start = time.monotonic()
    with caplog.at_level(logging.WARNING):
        records = prepare_training(plan, {}, training).records()
    assert time.monotonic() - start < 60
    failed = [r for r in records.values() if r["status"] == "failed"]
    assert len(failed) == 1 and len(records) == 3, records
    assert failed[0]["error_message"].startswith("run exceeded 0:00:12 at step 2 of "), failed
    assert sum(r["status"] == "completed" for r in records.values()) == 2
    stalled = [r.getMessage() for r in caplog.records if "has made no step for" in r.getMessage()]
    assert any(failed[0]["experiment_id"] in m for m in stalled), stalled
