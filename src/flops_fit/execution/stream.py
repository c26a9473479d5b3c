"""RunStream: the pending runs of a sweep as a lazy mapping {partition key: result record}.

Nothing runs when the stream is built. Runs execute while a consumer iterates `items()`,
which yields `(partition_key, record)` in COMPLETION order, one pair the moment its run ends.
`flops_fit.datasets.RunPartitionsDataset.save` is that consumer: it writes each pair to its own
file before asking for the next, so every finished run is on disk while the others still run.

Other consumers work too, just without per-run persistence: `stream[key]` is a load function
(as in a loaded PartitionedDataset) that runs the whole stream first, and `copy.deepcopy(stream)`
(what a MemoryDataset does on save) runs it and returns a plain dict of records.
"""

from __future__ import annotations

import copy
import logging
import sys
import time
from collections.abc import Callable, Iterator, Mapping
from typing import Any

from flops_fit.execution import interrupt
from flops_fit.execution.executors import RunJob, SchedulerLostError
from flops_fit.execution.tasks import RunTask

log = logging.getLogger(__name__)


class RunStream(Mapping[str, Callable[[], dict[str, Any]]]):
    def __init__(
        self, tasks: list[RunTask], executor: Any, job: RunJob, show_progress: bool = True,
        settings_check: dict[str, Any] | None = None,
    ):
        self._tasks = {t.partition_key: t for t in tasks}
        self._executor = executor
        self._job = job
        self._show_progress = show_progress
        self._records: dict[str, dict[str, Any]] = {}  # finished, in completion order
        # completed runs trained under other settings than the current ones, and what was done
        # with them (execution.settings.settings_check_document); the report says so when kept
        self.settings_check = settings_check

    # -- Mapping: the keys are the pending partition keys, in plan order -------------------
    def __len__(self) -> int:
        return len(self._tasks)

    def __iter__(self) -> Iterator[str]:
        return iter(self._tasks)

    def __getitem__(self, key: str) -> Callable[[], dict[str, Any]]:
        if key not in self._tasks:
            raise KeyError(key)
        return lambda: self.records()[key]

    def __repr__(self) -> str:
        return (
            f"RunStream({len(self._tasks)} runs, {len(self._records)} finished, "
            f"executor={getattr(self._executor, 'name', self._executor)!r})"
        )

    # -- lazy execution ---------------------------------------------------------------------
    @property
    def tasks(self) -> list[RunTask]:
        return list(self._tasks.values())

    def items(self) -> Iterator[tuple[str, dict[str, Any]]]:  # type: ignore[override]
        """Run what has not run yet; yield (partition key, record) as each run finishes."""
        yield from list(self._records.items())
        todo = [t for k, t in self._tasks.items() if k not in self._records]
        if not todo:
            return
        from tqdm.auto import tqdm

        log.info(
            "Training %d run(s) with the '%s' backend on the %s executor",
            len(todo),
            self._job.backend_name,
            getattr(self._executor, "name", "?"),
        )
        start = time.perf_counter()
        failed = 0
        # records the consumer has stored; "kept": a failed retrain, whose earlier completed
        # result the run store keeps instead of the failure (datasets.run_store)
        saved = {"completed": 0, "failed": 0, "kept": 0}
        retrains = {t.partition_key for t in todo if t.reason == "changed settings"}
        bar = tqdm(
            total=len(todo),
            desc="training runs",
            unit="run",
            file=sys.stderr,
            disable=not self._show_progress,
            mininterval=0.5,
            dynamic_ncols=True,
        )
        lost: SchedulerLostError | None = None
        stopped = False
        try:
            for record in _while_training(
                self._executor.run(todo, self._job),
                drains=getattr(self._executor, "drains_on_interrupt", False),
            ):
                key = _key_of(record)
                self._records[key] = record
                if record["status"] != "completed":
                    failed += 1
                    bar.set_postfix(failed=failed, refresh=False)
                bar.update(1)
                yield key, record
                # the consumer asks for the next record only once it has stored this one: a
                # save that fails (a full disk) never comes back here
                saved["completed" if record["status"] == "completed"
                      else "kept" if key in retrains else "failed"] += 1
        except SchedulerLostError as exc:
            lost = exc
        except interrupt.RunInterrupted:
            stopped = True
        finally:
            bar.close()
            done = sum(1 for t in todo if t.partition_key in self._records)
            stored = saved["completed"] + saved["failed"]
            not_saved = done - stored - saved["kept"]
            if not stopped:  # the interruption's own line says it all
                log.info(
                    "Finished %d of %d run(s) in %.1f s: %d saved (%d completed, %d failed)%s%s%s",
                    done,
                    len(todo),
                    time.perf_counter() - start,
                    stored,
                    saved["completed"],
                    saved["failed"],
                    f", {saved['kept']} failed retrain(s) that kept the earlier result"
                    if saved["kept"] else "",
                    f", {not_saved} not saved" if not_saved > 0 else "",
                    f", {len(todo) - done} still pending" if done < len(todo) else "",
                )
        if stopped:
            root = self._job.checkpoint_root
            where = (f"checkpoints at {root}" if root
                     else "no checkpoints (params:training.checkpoint_dir is null)")
            message = (f"interrupted: {stored} runs saved, {len(todo) - stored} pending, "
                       f"{where}; run the same command to resume")
            log.warning(message)
            stop = interrupt.SweepInterrupted(message, interrupt.signal_received())
            stop.logged = True
            raise stop
        if lost is not None:
            raise TrainingInterrupted(
                lost, saved["completed"], saved["failed"], len(todo) - done
            ) from lost

    def records(self) -> dict[str, dict[str, Any]]:
        """Run everything (if not yet) and return {partition key: record}."""
        for _ in self.items():
            pass
        return dict(self._records)

    def __deepcopy__(self, memo: dict) -> dict[str, dict[str, Any]]:
        return copy.deepcopy(self.records(), memo)


