"""Replicas, seeds and what counts as pending (flops_fit.execution.tasks)."""

from __future__ import annotations

import json

from hypothesis import given, settings
from hypothesis import strategies as st

from flops_fit.execution.tasks import expand_plan, partition_key, run_seed, select_pending
from tests.execution.helpers import result_record as _record


def test_partition_keys():
    assert partition_key("C1e17-d64-L2-abc", 0) == "C1e17-d64-L2-abc"
    assert partition_key("C1e17-d64-L2-abc", 2) == "C1e17-d64-L2-abc-r2"


def test_run_seed_is_a_stable_hash():
    # fixed value: the same on every machine and Python process (not hash())
    assert run_seed(0, "C1e17-d240-L4-b8af4185", 0) == 1211483675
    seeds = {run_seed(s, e, r) for s in (0, 1) for e in ("a", "b") for r in (0, 1, 2)}
    assert len(seeds) == 12
    assert all(0 <= s < 2**32 for s in seeds)


def test_expand_plan_gives_replicas_in_plan_order(plan):
    tasks = expand_plan(plan, seeds=3, global_seed=7)
    assert len(tasks) == 3 * len(plan)
    assert [t.partition_key for t in tasks[:3]] == [
        plan[0]["experiment_id"],
        f"{plan[0]['experiment_id']}-r1",
        f"{plan[0]['experiment_id']}-r2",
    ]
    assert tasks[1].seed == run_seed(7, plan[0]["experiment_id"], 1)


def test_select_pending_by_stored_state(plan):
    tasks = expand_plan(plan[:6], seeds=1, global_seed=0)
    t_done, t_failed, t_bad, t_partial, t_other, t_new = tasks
    existing = {
        t_done.partition_key: _record(t_done),
        t_failed.partition_key: lambda: _record(t_failed, status="failed"),
        t_bad.partition_key: lambda: json.loads("{broken"),
        t_partial.partition_key: {"experiment_id": t_partial.experiment_id},
        t_other.partition_key: _record(t_other, backend="torch"),
        "not-in-plan": _record(t_done),
    }
    pending, report = select_pending(tasks, existing, "synthetic", max_retries=2)
    by_key = {t.partition_key: t for t in pending}
    assert t_done.partition_key not in by_key
    assert by_key[t_failed.partition_key].reason == "failed"
    assert by_key[t_failed.partition_key].max_attempts == 2  # max_retries retries
    assert by_key[t_bad.partition_key].reason == "unreadable"
    assert by_key[t_partial.partition_key].reason == "partial"
    assert by_key[t_other.partition_key].reason == "other backend"
    assert by_key[t_new.partition_key].reason == "new"
    assert by_key[t_new.partition_key].max_attempts == 3  # first try + max_retries
    assert [t.partition_key for t in pending] == [t.partition_key for t in tasks[1:]]
    assert report.completed == 1
    assert {k for k, _ in report.problems} == {
        t_bad.partition_key,
        t_partial.partition_key,
        t_other.partition_key,
    }
    assert "1 already completed" in report.summary()


def test_failed_runs_are_kept_with_zero_retries(plan):
    tasks = expand_plan(plan[:2], seeds=1, global_seed=0)
    existing = {tasks[0].partition_key: _record(tasks[0], status="failed")}
    pending, report = select_pending(tasks, existing, "synthetic", max_retries=0)
    assert [t.partition_key for t in pending] == [tasks[1].partition_key]
    assert pending[0].max_attempts == 1
    assert report.failed_kept == 1


STATES = ["missing", "completed", "failed", "broken", "other backend"]


@settings(max_examples=60, deadline=None)
@given(
    states=st.lists(st.sampled_from(STATES), min_size=1, max_size=12),
    max_retries=st.integers(0, 3),
    seeds=st.integers(1, 3),
)
def test_every_planned_run_is_done_or_pending_exactly_once(states, max_retries, seeds):
    from tests.execution.helpers import small_plan

    tasks = expand_plan(small_plan(), seeds=seeds, global_seed=3)[: len(states)]
    existing = {}
    for task, state in zip(tasks, states, strict=True):
        if state == "completed":
            existing[task.partition_key] = _record(task)
        elif state == "failed":
            existing[task.partition_key] = _record(task, status="failed")
        elif state == "broken":
            existing[task.partition_key] = lambda: json.loads("{")
        elif state == "other backend":
            existing[task.partition_key] = _record(task, backend="torch")
    pending, report = select_pending(tasks, existing, "synthetic", max_retries)
    pending_keys = [t.partition_key for t in pending]
    assert len(pending_keys) == len(set(pending_keys))
    assert report.completed + report.failed_kept + len(pending) == len(tasks)
    for task, state in zip(tasks, states, strict=True):
        is_pending = task.partition_key in pending_keys
        assert is_pending == (state != "completed" and not (state == "failed" and not max_retries))
    assert all(t.max_attempts >= 1 for t in pending)
