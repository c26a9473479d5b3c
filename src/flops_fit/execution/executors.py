"""Executors: run tasks and yield each final result record the moment it exists.

`SequentialExecutor` runs in this process, in plan order. `DaskExecutor` submits every task to
a `dask.distributed` cluster (a LocalCluster it starts, or the scheduler at an address) and
yields records in completion order (`as_completed`). Both retry a failed run up to its
`max_attempts` and yield exactly one record per task: a run whose worker died is retried by Dask
(`retries`, and the scheduler's own rescheduling) and, failing that, yielded as `failed` with
the reason, never silently dropped.
"""

from __future__ import annotations

import logging
import math
import time
import uuid
from collections.abc import Iterator
from contextlib import suppress
from dataclasses import dataclass
from typing import Any

from flops_fit.corpus import CorpusSplit
from flops_fit.execution.clusters import cluster_kind
from flops_fit.execution.clusters import connect as connect_cluster
from flops_fit.execution.run import failed_record, run_task
from flops_fit.execution.tasks import RunTask
from flops_fit.parameters.training import DaskParams, TrainingConfig

log = logging.getLogger(__name__)


def _import_distributed():
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


@dataclass(frozen=True)
class RunJob:
    """What every run of one sweep shares."""

    backend_name: str
    backend_params: dict[str, Any]
    corpus: CorpusSplit | None = None
    checkpoint_root: str | None = None
    show_progress: bool = False


def _log_failure(task: RunTask, record: dict[str, Any], attempt: int) -> None:
    retry = attempt < task.max_attempts
    log.warning(
        "Run %s failed (attempt %d of %d%s): %s",
        task.partition_key,
        attempt,
        task.max_attempts,
        ", retrying" if retry else "",
        record["error_message"],
    )


class SequentialExecutor:
    name = "sequential"

    def run(self, tasks: list[RunTask], job: RunJob) -> Iterator[dict[str, Any]]:
        for task in tasks:
            for attempt in range(1, task.max_attempts + 1):
                record = run_task(
                    task,
                    job.backend_name,
                    job.backend_params,
                    job.corpus,
                    job.checkpoint_root,
                    job.show_progress,
                    attempt,
                )
                if record["status"] == "completed":
                    break
                _log_failure(task, record, attempt)
            yield record


def _check_worker(backend_name: str) -> str:
    """Runs on every Dask worker before any task: can it import the project and the backend?"""
    from flops_fit.backends.base import get_backend

    return type(get_backend(backend_name)).__module__


