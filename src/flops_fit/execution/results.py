"""From stored run records to the `run_results` (one row per replica) and `results` tables.

`results` has ONE row per experiment_id (docs/guides/outputs.md): final_loss, train_loss,
wall_time_seconds and numeric backend extras are means over the completed replicas;
`final_loss_std` is their sample standard deviation (empty with fewer than two);
`num_replicas` / `num_replicas_completed` count them; status is completed if any replica
completed; other fields come from the lowest completed replica (else the lowest replica).
"""

from __future__ import annotations

import logging
import math
from collections.abc import Mapping
from typing import Any

import numpy as np
import pandas as pd

from flops_fit.execution.records import record_problem
from flops_fit.execution.settings import SETTINGS_FIELD
from flops_fit.execution.tasks import load_partition, partition_key
from flops_fit.jsonsafe import is_finite_number
from flops_fit.schema import (
    EXECUTION_FIELDS,
    LOSS_CURVE_COLUMNS,
    LOSS_CURVE_FIELD,
    LOSS_CURVE_POINT_FIELDS,
    PLAN_FIELDS,
    REPLICA_AGGREGATE_FIELDS,
    RESULT_FIELDS,
)

log = logging.getLogger(__name__)

#: Result fields averaged over completed replicas in `results` (numeric extras are too).
MEAN_FIELDS = ("final_loss", "train_loss", "wall_time_seconds")


def collect_records(
    runs: Mapping[str, Any] | None,
    plan: list[dict[str, Any]],
    seeds: int,
    backend: str | None = None,
) -> tuple[list[dict[str, Any]], list[tuple[str, str]]]:
    """The stored records of the current plan's runs, in plan then replica order.

    Partitions of experiments not in the plan, of replicas >= `seeds` or of another backend are
    left out; unreadable or partial ones are left out and returned as (partition key, why).
    """
    runs = runs or {}
    records: list[dict[str, Any]] = []
    problems: list[tuple[str, str]] = []
    for plan_record in plan:
        eid = str(plan_record["experiment_id"])
        for replica in range(seeds):
            key = partition_key(eid, replica)
            if key not in runs:
                continue
            try:
                record = load_partition(runs[key])
            except Exception as exc:
                problems.append((key, f"unreadable ({type(exc).__name__})"))
                continue
            problem = record_problem(record, eid, replica)
            if problem is None and backend is not None and record.get("backend") != backend:
                problem = f"written by backend {record.get('backend')!r}, not {backend!r}"
            if problem:
                problems.append((key, problem))
                continue
            records.append(dict(record))
    planned_keys = {partition_key(str(r["experiment_id"]), k) for r in plan for k in range(seeds)}
    ignored = len(set(runs) - planned_keys)
    if ignored:
        log.info(
            "%d stored run(s) are not in the current plan and are left out of results", ignored
        )
    for key, why in problems:
        log.warning("Run %s is left out of results: %s", key, why)
    return records, problems


def _columns(records: list[dict[str, Any]], extra_first: tuple[str, ...] = ()) -> list[str]:
    known = [*PLAN_FIELDS, *RESULT_FIELDS, *extra_first]
    # the settings a run was trained under and its loss curve stay in its file: no table cell
    seen = {*known, SETTINGS_FIELD, LOSS_CURVE_FIELD}
    plan_extra: list[str] = []
    for record in records:
        for key in record:
            if key not in seen:
                seen.add(key)
                plan_extra.append(key)
    return known + plan_extra


def run_results_table(records: list[dict[str, Any]]) -> pd.DataFrame:
    """One row per stored replica record."""
    columns = _columns(records, EXECUTION_FIELDS)
    return pd.DataFrame.from_records(records, columns=columns)


def loss_curves_table(records: list[dict[str, Any]]) -> pd.DataFrame:
    """One row per loss-curve point of every stored replica, failed ones included (a diverged
    run's curve shows how it diverged), in `LOSS_CURVE_COLUMNS`."""
    rows = []
    for record in records:
        points = record.get(LOSS_CURVE_FIELD)
        if not isinstance(points, list):
            continue
        where = {
            "experiment_id": record.get("experiment_id"),
            "replica": record.get("replica", 0),
            "round": record.get("round"),
            "compute_budget": record.get("compute_budget"),
            "model_size": record.get("model_size"),
            "num_tokens": record.get("num_tokens"),
            "status": record.get("status"),
        }
        for point in points:
            if isinstance(point, Mapping):
                rows.append({**where, **{k: point.get(k) for k in LOSS_CURVE_POINT_FIELDS}})
    return pd.DataFrame.from_records(rows, columns=list(LOSS_CURVE_COLUMNS))


def _aggregate(group: list[dict[str, Any]], plan_keys: set[str]) -> dict[str, Any]:
    group = sorted(group, key=lambda r: r.get("replica", 0))
    completed = [r for r in group if r["status"] == "completed"]
    base = dict(completed[0] if completed else group[0])
    for key in EXECUTION_FIELDS:
        base.pop(key, None)
    numeric_extras = {
        k
        for r in completed
        for k, v in r.items()
        if k not in plan_keys
        and k not in RESULT_FIELDS
        and k not in EXECUTION_FIELDS
        and is_finite_number(v)
    }
    for key in (*MEAN_FIELDS, *sorted(numeric_extras)):
        values = [r.get(key) for r in completed if is_finite_number(r.get(key))]
        base[key] = float(np.mean(values)) if values else None
    losses = [r["final_loss"] for r in completed]
    base["status"] = "completed" if completed else "failed"
    failed = [r for r in group if r["status"] != "completed"]
    base["error_message"] = (
        "; ".join(f"replica {r.get('replica', 0)}: {r.get('error_message')}" for r in failed)
        if failed
        else None
    )
    starts = [r["started_at"] for r in group if r.get("started_at")]
    ends = [r["finished_at"] for r in group if r.get("finished_at")]
    base["started_at"] = min(starts) if starts else None
    base["finished_at"] = max(ends) if ends else None
    base["num_replicas"] = len(group)
    base["num_replicas_completed"] = len(completed)
    base["final_loss_std"] = float(np.std(losses, ddof=1)) if len(losses) >= 2 else math.nan
    return base


def results_table(
    records: list[dict[str, Any]], plan_fields: set[str] | None = None
) -> pd.DataFrame:
    """One row per experiment_id, replicas aggregated (see the module doc).

    `plan_fields`: the keys of the plan records (never averaged); default schema.PLAN_FIELDS.
    """
    groups: dict[str, list[dict[str, Any]]] = {}
    for record in records:
        groups.setdefault(str(record["experiment_id"]), []).append(record)
    plan_keys = set(PLAN_FIELDS) | set(plan_fields or ())
    rows = [_aggregate(group, plan_keys) for group in groups.values()]
    columns = [c for c in _columns(rows, REPLICA_AGGREGATE_FIELDS) if c not in EXECUTION_FIELDS]
    return pd.DataFrame.from_records(rows, columns=columns)
