"""The report's sections for a steered study: the validation verdict (which opens the report)
and the rounds (one row per round, and why the study stopped). Both are None when the study
has none: a single `kedro run` without the validation pipeline, or without rounds.

A verdict is the report's only when the validation scored the fit the report is about: a
validation.json left by an earlier fit (the analysis run again since, with other runs or
another law) is said to be one, with what it predicted and how to check this fit instead."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

import pandas as pd

from flops_fit.reporting.formatting import as_float, format_count, format_flops, format_sig
from flops_fit.reporting.inputs import APPROACH_NAMES
from flops_fit.study.validation import checks_fit

log = logging.getLogger(__name__)


#: how to score the current fit, for a report that finds a validation of an earlier one
RERUN = ("kedro run --pipelines validation,reporting (with the --env and --params of the "
         "analysis this report is about)")


def _scored(validation: Any) -> bool:
    return isinstance(validation, Mapping) and "verdict" in validation


def validation_section(validation: Mapping[str, Any] | None,
                       laws: Mapping[str, Any] | None) -> dict[str, Any] | None:
    """verdict, passed (True / False / None: not scored), the budget and every run's numbers;
    None without a validation, or with one of another fit than `laws` (`earlier_validation`)."""
    if not _scored(validation) or not checks_fit(validation, laws):
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


def earlier_validation(validation: Mapping[str, Any] | None,
                       laws: Mapping[str, Any] | None) -> dict[str, Any] | None:
    """A stored validation that did not score the fit `laws` is: what it checked (`fit`:
    approach, law family, runs), its prediction, and `text`, the report's note; else None."""
    if not _scored(validation) or checks_fit(validation, laws):
        return None
    fit = validation.get("fit") if isinstance(validation.get("fit"), Mapping) else {}
    approach = fit.get("approach") or validation.get("approach")
    prediction = validation.get("prediction") if isinstance(validation.get("prediction"),
                                                            Mapping) else {}
    what = APPROACH_NAMES.get(str(approach), str(approach or "an approach"))
    if fit.get("law"):
        what += f" ({fit['law']} law)"
    if fit.get("n_runs") is not None:
        what += f" fitted to {fit['n_runs']} runs"
        if fit.get("largest_budget") is not None:
            what += f" up to {format_flops(fit['largest_budget'])} FLOPs"
    said = (f"{what} predicted N_opt = {format_count(prediction.get('n_opt'))} and a loss of "
            f"{format_sig(prediction.get('loss'), 4)} at "
            f"{format_flops(validation.get('compute_budget'))} FLOPs")
    which = ("checked an earlier fit, not this one" if fit.get("fingerprint") else
             "does not record which fit it checked (it predates that record)")
    log.warning("validation.json %s: it is left out of the report", which)
    return {"fit": dict(fit) or None, "approach": approach,
            "compute_budget": as_float(validation.get("compute_budget")),
            "prediction": dict(prediction) or None, "rerun": RERUN,
            "text": (f"The stored validation (validation.json) {which}: {said}. Its verdict "
                     f"says nothing about this fit; to check this fit, run {RERUN}.")}


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
