"""The data contracts between stages: which fields a plan record and a result record hold.

This module is the one place that knows the schemas (DESIGN.md, "Data contracts").
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from numbers import Real
from typing import Any

from flops_fit.shapes import SHAPE_FIELDS

#: Fields every sweep_plan record carries (the planning pipeline writes them all).
PLAN_FIELDS: tuple[str, ...] = (
    "experiment_id",
    "compute_budget",
    "target_model_size",
    "model_size",
    "num_tokens",
    "tokens_per_param",
    *SHAPE_FIELDS,
    "batch_size",
    "num_steps",
    "flops_formula",
    "flops_per_token",
    "planned_flops",
    "flops_6nd",
    "embedding_params",
    "total_params",
    "corpus_epochs",
    "max_epochs",
)

#: What training needs from a plan record; anything else is carried along untouched.
REQUIRED_PLAN_FIELDS: tuple[str, ...] = (
    "experiment_id",
    "compute_budget",
    "model_size",
    "num_tokens",
    *SHAPE_FIELDS,
    "batch_size",
    "num_steps",
    "flops_formula",
)

#: Required plan fields that must hold a positive, finite number.
POSITIVE_PLAN_FIELDS: tuple[str, ...] = (
    "compute_budget",
    "model_size",
    "num_tokens",
    *SHAPE_FIELDS,
    "batch_size",
    "num_steps",
)

#: Fields training adds to the plan record to make a result record.
RESULT_FIELDS: tuple[str, ...] = (
    "final_loss",
    "train_loss",
    "actual_flops",
    "tokens_seen",
    "wall_time_seconds",
    "status",
    "error_message",
    "seed",
    "backend",
    "started_at",
    "finished_at",
)

RUN_STATUSES = ("completed", "failed")

#: Fields the training executor adds to every `runs` record besides RESULT_FIELDS: which seed
#: replica of the planned run it is (partition `<experiment_id>` for 0, `<experiment_id>-r<k>`
#: for k >= 1) and how many attempts the invocation that wrote it made.
EXECUTION_FIELDS: tuple[str, ...] = ("replica", "attempts")

#: Columns the `results` table adds when it aggregates the seed replicas of one experiment_id.
REPLICA_AGGREGATE_FIELDS: tuple[str, ...] = (
    "num_replicas",
    "num_replicas_completed",
    "final_loss_std",
)


class SchemaError(ValueError):
    """A record or table does not follow the data contract; the message names the field."""


def validate_plan(plan: Any, source: str = "sweep_plan") -> list[dict[str, Any]]:
    """Check a sweep plan before any run starts; returns the records as a list of dicts."""
    if not isinstance(plan, Sequence) or isinstance(plan, (str, bytes)):
        raise SchemaError(f"{source} must be a list of run records, got {type(plan).__name__}")
    records: list[dict[str, Any]] = []
    seen: set[str] = set()
    for i, record in enumerate(plan):
        if not isinstance(record, Mapping):
            raise SchemaError(f"{source}[{i}] must be a mapping, got {type(record).__name__}")
        missing = [f for f in REQUIRED_PLAN_FIELDS if f not in record or record[f] is None]
        if missing:
            ident = record.get("experiment_id", f"#{i}")
            raise SchemaError(f"{source}[{i}] ({ident}) is missing field(s) {missing}")
        eid = str(record["experiment_id"])
        for field in POSITIVE_PLAN_FIELDS:
            if not _is_positive_number(record[field]):
                raise SchemaError(
                    f"{source}[{i}] ({eid}): field '{field}' must be a positive number, "
                    f"got {record[field]!r}"
                )
        if eid in seen:
            raise SchemaError(f"{source}[{i}]: duplicate experiment_id {eid!r}")
        seen.add(eid)
        records.append(dict(record))
    if not records:
        raise SchemaError(
            f"{source} holds no runs: run the planning pipeline (kedro run --pipelines planning)"
        )
    return records


def _is_positive_number(value: Any) -> bool:
    """True for a finite number > 0 (numpy scalars included); False for text, bools, NaN."""
    if isinstance(value, bool) or not isinstance(value, Real):
        return False
    return math.isfinite(float(value)) and float(value) > 0
