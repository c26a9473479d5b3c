"""The report's sections for a steered study: the validation verdict (which opens the report)
and the rounds (one row per round, and why the study stopped). Both are None when the study
has none: a single `kedro run` without the validation pipeline, or without rounds."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

import pandas as pd

from flops_fit.reporting.formatting import as_float

log = logging.getLogger(__name__)


def validation_section(validation: Mapping[str, Any] | None) -> dict[str, Any] | None:
    """verdict, passed (True / False / None: not scored), the budget and every run's numbers."""
    if not isinstance(validation, Mapping) or "verdict" not in validation:
        return None
    runs = [{
        "role": r.get("role"), "experiment_id": r.get("experiment_id"),
        "model_size": as_float(r.get("model_size")), "num_tokens": as_float(r.get("num_tokens")),
        "predicted_loss": as_float(r.get("predicted_loss")),
        "predictive_interval": list(r.get("predictive_interval") or [None, None]),
        "observed_loss": as_float(r.get("observed_loss")), "verdict": r.get("verdict"),
    } for r in validation.get("runs") or []]
    passed = validation.get("passed")
    return {
        "verdict": str(validation["verdict"]),
        "passed": passed,
        "status": "passed" if passed else "failed" if passed is False else "not scored",
        "compute_budget": as_float(validation.get("compute_budget")),
        "budget_from": validation.get("budget_from"),
        "approach": validation.get("approach"),
        "runs": runs,
    }


def study_section(study_rounds: pd.DataFrame | None) -> dict[str, Any] | None:
    """The rounds table as rows, the stop reason of the last round, and `unassessed` when no
    next_round has assessed the last round yet ({"round", "why"}, else None)."""
    if not isinstance(study_rounds, pd.DataFrame) or study_rounds.empty:
        return None
    rows = []
    for r in study_rounds.to_dict("records"):
        rows.append({k: (None if isinstance(v, float) and v != v else v) for k, v in r.items()})
    stop = next((r["stop_reason"] for r in reversed(rows) if r.get("stop_reason")), None)
    last = rows[-1]
    unassessed = None
    if last.get("n_opt") is None and not last.get("stop_reason"):
        unassessed = {"round": int(last["round"]), "why": _unassessed_why(int(last["round"]))}
        log.warning("Study round %d has no N_opt(C*) in study_rounds: %s", unassessed["round"],
                    unassessed["why"])
    return {"rounds": rows, "stop_reason": stop, "unassessed": unassessed,
            "flops_so_far": as_float(last.get("flops_so_far"))}


def _unassessed_why(k: int) -> str:
    """A round's N_opt(C*) is in the file of the round after it, which the next_round run after
    the round's fit writes; the manual workflow can stop before that run."""
    return (f"a round is assessed by the next_round run after its fit (kedro study always runs "
            f"it), and none has run since round {k} was planned. Train and fit it, then run "
            f'"kedro run --pipelines next_round" (with "--params study.max_rounds={k}" to stop '
            "the study there) and the reporting pipeline again")
