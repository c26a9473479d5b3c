"""The report's run inventory: what became of every recorded run, per budget and in all.

Each run is counted in exactly one of three states, so the counts add up and each table lists
exactly the runs its count counts:

- failed: the run did not finish with a usable loss: its status is not `completed`, or its loss
  is missing, NaN, infinite or <= 0 (`schema.loss_problem`, the rule by which training stores
  such a run as failed and analysis leaves it out). The "Failed runs" table lists them, each
  with its error message, else the reason analysis gave.
- excluded: completed with a usable loss, but analysis left it out of the fits (an outlier,
  `analysis.drop_highest_loss`, no budget, a D that contradicts its C). The "Runs excluded from
  the fits" table lists them with the reason.
- used: the rest, the runs the fits use. A budget's best loss is the lowest of its used runs.

runs = completed + failed and completed = excluded + used, per budget and in all.
"""

from __future__ import annotations

from typing import Any

import pandas as pd

from flops_fit.reporting import inputs as inp
from flops_fit.reporting.formatting import as_float
from flops_fit.schema import loss_problem

NO_ERROR = "no error message recorded"


def inventory(runs: pd.DataFrame, laws, have_runs: bool) -> dict[str, Any]:
    """The inventory section of the report summary; `runs` is `inputs.runs_frame`'s table."""
    reasons = inp.excluded_runs(laws, runs)
    completed = runs[runs["completed"]]
    failed = runs[~runs["completed"]]
    is_excluded = runs["completed"] & runs["experiment_id"].isin(reasons)
    used = runs[runs["completed"] & ~is_excluded]
    failed_ids = set(failed["experiment_id"])
    excluded_ids = set(runs.loc[is_excluded, "experiment_id"])
    out: dict[str, Any] = {
        "have_runs": have_runs,
        "total": int(len(runs)),
        "completed": int(len(completed)),
        "failed": int(len(failed)),
        "excluded": int(is_excluded.sum()),
        "used": int(len(used)),
        "failed_runs": [
            {"experiment_id": r.experiment_id, "compute_budget": as_float(r.budget),
             "model_size": as_float(r.model_size), "status": r.status or "unknown",
             "error": _failure(r, reasons.get(r.experiment_id))}
            for r in failed.itertuples(index=False)
        ],
        # a failed run is in the failed table only, though analysis lists it as left out too;
        # an id the runs table does not hold is in neither count nor table
        "excluded_runs": [_excluded_row(runs, eid, why) for eid, why in reasons.items()
                          if eid not in failed_ids and eid in excluded_ids],
        "per_budget": [],
    }
    # runs analysis could not place in a budget are a row of their own, so the rows add up
    for budget, group in runs.groupby("budget", dropna=False, sort=True):
        done = group[group["completed"]]
        kept = used[used.index.isin(group.index)]
        out["per_budget"].append({
            "compute_budget": as_float(budget), "runs": int(len(group)),
            "completed": int(len(done)), "failed": int(len(group) - len(done)),
            "excluded": int(is_excluded[group.index].sum()), "used": int(len(kept)),
            "best_loss": as_float(kept["final_loss"].min()) if len(kept) else None,
        })
    design = _design(runs)
    if design is not None:
        out["design"] = design
    if {"num_replicas", "num_replicas_completed"} <= set(runs.columns) and len(runs):
        total = pd.to_numeric(runs["num_replicas"], errors="coerce").sum()
        done = pd.to_numeric(runs["num_replicas_completed"], errors="coerce").sum()
        out["replicas"] = {"total": int(total), "completed": int(done),
                           "failed": int(total - done)}
    return out


def _failure(run: Any, reason: str | None) -> str:
    """Why a run failed: its error message, else analysis's reason, else the loss rule's."""
    if run.error_message:
        return run.error_message
    if reason:
        return reason
    if run.status == "completed":
        return loss_problem(run.final_loss) or NO_ERROR
    return NO_ERROR


def _excluded_row(runs: pd.DataFrame, eid: str, reason: str) -> dict[str, Any]:
    match = runs[runs["experiment_id"] == eid]
    row = match.iloc[0] if len(match) else None  # None: scaling_laws names a run not in the table
    return {
        "experiment_id": eid, "reason": reason,
        "compute_budget": as_float(row["budget"]) if row is not None else None,
        "model_size": as_float(row["model_size"]) if row is not None else None,
        "final_loss": as_float(row["final_loss"]) if row is not None else None,
    }


def _design(runs: pd.DataFrame) -> dict[str, Any] | None:
    """How the runs were trained when some are branches of trunks: the trunks, and the FLOPs
    of the design against the same runs trained one by one; None otherwise."""
    need = ["trunk_id", "experiment_id", "num_steps", "branch_step"]
    cost = next((c for c in ("planned_flops", "compute") if c in runs.columns), None)
    if cost is None or not set(need) <= set(runs.columns) or not runs["trunk_id"].notna().any():
        return None
    from flops_fit.planning.trunks import design_flops

    rows = runs[need].astype(object).where(runs[need].notna(), None)
    rows["planned_flops"] = runs[cost].to_numpy()  # each run's C, trained one by one
    try:
        return design_flops(rows.to_dict("records"))
    except (TypeError, ValueError):  # a hand-edited table: say nothing rather than guess
        return None
