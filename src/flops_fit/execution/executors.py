"""Executors: run tasks and yield each final result record the moment it exists.

`SequentialExecutor` runs in this process, in plan order. `DaskExecutor` submits every task to
a `dask.distributed` cluster (a LocalCluster it starts, or the scheduler at an address) and
yields records in completion order (`as_completed`). The branches of one trunk run one at a
time, in order (`flops_fit.execution.tasks.chain_heads`), each next one ahead of the runs still
queued; trunks spread over the workers. The study's data reaches the workers as the result of a
task (`flops_fit.execution.dask_data`). Both retry a failed run up to its `max_attempts` and
yield exactly one record per task: a run whose worker died is retried by Dask (`retries`, and
the scheduler's own rescheduling) and, failing that, yielded as `failed` with the reason, never
silently dropped.
"""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Iterator
from contextlib import suppress
from dataclasses import dataclass
from typing import Any

from flops_fit.execution import interrupt
from flops_fit.execution.clusters import cluster_kind
from flops_fit.execution.clusters import connect as connect_cluster
from flops_fit.execution.dask_data import data_task
from flops_fit.execution.dask_failures import (
    ExecutionError,
    NoWorkerWatch,
    SchedulerLostError,
    WorkerWatcher,
    client_lost,
    future_outcome,
    import_distributed,
    is_comm_error,
    scheduler_address,
)
from flops_fit.execution.run import failed_record, run_task
from flops_fit.execution.tasks import RunTask, chain_heads, in_chain_order
from flops_fit.execution.watchdog import DaskRunWatch
from flops_fit.parameters.training import DaskParams, TrainingConfig

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class RunJob:
    """What every run of one sweep shares."""

    backend_name: str
    backend_params: dict[str, Any]
    data: Any = None  # the study's DataSource (on Dask: execution/dask_data.py)
    checkpoint_root: str | None = None
    show_progress: bool = False
    model: Any = None  # the study's ModelPlugin: an import path and kwargs (picklable)
    loss: str | None = None  # the loss's import path
    run_timeout_seconds: float | None = None  # each attempt's time limit; None: none
    stall_warning_seconds: float | None = None  # warn about a run with no step for this long


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
        for task in in_chain_order(tasks):
            for attempt in range(1, task.max_attempts + 1):
                record = run_task(
                    task,
                    job.backend_name,
                    job.backend_params,
                    job.data,
                    job.checkpoint_root,
                    job.show_progress,
                    attempt,
                    job.model,
                    job.loss,
                    job.run_timeout_seconds,
                    job.stall_warning_seconds,
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
    # on SIGTERM / SIGINT it tells the workers to checkpoint, yields the runs that still
    # finish, then raises RunInterrupted itself
    drains_on_interrupt = True

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
            if client_lost(client):
                raise SchedulerLostError(
                    scheduler_address(client, self.scheduler_address),
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
            if client_lost(client) or is_comm_error(exc):
                raise SchedulerLostError(
                    scheduler_address(client, self.scheduler_address),
                    f"talking to the scheduler failed ({type(exc).__name__}: {exc})",
                ) from exc
            raise ExecutionError(
                f"a Dask worker cannot load the '{backend_name}' training backend "
                f"({type(exc).__name__}: {exc}); install the project on every worker machine "
                f"(`pip install -e .` in a checkout of the same version)"
            ) from exc

    @staticmethod
    def _catch_sigterm_on_workers(client: Any) -> None:
        """Each worker's SIGTERM (a Slurm job preempted or cancelled) checkpoints its run before
        the worker ends; workers that join later keep Dask's own handling."""
        try:
            installed = client.run(interrupt.install_worker_handler, on_error="return")
        except Exception as exc:  # noqa: BLE001 - an extra, never a reason to stop
            log.debug("SIGTERM handler not installed on the workers: %s", exc)
            return
        missing = [w for w, ok in installed.items() if ok is not True]
        if missing:
            log.debug("SIGTERM handler not installed on %d worker(s)", len(missing))

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
        as_completed = import_distributed().as_completed

        with self._connect() as client:
            address = scheduler_address(client, self.scheduler_address)
            self._check_workers(client, job.backend_name)
            self._catch_sigterm_on_workers(client)
            if self.scheduler_address or self.config.dashboard_address:
                log.info("Dask dashboard: %s", client.dashboard_link)
            data = data_task(client, job.data, self.config.wait_for_workers_seconds, address)
            submitted: dict[str, tuple[RunTask, int]] = {}
            live: dict[str, Any] = {}  # future key -> future, to cancel a run over its time

            def submit(task: RunTask, attempt: int, ahead: bool = True):
                # Every run submitted after the first batch (a trunk's next branch, a retry, a
                # run resumed after its worker stopped) goes ahead of the runs still queued: a
                # trunk's next branch at the back of the queue would wait for every run of its
                # own, and the sweep would end with the trunk's longest branches alone.
                key = f"train-{task.partition_key}-a{attempt}-{uuid.uuid4().hex[:8]}"
                future = client.submit(
                    run_task,
                    task,
                    job.backend_name,
                    job.backend_params,
                    data,
                    job.checkpoint_root,
                    False,
                    attempt,
                    job.model,
                    job.loss,
                    None,  # the time limit is the driver's (DaskRunWatch): a worker's thread
                    None,  # cannot be interrupted by SIGALRM
                    True,  # a run stopped by a signal comes back as an "interrupted" record
                    key=key,
                    pure=False,
                    priority=1 if ahead else 0,
                    retries=self.config.retries,
                )
                submitted[future.key] = (task, attempt)
                live[future.key] = future
                return future

            watcher = WorkerWatcher(client, submitted)
            no_workers = NoWorkerWatch(self.config.wait_for_workers_seconds)
            limits = (DaskRunWatch(client, job.run_timeout_seconds, job.stall_warning_seconds)
                      if job.run_timeout_seconds or job.stall_warning_seconds else None)
            try:
                # Longest runs first, so the sweep does not end with one worker busy and the
                # rest idle.
                # A trunk's branches run one after another: only its first is submitted, and
                # each next one when the one before has its record.
                heads, chained = chain_heads(tasks)
                by_cost = sorted(heads, key=lambda t: _planned_cost(t) + sum(
                    _planned_cost(c) for c in chained.get(t.chain or "", [])), reverse=True)
                pending = as_completed([submit(t, 1, ahead=False) for t in by_cost])

                def follow(task: RunTask) -> None:
                    if task.chain is not None and chained.get(task.chain):
                        pending.add(submit(chained[task.chain].pop(0), 1))
                while not pending.is_empty():
                    if interrupt.requested():
                        yield from _drain(client, pending, submitted)
                        raise interrupt.RunInterrupted("the sweep", 0, 0, False)
                    lost = client_lost(client) or no_workers.check(client)
                    if lost:
                        raise SchedulerLostError(address, lost)
                    if limits is not None:
                        running = {(t.partition_key, a): k for k, (t, a) in submitted.items()}
                        for key, worker, message in limits.expired(running):
                            task, attempt = submitted.pop(key)
                            _stop_run(client, live.pop(key, None), worker)
                            record = failed_record(task, job.backend_name, message, attempt)
                            _log_failure(task, record, attempt)
                            if attempt < task.max_attempts:
                                pending.add(submit(task, attempt + 1))
                            else:
                                follow(task)
                                yield record
                    if not pending.has_ready():
                        time.sleep(_POLL_SECONDS)
                        continue
                    for future in pending.next_batch(block=False):
                        live.pop(future.key, None)
                        if future.key not in submitted:  # a run stopped over its time
                            continue
                        task, attempt = submitted.pop(future.key)
                        kind, outcome = future_outcome(future, client)
                        if kind == "again":
                            submitted[future.key] = (task, attempt)
                            live[future.key] = future
                            pending.add(future)
                            continue
                        if kind == "lost":
                            raise SchedulerLostError(address, outcome)
                        if kind == "record" and outcome.get("status") == "interrupted":
                            # its worker got SIGTERM and checkpointed it: not a failure; it
                            # resumes on another worker (the same attempt)
                            log.info("Run %s was stopped on its worker (%s); running it again",
                                     task.partition_key, outcome.get("error_message"))
                            pending.add(submit(task, attempt))
                            continue
                        if kind == "record":
                            record = outcome
                        else:
                            record = failed_record(task, job.backend_name, outcome, attempt)
                        if record["status"] != "completed":
                            _log_failure(task, record, attempt)
                            if attempt < task.max_attempts:
                                pending.add(submit(task, attempt + 1))
                                continue
                        follow(task)
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


def _stop_run(client: Any, future: Any, worker: str) -> None:
    """Free the slot of a run over its time: its task is cancelled (so it is not rescheduled)
    and its worker restarted, as a thread stuck in a call cannot be stopped from outside."""
    if future is not None:
        with suppress(Exception):
            client.cancel([future], force=True)
    try:
        client.restart_workers([worker], timeout=_RESTART_SECONDS, raise_for_error=False)
    except Exception as exc:  # noqa: BLE001 - the sweep goes on with the other workers
        log.warning("Restarting the Dask worker %s of a run over its time failed: %s",
                    worker, exc)


def _drain(client: Any, pending: Any, submitted: dict) -> Iterator[dict[str, Any]]:
    """Stop a sweep: every worker's run checkpoints at its next step and no queued run starts.

    Runs that complete meanwhile are yielded; interrupted or failed ones are not recorded (they
    stay pending, their checkpoints on disk). Whatever has not finished within
    `_DRAIN_SECONDS` is cancelled.
    """
    with suppress(Exception):
        client.run(interrupt.request)
    deadline = time.monotonic() + _DRAIN_SECONDS
    try:
        while not pending.is_empty() and time.monotonic() < deadline:
            if client_lost(client):
                return
            if not pending.has_ready():
                time.sleep(_POLL_SECONDS)
                continue
            for future in pending.next_batch(block=False):
                submitted.pop(future.key, None)
                if future.status != "finished":
                    continue
                with suppress(Exception):
                    record = future.result()
                    if record.get("status") == "completed":
                        yield record
    finally:
        with suppress(Exception):
            client.cancel(list(pending.futures))
        submitted.clear()
        with suppress(Exception):
            # workers of an existing scheduler outlive this sweep: the next one must train
            client.run(interrupt.clear)


_RESTART_SECONDS = 60  # restarting the worker of a run over its time
_DRAIN_SECONDS = 60  # how long a stopping sweep waits for its runs to checkpoint
_POLL_SECONDS = 0.1  # how often the driver looks at the client while no run is ready
_CLOSE_SECONDS = 5  # closing a client whose scheduler is gone


def make_executor(config: TrainingConfig, client: Any = None):
    if config.executor == "dask":
        try:
            import_distributed()
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