class DaskExecutor:
    """Fan runs out over a Dask cluster; the calling process keeps persisting the results."""

    name = "dask"

    def __init__(
        self, config: DaskParams, scheduler_address: str | None = None, client: Any = None
    ):
        self.config = config
        self.scheduler_address = scheduler_address
        self._client = client  # an existing distributed.Client (notebooks, tests); not closed
        # local, address or slurm (execution/clusters.py: how the cluster is made)
        self.cluster = cluster_kind(config, scheduler_address)

    def _connect(self):
        """A client on the cluster `training.dask.cluster` chooses (see execution/clusters.py)."""
        return connect_cluster(self.config, self.scheduler_address, client=self._client)

    def _check_workers(self, client: Any, backend_name: str) -> None:
        try:
            client.wait_for_workers(1, timeout=self.config.wait_for_workers_seconds)
        except Exception as exc:  # TimeoutError / OSError, depending on the version
            if _client_lost(client):
                raise SchedulerLostError(
                    _scheduler_address(client, self.scheduler_address),
                    f"the client lost its connection to the scheduler ({exc})",
                ) from exc
            raise ExecutionError(
                f"no Dask worker joined within {self.config.wait_for_workers_seconds:g} s "
                f"(params:training.dask.wait_for_workers_seconds); start workers with "
                f"`dask worker <scheduler address>`"
            ) from exc
        try:
            client.run(_check_worker, backend_name)
        except Exception as exc:
            if _client_lost(client) or _is_comm_error(exc):
                raise SchedulerLostError(
                    _scheduler_address(client, self.scheduler_address),
                    f"talking to the scheduler failed ({type(exc).__name__}: {exc})",
                ) from exc
            raise ExecutionError(
                f"a Dask worker cannot load the '{backend_name}' training backend "
                f"({type(exc).__name__}: {exc}); install the project on every worker machine "
                f"(`pip install -e .` in a checkout of the same version)"
            ) from exc

    def run(self, tasks: list[RunTask], job: RunJob) -> Iterator[dict[str, Any]]:
        """Yield one record per task, in completion order.

        A run whose backend failed (a `failed` record from `run_task`) or whose worker died
        (KilledWorker, once the scheduler gave up rescheduling it) is retried up to its
        `max_attempts`. A lost scheduler or client is not a failure of any run: the runs not
        yet yielded get no record at all (they stay pending) and `SchedulerLostError` is raised
        as soon as the loss is seen, after every record that arrived before it.
        """
        if not tasks:
            return
        as_completed = _import_distributed().as_completed

        with self._connect() as client:
            address = _scheduler_address(client, self.scheduler_address)
            self._check_workers(client, job.backend_name)
            if self.scheduler_address or self.config.dashboard_address:
                log.info("Dask dashboard: %s", client.dashboard_link)
            try:
                corpus = (
                    client.scatter(job.corpus, broadcast=True) if job.corpus is not None else None
                )
            except Exception as exc:
                if _client_lost(client) or _is_comm_error(exc):
                    raise SchedulerLostError(
                        address, f"scattering the corpus failed ({type(exc).__name__}: {exc})"
                    ) from exc
                raise
            submitted: dict[str, tuple[RunTask, int]] = {}

            def submit(task: RunTask, attempt: int):
                key = f"train-{task.partition_key}-a{attempt}-{uuid.uuid4().hex[:8]}"
                future = client.submit(
                    run_task,
                    task,
                    job.backend_name,
                    job.backend_params,
                    corpus,
                    job.checkpoint_root,
                    False,
                    attempt,
                    key=key,
                    pure=False,
                    retries=self.config.retries,
                )
                submitted[future.key] = (task, attempt)
                return future

            watcher = _WorkerWatcher(client, submitted)
            no_workers = _NoWorkerWatch(self.config.wait_for_workers_seconds)
            try:
                # Longest runs first, so the sweep does not end with one worker busy and the
                # rest idle.
                by_cost = sorted(tasks, key=_planned_cost, reverse=True)
                pending = as_completed([submit(t, 1) for t in by_cost])
                while not pending.is_empty():
                    lost = _client_lost(client) or no_workers.check(client)
                    if lost:
                        raise SchedulerLostError(address, lost)
                    if not pending.has_ready():
                        time.sleep(_POLL_SECONDS)
                        continue
                    for future in pending.next_batch(block=False):
                        task, attempt = submitted.pop(future.key)
                        kind, outcome = _outcome(future, client)
                        if kind == "again":
                            submitted[future.key] = (task, attempt)
                            pending.add(future)
                            continue
                        if kind == "lost":
                            raise SchedulerLostError(address, outcome)
                        if kind == "record":
                            record = outcome
                        else:
                            record = failed_record(task, job.backend_name, outcome, attempt)
                        if record["status"] != "completed":
                            _log_failure(task, record, attempt)
                            if attempt < task.max_attempts:
                                pending.add(submit(task, attempt + 1))
                                continue
                        yield record
            except SchedulerLostError:
                # No scheduler to talk to: close a client this executor made now, with a short
                # timeout, instead of letting it try to reconnect for a minute.
                if self._client is None:
                    with suppress(Exception):
                        client.close(timeout=_CLOSE_SECONDS)
                raise
            finally:
                watcher.stop()
            if submitted:  # cannot happen with as_completed; never lose a run silently
                for task, attempt in submitted.values():
                    yield failed_record(
                        task, job.backend_name, "lost by the Dask executor", attempt
                    )


