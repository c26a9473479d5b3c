"""From a sweep plan to the runs still to do: replicas, seeds, and what counts as pending.

Pending, for each planned (experiment_id, replica):
- no stored record, an unreadable one (e.g. hand-edited), or a partial one -> run it;
- a completed record of the same backend -> never run again (its file is not touched), unless
  it was trained under other settings than `settings` (flops_fit.execution.settings): then
  `on_changed` decides (retrain: run it again; error and reuse: counted in `changed`, the caller
  stops or says so);
- a failed record -> run again if `max_retries` > 0 (a failure earns at most `max_retries`
  new attempts per invocation, whether it happened in this invocation or an earlier one);
- a record written by another backend -> run again with this one (logged).

A branch of a trunk (`flops_fit.planning.trunks`) takes its trunk's seed, a stable hash of
(global seed, trunk_id, replica), and belongs to the trunk's chain: the executors run the
pending branches of one chain one at a time, in order of their branch points, since each goes
on from the trunk state the one before saved.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any

from flops_fit.execution.records import record_problem
from flops_fit.execution.settings import SETTINGS_FIELD, setting_changes

log = logging.getLogger(__name__)

SEED_MODULUS = 2**32  # fits every RNG's seed type (numpy legacy, torch, random)


def partition_key(experiment_id: str, replica: int) -> str:
    """`<experiment_id>` for replica 0, `<experiment_id>-r<k>` for replica k >= 1."""
    return str(experiment_id) if replica == 0 else f"{experiment_id}-r{replica}"


def run_seed(global_seed: int, experiment_id: str, replica: int) -> int:
    """The run's own seed: a stable hash of (global seed, experiment_id, replica).

    Not Python's hash() (salted per process): the same run gets the same seed on any machine,
    in any order, alone or in a sweep.
    """
    key = f"{int(global_seed)}:{experiment_id}:{int(replica)}".encode()
    return int.from_bytes(hashlib.sha256(key).digest()[:8], "big") % SEED_MODULUS


@dataclass(frozen=True)
class RunTask:
    """One run to execute: a planned record, which replica it is, its seed and retry budget."""

    partition_key: str
    experiment_id: str
    replica: int
    seed: int
    record: dict[str, Any] = field(repr=False)
    max_attempts: int = 1
    reason: str = "new"  # why it is pending: new, failed, unreadable, partial, other backend,
    # changed settings
    settings: dict[str, Any] | None = field(default=None, repr=False)  # stored with the result
    chain: str | None = None  # a branch: its trunk's partition key (one run of it at a time)
    chain_order: int = 0  # where it leaves the trunk (its branch step)


def expand_plan(plan: list[dict[str, Any]], seeds: int, global_seed: int) -> list[RunTask]:
    """Every planned run times `seeds` replicas, in plan order."""
    tasks = []
    for record in plan:
        eid = str(record["experiment_id"])
        trunk = record.get("trunk_id")
        for replica in range(seeds):
            tasks.append(
                RunTask(
                    partition_key=partition_key(eid, replica),
                    experiment_id=eid,
                    replica=replica,
                    seed=run_seed(global_seed, str(trunk) if trunk else eid, replica),
                    record=dict(record),
                    chain=partition_key(str(trunk), replica) if trunk else None,
                    chain_order=int(record.get("branch_step") or 0),
                )
            )
    return tasks


def in_chain_order(tasks: list[RunTask]) -> list[RunTask]:
    """The tasks in their order, except that a chain's tasks run together, in order of their
    branch points, from where its first one stands."""
    chains: dict[str, list[RunTask]] = {}
    for task in tasks:
        if task.chain is not None:
            chains.setdefault(task.chain, []).append(task)
    out: list[RunTask] = []
    for task in tasks:
        if task.chain is None:
            out.append(task)
        elif task.chain in chains:
            out.extend(sorted(chains.pop(task.chain), key=lambda t: t.chain_order))
    return out


def chain_heads(tasks: list[RunTask]) -> tuple[list[RunTask], dict[str, list[RunTask]]]:
    """(the tasks that may start now: every task outside a chain and each chain's first, the
    rest of each chain in the order to run it)."""
    heads: list[RunTask] = []
    rest: dict[str, list[RunTask]] = {}
    for task in in_chain_order(tasks):
        if task.chain is None or task.chain not in rest:
            heads.append(task)
            if task.chain is not None:
                rest[task.chain] = []
        else:
            rest[task.chain].append(task)
    return heads, rest


def load_partition(value: Any) -> Any:
    """A PartitionedDataset value is a load function; a memory catalog may hold the data."""
    return value() if callable(value) else value


@dataclass
class PendingReport:
    """What selection found: counts by outcome and every stored file that was not usable."""

    planned: int = 0
    completed: int = 0
    failed_kept: int = 0
    pending: dict[str, int] = field(default_factory=dict)
    problems: list[tuple[str, str]] = field(default_factory=list)  # (partition key, why)
    # completed runs trained under other settings: (partition key, [(setting, old, new), ...])
    changed: list[tuple[str, list[tuple[str, Any, Any]]]] = field(default_factory=list)
    on_changed: str = "error"
    unrecorded: int = 0  # completed runs stored without their settings (only partly compared)

    def summary(self) -> str:
        completed = f"{self.completed} already completed"
        if self.changed and self.on_changed == "reuse":
            completed += f" ({len(self.changed)} trained under other settings, reused)"
        parts = [f"{self.planned} planned runs", completed]
        if self.failed_kept:
            parts.append(f"{self.failed_kept} failed and not retried (max_retries: 0)")
        pending = sum(self.pending.values())
        detail = ", ".join(f"{n} {why}" for why, n in sorted(self.pending.items()))
        parts.append(f"{pending} to run" + (f" ({detail})" if detail else ""))
        return "; ".join(parts)


def select_pending(
    tasks: list[RunTask],
    existing: Mapping[str, Any] | None,
    backend: str,
    max_retries: int,
    settings: Mapping[str, Any] | None = None,
    on_changed: str = "error",
) -> tuple[list[RunTask], PendingReport]:
    """Split planned runs into done and pending (see the module doc); nothing is run here.

    `settings`: what the current configuration trains (`settings.training_settings`); None
    compares nothing."""
    existing = existing or {}
    report = PendingReport(planned=len(tasks), on_changed=on_changed)
    pending: list[RunTask] = []

    def add(task: RunTask, reason: str, max_attempts: int) -> None:
        report.pending[reason] = report.pending.get(reason, 0) + 1
        pending.append(replace(task, max_attempts=max_attempts, reason=reason,
                               settings=None if settings is None else dict(settings)))

    for task in tasks:
        if task.partition_key not in existing:
            add(task, "new", 1 + max_retries)
            continue
        try:
            stored = load_partition(existing[task.partition_key])
        except Exception as exc:  # a file that does not parse: run again, and say so
            why = f"unreadable ({type(exc).__name__}: {_first_line(exc)})"
            report.problems.append((task.partition_key, why))
            add(task, "unreadable", 1 + max_retries)
            continue
        problem = record_problem(stored, task.experiment_id, task.replica)
        if problem:
            report.problems.append((task.partition_key, problem))
            add(task, "partial", 1 + max_retries)
        elif stored.get("backend") != backend:
            report.problems.append(
                (
                    task.partition_key,
                    f"written by backend {stored.get('backend')!r}, this sweep uses {backend!r}",
                )
            )
            add(task, "other backend", 1 + max_retries)
        elif stored["status"] == "completed":
            changes = (
                [] if settings is None
                else setting_changes(stored, task.record, settings, task.seed)
            )
            if settings is not None and not isinstance(stored.get(SETTINGS_FIELD), Mapping):
                report.unrecorded += 1
            if changes:
                report.changed.append((task.partition_key, changes))
            if changes and on_changed == "retrain":
                add(task, "changed settings", 1 + max_retries)
            else:
                report.completed += 1
        elif max_retries > 0:
            add(task, "failed", max_retries)
        else:
            report.failed_kept += 1
    return pending, report


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    cause = exc.__cause__
    if cause is not None and str(cause).strip():
        text = str(cause).strip()
    return text.splitlines()[0][:200] if text else ""


__all__ = [
    "PendingReport",
    "RunTask",
    "chain_heads",
    "expand_plan",
    "in_chain_order",
    "load_partition",
    "partition_key",
    "run_seed",
    "select_pending",
]
