"""The data contracts between stages: which fields a plan record and a result record hold.

This module is the one place that knows the schemas (DESIGN.md, "Data contracts").
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from contextlib import suppress
from numbers import Real
from typing import Any

from flops_fit.planning.shapes import SHAPE_FIELDS

#: The plan fields of a branch of a trunk (planning.design: trunks; flops_fit.planning.trunks):
#: the trunk, the step where the branch's cooldown leaves it, the trunk's warm-up, and its
#: longest branch in the plan. A run of its own has none of them (the plan's table shows them
#: after PLAN_FIELDS when the plan has branches).
TRUNK_PLAN_FIELDS: tuple[str, ...] = ("trunk_id", "branch_step", "warmup_steps", "trunk_steps")

#: Fields every sweep_plan record carries (the planning pipeline writes them all).
PLAN_FIELDS: tuple[str, ...] = (
    "experiment_id",
    "round",  # the study round that planned the run: 0 the pilot, 1, 2, ... steered rounds
    "compute_budget",
    "target_model_size",
    "model_size",
    "num_tokens",  # D, in data_unit
    "tokens_per_param",  # D / N
    "data_unit",  # what D counts: tokens (language models) or examples (classifiers)
    "loss_unit",  # what the loss measures: the loss's declared `unit` (nats), else "loss"
    "units_per_example",  # units of D in one batch row (T for a language model)
    "model_factory",  # the model's import path (flops_fit.nn.model:make_gpt: the built-in GPT)
    "model_kwargs",  # the factory's keyword arguments for this run's size
    "size_param",  # a plugin model: the argument planning varied, and its value
    "size_value",
    *SHAPE_FIELDS,  # the built-in GPT: its shape
    "batch_size",
    "num_steps",
    "flops_formula",
    "flops_per_token",  # training FLOPs per unit of D
    "planned_flops",
    "flops_6nd",
    "embedding_params",
    "total_params",
    "corpus_epochs",
    "max_epochs",
)

#: `loss_unit` of a loss that declares no unit, and of a runs table without the column.
DEFAULT_LOSS_UNIT = "loss"

#: What training needs from a plan record; anything else is carried along untouched. (The model
#: itself is `model_kwargs`, or the shape fields of a GPT plan; the backend checks it.)
REQUIRED_PLAN_FIELDS: tuple[str, ...] = (
    "experiment_id",
    "compute_budget",
    "model_size",
    "num_tokens",
    "batch_size",
    "num_steps",
    "flops_formula",
)

#: Required plan fields that must hold a positive, finite number.
POSITIVE_PLAN_FIELDS: tuple[str, ...] = (
    "compute_budget",
    "model_size",
    "num_tokens",
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

#: What analysis reads from a runs table, by role; `analysis.columns` maps each role to a column.
RUN_COLUMN_ROLES: tuple[str, ...] = (
    "experiment_id",
    "model_size",  # N
    "num_tokens",  # D
    "compute",  # C of each run
    "compute_budget",  # the planned budget, used to group runs when present
    "loss",
    "status",
    "error_message",
)

#: `analysis_runs`: the columns every analysis runs table starts with (the source's own columns
#: follow; analysis adds `budget_id`, `budget`, `reason` and `used_in_fit`).
ANALYSIS_RUN_COLUMNS: tuple[str, ...] = (
    "experiment_id",
    "compute_budget",
    "model_size",
    "num_tokens",
    "compute",
    "final_loss",
    "status",
    "error_message",
)

#: The three fitting approaches, in the order every table and figure lists them.
APPROACHES: tuple[str, ...] = ("approach_1", "approach_2", "approach_3")
ISOFLOP_APPROACHES: tuple[str, ...] = ("approach_1", "approach_2")

#: The power laws fitted through the per-budget optima: law key -> the optimum's column.
LAW_COLUMNS: dict[str, str] = {"n_opt": "model_size", "d_opt": "num_tokens", "l_opt": "loss"}
#: Approach 3's surface parameters and the closed-form allocation constants derived from them.
SURFACE_KEYS: tuple[str, ...] = ("E", "A", "B", "alpha", "beta", "a", "b", "G")

#: `optimal_points`: per budget per approach, the optimum and whether the power laws used it.
OPTIMAL_POINT_COLUMNS: tuple[str, ...] = (
    "approach",
    "compute_budget",
    "model_size",
    "num_tokens",
    "loss",
    "tokens_per_param",
    "used_in_fit",
    "reason",
    "parabola_c2",
    "parabola_c1",
    "parabola_c0",
    "log10_n_min",
    "log10_n_max",
)
#: `predictions`: N_opt, D_opt, D/N and the loss with intervals at the target budgets.
PREDICTION_COLUMNS: tuple[str, ...] = (
    "approach",
    "compute_budget",
    "model_size",
    "model_size_lo",
    "model_size_hi",
    "num_tokens",
    "num_tokens_lo",
    "num_tokens_hi",
    "tokens_per_param",
    "tokens_per_param_lo",
    "tokens_per_param_hi",
    "loss",
    "loss_lo",
    "loss_hi",
)
#: `scaling_law_curves`: the fitted laws with their bands on a grid of budgets (the prediction
#: columns without tokens per parameter).
CURVE_COLUMNS: tuple[str, ...] = tuple(
    c for c in PREDICTION_COLUMNS if not c.startswith("tokens_per_param")
)

#: Fields the training executor adds to every `runs` record besides RESULT_FIELDS: which seed
#: replica of the planned run it is (partition `<experiment_id>` for 0, `<experiment_id>-r<k>`
#: for k >= 1) and how many attempts the invocation that wrote it made.
EXECUTION_FIELDS: tuple[str, ...] = ("replica", "attempts")

#: The run record's field with its loss curve: a list of points, each LOSS_CURVE_POINT_FIELDS
#: (`flops_fit.nn.curves`). It stays in the run's file; `loss_curves` tabulates it.
LOSS_CURVE_FIELD = "loss_curve"
LOSS_CURVE_POINT_FIELDS: tuple[str, ...] = ("step", "units", "heldout_loss", "train_loss")

#: `loss_curves`: one row per curve point of every stored replica, placed by its plan fields.
LOSS_CURVE_COLUMNS: tuple[str, ...] = (
    "experiment_id", "replica", "round", "compute_budget", "model_size", "num_tokens", "status",
    *LOSS_CURVE_POINT_FIELDS,
)

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
        if record.get("trunk_id") is not None:
            problem = _branch_problem(record)
            if problem:
                raise SchemaError(f"{source}[{i}] ({eid}): {problem}; re-run planning")
        if eid in seen:
            raise SchemaError(f"{source}[{i}]: duplicate experiment_id {eid!r}")
        seen.add(eid)
        records.append(dict(record))
    if not records:
        raise SchemaError(
            f"{source} holds no runs: run the planning pipeline (kedro run --pipelines planning)"
        )
    return records


def _branch_problem(record: Mapping[str, Any]) -> str | None:
    """What is wrong with a branch's trunk fields, or None."""
    values = {f: record.get(f) for f in ("branch_step", "warmup_steps", "trunk_steps")}
    for name, value in values.items():
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            return f"a branch of trunk {record['trunk_id']!r} needs a positive integer {name}, " \
                   f"got {value!r}"
    steps = record["num_steps"]
    if not values["warmup_steps"] <= values["branch_step"] < steps <= values["trunk_steps"]:
        return (f"its warm-up {values['warmup_steps']}, branch step {values['branch_step']}, "
                f"num_steps {steps} and trunk_steps {values['trunk_steps']} are out of order")
    return None


