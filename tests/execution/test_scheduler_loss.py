"""How the Dask executor tells a lost scheduler/client from a failed run (no processes)."""

from __future__ import annotations

from concurrent.futures import CancelledError

import pytest
from kedro.io.core import DatasetError

from flops_fit.datasets.run_store import RunPartitionsDataset
from flops_fit.execution import SchedulerLostError, TrainingInterrupted, prepare_training, run_task
from flops_fit.execution.dask_failures import client_lost as _client_lost
from flops_fit.execution.dask_failures import future_outcome as _outcome


class KilledWorker(Exception):  # matched by name, as distributed's own
    pass


class FakeClient:
    def __init__(self, status="running"):
        self.status = status


class FakeFuture:
    def __init__(self, status, result=None, exc=None):
        self.status, self._result, self._exc = status, result, exc

    def result(self):
        if isinstance(self._result, BaseException):
            raise self._result
        return self._result

    def exception(self):
        return self._exc


def test_client_status():
    assert _client_lost(FakeClient("running")) is None
    assert "lost its connection" in _client_lost(FakeClient("connecting"))
    assert "closed" in _client_lost(FakeClient("closed"))


@pytest.mark.parametrize(
    ("future", "client_status", "kind"),
    [
        (FakeFuture("finished", {"status": "completed"}), "running", "record"),
        (FakeFuture("finished", {"status": "failed"}), "running", "record"),
        (FakeFuture("cancelled"), "running", "lost"),
        (FakeFuture("finished", CancelledError("k")), "running", "lost"),
        (FakeFuture("finished", ConnectionResetError("gone")), "running", "lost"),
        (FakeFuture("error", exc=KilledWorker("w died")), "running", "failed"),
        (FakeFuture("error", exc=KilledWorker("w died")), "connecting", "lost"),
        (FakeFuture("error", exc=RuntimeError("unpicklable")), "running", "failed"),
        (FakeFuture("pending"), "running", "again"),
    ],
)
def test_outcome_of_a_future(future, client_status, kind):
    got, why = _outcome(future, FakeClient(client_status))
    assert got == kind
    if kind == "failed" and isinstance(future._exc, KilledWorker):
        assert "worker running this run died" in why


class LosesTheScheduler:
    """Finishes `n` runs, then loses its scheduler."""

    name = "dask"

    def __init__(self, n):
        self.n = n

    def run(self, tasks, job):
        for task in tasks[: self.n]:
            yield run_task(task, job.backend_name, job.backend_params)
        raise SchedulerLostError("tcp://127.0.0.1:1", "the client lost its connection")


def test_records_before_a_loss_are_saved_and_the_rest_stay_pending(plan, tmp_path):
    stream = prepare_training(plan[:5], {}, {"backend": "synthetic", "show_progress": False})
    stream._executor = LosesTheScheduler(2)
    runs = RunPartitionsDataset(path=str(tmp_path / "runs"))
    with pytest.raises(DatasetError) as info:  # the catalog wraps what the stream raised
        runs.save(stream)
    err = info.value.__cause__
    assert isinstance(err, TrainingInterrupted)
    assert (err.completed, err.failed, err.pending) == (2, 0, 3)
    assert isinstance(err, SchedulerLostError) and err.address == "tcp://127.0.0.1:1"
    text = str(err)
    assert "lost the Dask scheduler at tcp://127.0.0.1:1" in text
    assert "2 run(s) completed before the loss and were saved" in text
    assert "3 run(s) stay pending" in text and "run the same `kedro run` again" in text
    saved = runs.load()
    assert len(saved) == 2 and {r()["status"] for r in saved.values()} == {"completed"}
    # the next run picks up exactly the pending ones
    again = prepare_training(plan[:5], saved, {"backend": "synthetic", "show_progress": False})
    assert len(again) == 3


def test_a_sweep_without_any_worker_left_is_stopped_not_left_waiting():
    from flops_fit.execution.dask_failures import NoWorkerWatch as _NoWorkerWatch

    class Clock:
        t = 0.0

        def __call__(self):
            return self.t

    class Cluster:
        workers = {"tcp://w": {}}

        def scheduler_info(self, n_workers=-1):
            items = list(self.workers.items())
            return {"workers": dict(items[:n_workers] if n_workers > 0 else items)}

    clock, client = Clock(), Cluster()
    watch = _NoWorkerWatch(limit=10, clock=clock)
    assert watch.check(client) is None
    client.workers = {}
    for t in (3, 6, 9, 12):
        clock.t = t
        assert watch.check(client) is None  # gone since t=3: not yet 10 s
    clock.t = 14
    assert "no Dask worker was left for 11 s" in watch.check(client)
    client.workers = {"tcp://w2": {}}
    clock.t = 17
    assert watch.check(client) is None and watch.since is None
