"""What can go wrong with a Dask cluster during a sweep, told apart from a failed run.

A run that fails is the backend's business (`execution.run.run_task` turns it into a `failed`
record). The cluster failing is not: a lost scheduler or client (`client_lost`,
`is_comm_error`, the `lost` outcome of a future), a sweep left without workers
(`NoWorkerWatch`), a dead worker (`WorkerWatcher` logs it; the scheduler reschedules its runs).
`execution.executors.DaskExecutor` uses these to leave lost runs pending (`SchedulerLostError`).
"""

from __future__ import annotations

import logging
import math
import time
from contextlib import suppress
from typing import Any

from flops_fit.execution.tasks import RunTask

log = logging.getLogger(__name__)


def import_distributed():
    """Import dask.distributed without letting it turn its own loggers up to INFO.

    On import distributed sets the `distributed` logger to INFO, overriding the project's
    logging config (conf/logging.yml asks for WARNING); keep the level that was configured.
    """
    logger = logging.getLogger("distributed")
    level = logger.level
    import distributed

    logger.setLevel(level or logging.WARNING)
    return distributed


class ExecutionError(RuntimeError):
    """The executor cannot run the sweep at all (e.g. no Dask workers, workers missing code)."""


class SchedulerLostError(ExecutionError):
    """The Dask scheduler (or the client's connection to it) went away during a sweep.

    Not a failure of any run: the runs that had not reported back stay pending.
    """

    def __init__(self, address: str | None, reason: str):
        self.address = address
        self.reason = reason
        where = f" at {address}" if address else ""
        super().__init__(f"lost the Dask scheduler{where}: {reason}")


_WORKER_CHECK_SECONDS = 2.0  # how often it looks at the (cached) list of workers


class NoWorkerWatch:
    """A sweep whose every worker is gone (every Slurm job ended, say) would wait forever:
    after `limit` seconds without a worker it is stopped like a lost scheduler (runs pending)."""

    def __init__(self, limit: float, clock=time.monotonic):
        self.limit, self.clock = float(limit), clock
        self.since: float | None = None
        self.checked = -math.inf

    def check(self, client: Any) -> str | None:
        now = self.clock()
        if now - self.checked < _WORKER_CHECK_SECONDS:
            return None
        self.checked = now
        try:
            # one worker's details are enough to know there is one (not the whole cluster's)
            workers = (client.scheduler_info(n_workers=1) or {}).get("workers", {})
        except Exception:  # noqa: BLE001 - a lost scheduler is client_lost's to report
            return None
        if workers:
            self.since = None
            return None
        self.since = now if self.since is None else self.since
        if now - self.since < self.limit:
            return None
        return (
            f"no Dask worker was left for {now - self.since:.0f} s (every worker process, or "
            f"every Slurm job, ended; params:training.dask.wait_for_workers_seconds)"
        )


def scheduler_address(client: Any, configured: str | None) -> str | None:
    if configured:
        return configured
    try:
        return str(client.scheduler.address)
    except Exception:  # noqa: BLE001 - only for the message
        return None


def client_lost(client: Any) -> str | None:
    """Why the client can no longer run the sweep, or None while it is connected."""
    status = getattr(client, "status", "running")
    if status in ("running", "newly-created"):
        return None
    if status == "connecting":
        return "the client lost its connection to the scheduler"
    return f"the Dask client is {status}"


def is_comm_error(exc: BaseException) -> bool:
    """An error talking to the scheduler (not a failure of a run)."""
    try:
        from distributed.comm.core import CommClosedError
    except ImportError:  # pragma: no cover - distributed is a dependency
        CommClosedError = ()  # noqa: N806
    # Not any OSError: a worker whose backend import fails ("libcudart.so: cannot open shared
    # object file") re-raises an OSError through client.run, and that is no lost scheduler.
    return isinstance(exc, (ConnectionError, TimeoutError, CommClosedError))


def future_outcome(future: Any, client: Any) -> tuple[str, Any]:
    """What a finished Dask future means for its run.

    ("record", record): `run_task` returned (a completed or failed run: the backend's failures
    are already records); ("failed", reason): the run itself failed outside the backend, e.g.
    its worker died and the scheduler gave up on it (KilledWorker); ("lost", reason): the task
    was cancelled or could not be fetched because the scheduler or the client went away;
    ("again", None): the scheduler is running it again (wait for it once more).
    """
    from concurrent.futures import CancelledError

    if future.status == "cancelled":
        return "lost", lost_reason(future)
    if future.status == "finished":
        try:
            return "record", future.result()
        except (CancelledError, OSError) as exc:
            return "lost", f"fetching a result failed ({type(exc).__name__}: {exc})"
        except Exception as exc:  # noqa: BLE001
            if is_comm_error(exc) or client_lost(client):
                return "lost", f"fetching a result failed ({type(exc).__name__}: {exc})"
            raise
    if future.status != "error":
        # Reported done, then taken back by the scheduler (Dask's own `retries`, a worker that
        # held its result died): it is running again.
        return "again", None
    if client_lost(client):
        return "lost", lost_reason(future)
    return "failed", lost_reason(future)


def lost_reason(future: Any) -> str:
    """Why a Dask future did not return a record (its worker died, it was cancelled, ...)."""
    if future.status == "cancelled":
        return "the Dask task was cancelled (the scheduler or client went away)"
    try:
        exc = future.exception()
    except BaseException as err:  # noqa: BLE001 - CancelledError and friends
        return f"the Dask task was lost: {type(err).__name__}: {err}"
    name = type(exc).__name__
    if name == "KilledWorker":
        return f"the Dask worker running this run died (KilledWorker: {exc})"
    return f"the Dask task failed outside the backend: {name}: {exc}"


class WorkerWatcher:
    """Log a WARNING when a worker leaves the cluster, naming the runs it was running.

    Subscribes to the scheduler's "all" event topic (the scheduler logs a `remove-worker`
    event with the keys the worker was processing); the scheduler itself reschedules them.
    """

    def __init__(self, client: Any, submitted: dict[str, tuple[RunTask, int]]):
        self._client = client
        self._submitted = submitted
        self._on = False
        try:
            client.subscribe_topic("all", self._event)
            self._on = True
        except Exception as exc:  # noqa: BLE001 - a missing warning must not stop a sweep
            log.debug("Cannot watch Dask workers: %s", exc)

    def _event(self, event: Any) -> None:
        try:
            _, msg = event
            if not isinstance(msg, dict) or msg.get("action") != "remove-worker":
                return
            worker = msg.get("worker", "?")
            runs = sorted(
                f"{self._submitted[k][0].partition_key} (attempt {self._submitted[k][1]})"
                for k in msg.get("processing-tasks") or ()
                if k in self._submitted
            )
            how = "was stopped" if msg.get("expected") else "died"
            log.warning(
                "Dask worker %s %s%s; the scheduler reschedules %s",
                worker,
                how,
                f" with run(s) {', '.join(runs)} assigned to it (running or queued)"
                if runs
                else " (no run was assigned to it)",
                "its runs" if runs else "nothing",
            )
        except Exception:  # noqa: BLE001 - never let logging break the client's event loop
            log.debug("Cannot report a Dask worker event", exc_info=True)

    def stop(self) -> None:
        if self._on and getattr(self._client, "status", None) == "running":
            with suppress(Exception):
                self._client.unsubscribe_topic("all")
        self._on = False
