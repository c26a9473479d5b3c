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
import os
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from flops_fit.corpus import CorpusSplit
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

    @contextmanager
    def _connect(self):
        import dask

        distributed = _import_distributed()
        Client, LocalCluster = distributed.Client, distributed.LocalCluster

        if self._client is not None:
            yield self._client
            return
        cfg = self.config
        address = self.scheduler_address
        if address:
            log.info("Connecting to the Dask scheduler at %s", address)
            try:
                client = Client(address, timeout=cfg.wait_for_workers_seconds)
            except OSError as exc:
                raise ExecutionError(
                    f"cannot reach the Dask scheduler at {address} "
                    f"(params:training.scheduler_address): {exc}"
                ) from exc
            try:
                yield client
            finally:
                client.close()
            return
        threads = max(1, (os.cpu_count() or 1) // cfg.workers)
        env = {
            k: os.environ.get(k, str(threads))
            for k in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS")
        }
        # Read by OpenMP once, when torch loads: idle OpenMP threads must sleep, not spin on the
        # cores the other single-threaded workers are using.
        env["OMP_WAIT_POLICY"] = os.environ.get("OMP_WAIT_POLICY", "PASSIVE")
        log.info("Starting a Dask LocalCluster with %d worker process(es)", cfg.workers)
        # Worker processes import distributed afresh, which turns its loggers up to INFO; give
        # them this process's level before they spawn.
        level = logging.getLevelName(logging.getLogger("distributed").getEffectiveLevel())
        spawn_env = {
            "distributed.nanny.pre-spawn-environ.DASK_LOGGING__DISTRIBUTED": os.environ.get(
                "DASK_LOGGING__DISTRIBUTED", str(level).lower()
            )
        }
        with dask.config.set(spawn_env):
            cluster = LocalCluster(
                n_workers=cfg.workers,
                threads_per_worker=1,
                processes=True,
                dashboard_address=cfg.dashboard_address,
                env=env,
            )
        try:
            client = Client(cluster)
            try:
                yield client
            finally:
                client.close()
        finally:
            cluster.close()

    def _check_workers(self, client: Any, backend_name: str) -> None:
        try:
            client.wait_for_workers(1, timeout=self.config.wait_for_workers_seconds)
        except Exception as exc:  # TimeoutError / OSError, depending on the version
            raise ExecutionError(
                f"no Dask worker joined within {self.config.wait_for_workers_seconds:g} s "
                f"(params:training.dask.wait_for_workers_seconds); start workers with "
                f"`dask worker <scheduler address>`"
            ) from exc
        try:
            client.run(_check_worker, backend_name)
        except Exception as exc:
            raise ExecutionError(
                f"a Dask worker cannot load the '{backend_name}' training backend "
                f"({type(exc).__name__}: {exc}); install the project on every worker machine "
                f"(`pip install -e .` in a checkout of the same version)"
            ) from exc

    def run(self, tasks: list[RunTask], job: RunJob) -> Iterator[dict[str, Any]]:
        if not tasks:
            return
        as_completed = _import_distributed().as_completed

        with self._connect() as client:
            self._check_workers(client, job.backend_name)
            if self.scheduler_address or self.config.dashboard_address:
                log.info("Dask dashboard: %s", client.dashboard_link)
            corpus = client.scatter(job.corpus, broadcast=True) if job.corpus is not None else None
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

            # Longest runs first, so the sweep does not end with one worker busy and the rest idle.
            by_cost = sorted(tasks, key=_planned_cost, reverse=True)
            pending = as_completed([submit(t, 1) for t in by_cost])
            for future in pending:
                task, attempt = submitted.pop(future.key)
                if future.status == "finished":
                    record = future.result()
                else:
                    record = failed_record(task, job.backend_name, _lost_reason(future), attempt)
                if record["status"] != "completed":
                    _log_failure(task, record, attempt)
                    if attempt < task.max_attempts:
                        pending.add(submit(task, attempt + 1))
                        continue
                yield record
            if submitted:  # cannot happen with as_completed; never lose a run silently
                for task, attempt in submitted.values():
                    yield failed_record(
                        task, job.backend_name, "lost by the Dask executor", attempt
                    )


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