class SchedulerLostError(ExecutionError):
    """The Dask scheduler (or the client's connection to it) went away during a sweep.

    Not a failure of any run: the runs that had not reported back stay pending.
    """

    def __init__(self, address: str | None, reason: str):
        self.address = address
        self.reason = reason
        where = f" at {address}" if address else ""
        super().__init__(f"lost the Dask scheduler{where}: {reason}")


_POLL_SECONDS = 0.1  # how often the driver looks at the client while no run is ready
_WORKER_CHECK_SECONDS = 2.0  # how often it looks at the (cached) list of workers


class _NoWorkerWatch:
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
            workers = (client.scheduler_info() or {}).get("workers", {})
        except Exception:  # noqa: BLE001 - a lost scheduler is _client_lost's to report
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
_CLOSE_SECONDS = 5  # closing a client whose scheduler is gone


def _scheduler_address(client: Any, configured: str | None) -> str | None:
    if configured:
        return configured
    try:
        return str(client.scheduler.address)
    except Exception:  # noqa: BLE001 - only for the message
        return None


def _client_lost(client: Any) -> str | None:
    """Why the client can no longer run the sweep, or None while it is connected."""
    status = getattr(client, "status", "running")
    if status in ("running", "newly-created"):
        return None
    if status == "connecting":
        return "the client lost its connection to the scheduler"
    return f"the Dask client is {status}"


def _is_comm_error(exc: BaseException) -> bool:
    """An error talking to the scheduler (not a failure of a run)."""
    try:
        from distributed.comm.core import CommClosedError
    except ImportError:  # pragma: no cover - distributed is a dependency
        CommClosedError = ()  # noqa: N806
    # Not any OSError: a worker whose backend import fails ("libcudart.so: cannot open shared
    # object file") re-raises an OSError through client.run, and that is no lost scheduler.
    return isinstance(exc, (ConnectionError, TimeoutError, CommClosedError))


def _outcome(future: Any, client: Any) -> tuple[str, Any]:
    """What a finished Dask future means for its run.

    ("record", record): `run_task` returned (a completed or failed run: the backend's failures
    are already records); ("failed", reason): the run itself failed outside the backend, e.g.
    its worker died and the scheduler gave up on it (KilledWorker); ("lost", reason): the task
    was cancelled or could not be fetched because the scheduler or the client went away;
    ("again", None): the scheduler is running it again (wait for it once more).
    """
    from concurrent.futures import CancelledError

    if future.status == "cancelled":
        return "lost", _lost_reason(future)
    if future.status == "finished":
        try:
            return "record", future.result()
        except (CancelledError, OSError) as exc:
            return "lost", f"fetching a result failed ({type(exc).__name__}: {exc})"
        except Exception as exc:  # noqa: BLE001
            if _is_comm_error(exc) or _client_lost(client):
                return "lost", f"fetching a result failed ({type(exc).__name__}: {exc})"
            raise
    if future.status != "error":
        # Reported done, then taken back by the scheduler (Dask's own `retries`, a worker that
        # held its result died): it is running again.
        return "again", None
    if _client_lost(client):
        return "lost", _lost_reason(future)
    return "failed", _lost_reason(future)


def _lost_reason(future: Any) -> str:
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


class _WorkerWatcher:
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


def make_executor(config: TrainingConfig, client: Any = None):
    if config.executor == "dask":
        try:
            _import_distributed()
        except ImportError as exc:  # pragma: no cover - distributed is a dependency
            raise ExecutionError(
                "params:training.executor is 'dask' but dask.distributed is not installed "
                "(pip install 'dask[distributed]')"
            ) from exc
        return DaskExecutor(config.dask, config.scheduler_address, client=client)
    return SequentialExecutor()


def _planned_cost(task: RunTask) -> float:
    try:
        return float(task.record.get("planned_flops") or 0.0)
    except (TypeError, ValueError):
        return 0.0
