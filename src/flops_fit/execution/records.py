"""The result record: the ONE place that assembles what a finished run is saved as.

A record is the plan record (every field, in plan order) + `schema.RESULT_FIELDS` +
`schema.EXECUTION_FIELDS` + the settings it was trained under (`training_settings`, see
flops_fit.execution.settings) + whatever extra metrics the backend returned, all JSON-safe:
numpy scalars become Python numbers and non-finite floats become null.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime, timezone
from typing import Any

from flops_fit.execution.settings import SETTINGS_FIELD
from flops_fit.jsonsafe import json_safe
from flops_fit.schema import EXECUTION_FIELDS, RESULT_FIELDS, RUN_STATUSES, loss_problem

#: What a backend's `train` must return.
REQUIRED_METRICS: tuple[str, ...] = ("final_loss", "train_loss", "actual_flops", "tokens_seen")


def utc_now() -> str:
    """ISO-8601 UTC timestamp with milliseconds, e.g. 2026-05-01T12:00:00.123+00:00."""
    return datetime.now(timezone.utc).isoformat(timespec="milliseconds")


def check_metrics(metrics: Any) -> str | None:
    """Why a backend's return value is not a completed run, or None if it is one.

    The loss rule is `schema.loss_problem`, the one analysis applies too: a non-finite or
    non-positive final_loss is a failed run (e.g. "final_loss -1.0 is not a positive finite
    number").
    """
    if not isinstance(metrics, Mapping):
        return f"backend returned {type(metrics).__name__}, expected a mapping of metrics"
    missing = [k for k in REQUIRED_METRICS if k not in metrics]
    if missing:
        return f"backend returned no {missing}"
    return loss_problem(metrics["final_loss"])


def build_result_record(
    plan_record: Mapping[str, Any],
    *,
    replica: int,
    seed: int,
    backend: str,
    status: str,
    metrics: Mapping[str, Any] | None = None,
    error_message: str | None = None,
    started_at: str | None = None,
    finished_at: str | None = None,
    wall_time_seconds: float | None = None,
    attempts: int = 1,
    settings: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """Plan record + result fields + execution fields + backend extras (see module doc)."""
    if status not in RUN_STATUSES:
        raise ValueError(f"status must be one of {RUN_STATUSES}, got {status!r}")
    metrics = dict(metrics or {})
    record: dict[str, Any] = {k: json_safe(v) for k, v in plan_record.items()}
    result = {
        "final_loss": metrics.get("final_loss"),
        "train_loss": metrics.get("train_loss"),
        "actual_flops": metrics.get("actual_flops"),
        "tokens_seen": metrics.get("tokens_seen"),
        "wall_time_seconds": wall_time_seconds,
        "status": status,
        "error_message": error_message,
        "seed": int(seed),
        "backend": backend,
        "started_at": started_at,
        "finished_at": finished_at,
    }
    assert tuple(result) == RESULT_FIELDS, "records.py is out of step with schema.RESULT_FIELDS"
    record.update({k: json_safe(v) for k, v in result.items()})
    record.update({"replica": int(replica), "attempts": int(attempts)})
    if settings is not None:
        record[SETTINGS_FIELD] = json_safe(dict(settings))
    reserved = set(plan_record) | set(RESULT_FIELDS) | set(EXECUTION_FIELDS) | {SETTINGS_FIELD}
    for key, value in metrics.items():
        if key not in reserved:
            record[str(key)] = json_safe(value)
    return record


def record_problem(record: Any, experiment_id: str, replica: int) -> str | None:
    """Why a stored record cannot stand for a finished run of (experiment_id, replica), or None.

    A record with a problem is treated as pending: the run is done again.
    """
    if not isinstance(record, Mapping):
        return f"not a JSON object ({type(record).__name__})"
    missing = [f for f in ("experiment_id", *RESULT_FIELDS) if f not in record]
    if missing:
        return f"missing field(s) {missing}"
    if str(record["experiment_id"]) != experiment_id:
        return f"holds experiment_id {record['experiment_id']!r}, expected {experiment_id!r}"
    stored_replica = record.get("replica", 0)
    if stored_replica != replica:
        return f"holds replica {stored_replica!r}, expected {replica}"
    if record["status"] not in RUN_STATUSES:
        return f"unknown status {record['status']!r}"
    if record["status"] == "completed" and (why := loss_problem(record["final_loss"])):
        return f"status completed but {why}"
    return None
