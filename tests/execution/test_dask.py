"""The Dask executor on real LocalClusters (worker processes, as on a cluster)."""

from __future__ import annotations

import dask
import pytest

from flops_fit.datasets.run_store import RunPartitionsDataset
from flops_fit.execution import prepare_training
from tests.execution.helpers import RegisterTestBackends

distributed = pytest.importorskip("distributed")

IGNORED = ("wall_time_seconds", "started_at", "finished_at")


def _strip(records):
    return {k: {f: v for f, v in r.items() if f not in IGNORED} for k, r in records.items()}


def test_local_cluster_from_params_gives_the_same_results_as_sequential(plan):
    params = {
        "backend": "synthetic",
        "show_progress": False,
        "seeds": 2,
        "seed": 11,
        "max_retries": 0,
        "synthetic": {"failure_fraction": 0.2, "divergence_fraction": 0.1},
    }
    sequential = prepare_training(plan, {}, params).records()
    on_dask = prepare_training(
        plan, {}, {**params, "executor": "dask", "dask": {"n_workers": 2}}
    ).records()
    assert len(sequential) == 2 * len(plan)
    assert _strip(on_dask) == _strip(sequential)
    assert {r["status"] for r in on_dask.values()} == {"completed", "failed"}


@pytest.fixture(scope="module")
def client():
    # allowed-failures 0: a task whose worker dies is reported at once (KilledWorker) instead of
    # being rescheduled 3 times first; the executor then applies its own retries.
    with dask.config.set({"distributed.scheduler.allowed-failures": 0}):
        cluster = distributed.LocalCluster(
            n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None
        )
    client = distributed.Client(cluster)
    client.wait_for_workers(2, timeout=60)
    client.register_plugin(RegisterTestBackends())
    yield client
    client.close()
    cluster.close()


def test_results_are_persisted_in_completion_order(plan, client, tmp_path, test_backends):
    slow = plan[0]["experiment_id"]
    params = {"backend": "sleepy", "executor": "dask", "show_progress": False}
    stream = prepare_training(
        plan[:5], {}, params, {"sleepy": {"sleep": {slow: 2.0}}}, client=client
    )
    order = [key for key, _ in stream.items()]
    assert sorted(order) == sorted(stream)
    # plan order would put it first; a fast run may queue behind it on the same worker
    assert order.index(slow) >= 3
    runs = tmp_path / "runs"
    stream = prepare_training(
        plan[:5], {}, params, {"sleepy": {"sleep": {slow: 2.0}}}, client=client
    )
    RunPartitionsDataset(path=str(runs)).save(stream)
    by_mtime = sorted(runs.glob("*.json"), key=lambda p: p.stat().st_mtime_ns)
    assert len(by_mtime) == 5 and [p.stem for p in by_mtime].index(slow) >= 3


def test_a_dying_worker_loses_no_run(plan, client, test_backends):
    doomed = plan[1]["experiment_id"]
    params = {"backend": "crashy", "executor": "dask", "show_progress": False, "max_retries": 1}
    records = prepare_training(
        plan[:6], {}, params, {"crashy": {"crash": [doomed], "sleep": 0.1}}, client=client
    ).records()
    assert set(records) == {r["experiment_id"] for r in plan[:6]}
    assert records[doomed]["status"] == "failed"
    assert "worker running this run died" in records[doomed]["error_message"]
    assert records[doomed]["attempts"] == 2
    # a run that happened to sit on the dying worker with it may share its fate, but it is
    # reported, never silently missing
    others = [r for k, r in records.items() if k != doomed]
    for r in others:
        assert r["status"] == "completed" or "worker running this run died" in r["error_message"]
    assert sum(r["status"] == "completed" for r in others) >= 3


def test_a_trunks_next_branch_goes_ahead_of_the_queued_runs(plan, client, test_backends):
    """A branch is submitted when the one before it has its record; at the back of the queue
    it would wait for every run of its own, and the sweep would end with the trunk alone."""
    plan = [dict(r) for r in plan[:11]]
    steps = sorted(r["num_steps"] for r in plan[:2])
    for r in plan[:2]:  # the first two: one trunk's two branches, run first
        r.update(trunk_id="T-test", branch_step=int(0.8 * r["num_steps"]), warmup_steps=1,
                 trunk_steps=steps[-1], planned_flops=1e30)
    # short branches among long runs: at the back of the queue the second branch would come
    # last; ahead of it, it follows within a run or two of the first
    sleep = {r["experiment_id"]: 0.05 if r.get("trunk_id") else 0.6 for r in plan}
    params = {"backend": "sleepy", "executor": "dask", "show_progress": False}
    order = [key for key, _ in prepare_training(
        plan, {}, params, {"sleepy": {"sleep": sleep}}, client=client).items()]
    assert len(order) == 11
    first, second = (r["experiment_id"] for r in sorted(plan[:2], key=lambda r: r["num_steps"]))
    assert order.index(first) < order.index(second) < len(order) - 3, order