def _is_positive_number(value: Any) -> bool:
    """True for a finite number > 0 (numpy scalars included); False for text, bools, NaN."""
    if isinstance(value, bool) or not isinstance(value, Real):
        return False
    return math.isfinite(float(value)) and float(value) > 0


def loss_problem(loss: Any) -> str | None:
    """Why `loss` cannot be a run's final loss, or None: THE loss rule of both ends.

    A loss is usable when it is a finite number > 0 (numpy and torch scalars included). Training
    (`execution.records.check_metrics`) stores a run whose loss breaks the rule as failed, with
    this message; analysis (`fitting.runs.selection.select_runs`) leaves such rows out with it.
    """
    if hasattr(loss, "item") and not isinstance(loss, (str, bytes)):
        with suppress(TypeError, ValueError):
            loss = loss.item()
    if _is_positive_number(loss):
        return None
    if loss is None:
        return "final_loss is missing (not a positive finite number)"
    if isinstance(loss, float) and math.isnan(loss):
        return "final_loss NaN is not a positive finite number"
    return f"final_loss {loss!r} is not a positive finite number"


#: `study_rounds.csv` (a steered study): one row per round, 0 being the pilot; the N_opt
#: columns are the answer at study.target_budget after that round's fit
STUDY_ROUND_COLUMNS: tuple[str, ...] = (
    "round", "runs_added", "flops_added", "flops_so_far", "approach", "n_opt", "n_opt_lo",
    "n_opt_hi", "interval_ratio", "stop_reason",
)