class TrainingInterrupted(SchedulerLostError):
    """The sweep stopped because its Dask scheduler or client went away (not a run failure).

    Every record that arrived before the loss was handed to the consumer (the `runs` dataset
    saves each one before asking for the next); the other runs have no record and stay pending.
    """

    def __init__(self, lost: SchedulerLostError, completed: int, failed: int, pending: int):
        self.completed, self.failed, self.pending = completed, failed, pending
        where = f" at {lost.address}" if lost.address else ""
        super().__init__(lost.address, lost.reason)
        failed_note = f", {failed} failed (recorded as failed)" if failed else ""
        no_workers = lost.reason.startswith("no Dask worker")
        what = (f"every Dask worker of the scheduler{where} went away" if no_workers
                else f"lost the Dask scheduler{where}")
        fix = ("make sure workers can run again (for Slurm: the queue, the jobs' walltime)"
               if no_workers else f"restart the Dask scheduler{where} and its workers")
        self.args = (
            f"Training stopped: {what} ({lost.reason}). "
            f"{completed} run(s) completed before the loss and were saved{failed_note}; "
            f"{pending} run(s) stay pending: no result was recorded for them and no retry "
            f"was used. To resume, {fix}, then run the same `kedro run` again: it trains only "
            f"the pending runs.",
        )


def _while_training(
    records: Iterator[dict[str, Any]], drains: bool = False
) -> Iterator[dict[str, Any]]:
    """The executor's records; a SIGTERM / SIGINT meanwhile stops the runs at their next step.

    The flag is looked at between records too: the synthetic backend has no steps, and an
    executor may yield the last record of a run that finished as the signal came. An executor
    that `drains` yields the runs that still finish after the signal, then raises itself.
    """
    try:
        with interrupt.training():
            for record in records:
                yield record
                if interrupt.requested() and not drains:
                    raise interrupt.RunInterrupted("the sweep", 0, 0, False)
    finally:
        close = getattr(records, "close", None)
        if close is not None:  # a Dask executor closes its cluster now, not at garbage collection
            close()


def _key_of(record: dict[str, Any]) -> str:
    from flops_fit.execution.tasks import partition_key

    return partition_key(record["experiment_id"], int(record.get("replica", 0)))
