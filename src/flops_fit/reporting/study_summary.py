"""The report's sections for a steered study: the validation verdict (which opens the report)
and the rounds (one row per round, and why the study stopped). Both are None when the study
has none: a single `kedro run` without the validation pipeline, or without rounds."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import pandas as pd

from flops_fit.reporting.formatting import as_float


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
    """The rounds table as rows, and the stop reason of the last round."""
    if not isinstance(study_rounds, pd.DataFrame) or study_rounds.empty:
        return None
    rows = []
    for r in study_rounds.to_dict("records"):
        rows.append({k: (None if isinstance(v, float) and v != v else v) for k, v in r.items()})
    stop = next((r["stop_reason"] for r in reversed(rows) if r.get("stop_reason")), None)
    return {"rounds": rows, "stop_reason": stop,
            "flops_so_far": as_float(rows[-1].get("flops_so_far"))}
