"""Run one task safely: whatever the backend does, the caller gets a result record back.

This function is what executors ship to a Dask worker, so it takes plain, picklable arguments
and looks the backend up by name in the worker's own process.
"""

from __future__ import annotations

import logging
import time
import traceback
from pathlib import Path
from typing import Any

from flops_fit.backends.base import RunContext, get_backend
from flops_fit.execution import interrupt, watchdog
from flops_fit.execution.records import build_result_record, check_metrics, utc_now
from flops_fit.execution.tasks import RunTask

log = logging.getLogger(__name__)

MAX_ERROR_CHARS = 4000
TRUNKS_FOLDER = "trunks"  # under the checkpoint root: one folder per trunk (and replica)


def format_error(exc: BaseException) -> str:
    """`Type: message` plus the innermost frames, short enough for a CSV cell."""
    head = f"{type(exc).__name__}: {exc}".strip()
    frames = traceback.extract_tb(exc.__traceback__)[-3:]
    where = "; ".join(f"{Path(f.filename).name}:{f.lineno} in {f.name}" for f in frames)
    text = f"{head} [at {where}]" if where else head
    return text[:MAX_ERROR_CHARS]


def run_task(
    task: RunTask,
    backend_name: str,
    backend_params: dict[str, Any],
    data: Any = None,
    checkpoint_root: str | None = None,
    show_progress: bool = False,
    attempt: int = 1,
    model: Any = None,
    loss: str | None = None,
    run_timeout_seconds: float | None = None,
    stall_warning_seconds: float | None = None,
    interrupted_as_record: bool = False,
) -> dict[str, Any]:
    """Train one run; exceptions and non-finite losses become a `failed` record, never a raise.

    With `run_timeout_seconds` (in the main thread) a run that takes longer is stopped and
    failed; with `stall_warning_seconds` a run that makes no step for that long is named in a
    warning (`flops_fit.execution.watchdog`). A run stopped by SIGTERM / SIGINT raises
    `RunInterrupted`, or with `interrupted_as_record` (on Dask workers: an exception would be
    logged as a failed task and retried by Dask) returns {"status": "interrupted", ...}."""
    started_at = utc_now()
    start = time.perf_counter()
    metrics: dict[str, Any] | None = None
    error: str | None = None
    if interrupt.requested():  # the sweep is stopping: start nothing new
        stop = interrupt.RunInterrupted(task.partition_key, 0, 0, False)
        if interrupted_as_record:
            return _interrupted(task, stop)
        raise stop
    steps = task.record.get("num_steps")
    interrupt.start_run(task.partition_key, steps if isinstance(steps, int) else None, attempt)
    try:
        with watchdog.limits(task.partition_key, run_timeout_seconds, stall_warning_seconds):
            backend = get_backend(backend_name)
            folder = Path(checkpoint_root) / task.partition_key if checkpoint_root else None
            ctx = RunContext(
                trunk_dir=(Path(checkpoint_root) / TRUNKS_FOLDER / task.chain
                           if checkpoint_root and task.chain else None),
                settings=task.settings,
                seed=task.seed,
                data=data,
                model=model,
                loss=loss,
                checkpoint_dir=folder,
                show_progress=show_progress,
            )
            metrics = backend.train(dict(task.record), backend_params, ctx)
            error = check_metrics(metrics)
    except interrupt.RunInterrupted as stop:
        if interrupted_as_record:
            return _interrupted(task, stop)
        raise  # not a failure: the run resumes from its checkpoint next time
    except interrupt.SweepInterrupted:
        raise  # a second SIGTERM / SIGINT: stop now, but this run did not fail
    except watchdog.RunTimeout as exc:
        error = str(exc)  # where it hung says nothing: the step reached does
    except Exception as exc:  # the sweep goes on; the record says what happened
        error = format_error(exc)
        # what the backend measured before it failed (a diverged run's loss curve)
        metrics = getattr(exc, "partial_metrics", None)
    finally:
        interrupt.end_run()
    wall = time.perf_counter() - start
    return build_result_record(
        task.record,
        replica=task.replica,
        seed=task.seed,
        backend=backend_name,
        status="failed" if error else "completed",
        metrics=metrics if isinstance(metrics, dict) else None,
        error_message=error,
        started_at=started_at,
        finished_at=utc_now(),
        wall_time_seconds=wall,
        attempts=attempt,
        settings=task.settings,
    )


def _interrupted(task: RunTask, stop: interrupt.RunInterrupted) -> dict[str, Any]:
    """What a worker returns for a run stopped on request: not a result, nothing to store."""
    return {"status": "interrupted", "experiment_id": task.record.get("experiment_id"),
            "replica": task.replica, "step": stop.step, "error_message": str(stop)}


def failed_record(task: RunTask, backend_name: str, error: str, attempt: int) -> dict[str, Any]:
    """The record of a run that never reported back (e.g. its Dask worker died)."""
    now = utc_now()
    return build_result_record(
        task.record,
        replica=task.replica,
        seed=task.seed,
        backend=backend_name,
        status="failed",
        error_message=error[:MAX_ERROR_CHARS],
        started_at=None,
        finished_at=now,
        wall_time_seconds=None,
        attempts=attempt,
        settings=task.settings,
    )
