"""The report's answer: at the headline budget, train N on D tokens (or the study's unit of D),
with its interval and how far that budget lies beyond the fitted ones.

The values come, in this order, from the predictions table (the budget is a target budget), the
fitted curves (the budget lies inside their range; read off in log-log) or the bare power laws
(no interval; for Approach 3 the surface's own optimum under the study's compute model). When
the preferred approach was not fitted, the next of `HEADLINE_ORDER` is used and the report says
why. There is no answer, with the reason, when the budget lies too far beyond the fit or when
analysis warns that the analysed values may not be a loss.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import numpy as np
import pandas as pd

from flops_fit.fitting.surface.compute_model import ComputeModel, optimal_allocation
from flops_fit.fitting.surface.law import parametric_loss
from flops_fit.parameters.reporting import MAX_EXTRAPOLATION
from flops_fit.reporting import inputs as inp
from flops_fit.reporting.formatting import (
    DataUnit,
    format_count,
    format_flops,
    format_interval,
    format_sig,
)

#: The fallback order when the preferred headline approach could not be fitted.
HEADLINE_ORDER = ("approach_3", "approach_2", "approach_1")


def headline(laws: Mapping[str, Any], preds: pd.DataFrame, curves: pd.DataFrame,
             optima: pd.DataFrame, budget: float, preferred: str, confidence: float,
             notes: list[str], unit: DataUnit | None = None,
             max_extrapolation: float = MAX_EXTRAPOLATION) -> dict[str, Any]:
    """The compute-optimal N, D, loss and D/N at `budget` (none beyond `max_extrapolation` x
    the largest fitted budget); a note for the report's warnings is appended to `notes` when
    the answer carries no interval. D is in `unit` (default: what scaling_laws says, else
    tokens)."""
    budget = float(budget)
    rec = laws.get("recommended_approach") if isinstance(laws, Mapping) else None
    rec = rec if isinstance(rec, Mapping) else {}
    if preferred == "auto":
        preferred = rec.get("approach") if rec.get("approach") in HEADLINE_ORDER \
            else HEADLINE_ORDER[0]
        choice_note = _choice_note(rec)
    else:
        choice_note = _pinned_note(rec, preferred)
    compute = inp.compute_model(laws)
    head: dict[str, Any] = {"budget": budget, "preferred_approach": preferred,
                            "available": False, "fallback_note": None,
                            "choice_note": choice_note, "compute_model": compute.describe()}
    order = [preferred] + [a for a in HEADLINE_ORDER if a != preferred]
    approach = next((a for a in order if inp.is_fitted(laws, a)), None)
    if approach is None:
        head["why_missing"] = ("No approach produced a fitted N_opt(C) and D_opt(C), so there "
                               "is no answer to give yet" + (" (scaling_laws is empty)."
                                                              if not laws else "."))
        head["text"] = (f"No compute-optimal allocation for {format_flops(budget)} FLOPs yet. "
                        + head["why_missing"])
        return head
    if approach != preferred:
        why = "; ".join(inp.approach_warnings(laws, preferred)) or "it has no fitted law"
        head["fallback_note"] = (f"{inp.APPROACH_NAMES.get(preferred, preferred)} was not "
                                 f"fitted ({why}); the headline uses "
                                 f"{inp.APPROACH_NAMES[approach]} instead.")
    head.update(approach=approach, approach_name=inp.APPROACH_NAMES[approach],
                approach_method=inp.APPROACH_METHODS[approach], available=True)
    fitted = inp.fitted_budgets(optima, approach)
    largest = float(fitted.max()) if not fitted.empty else None
    smallest = float(fitted.min()) if not fitted.empty else None
    not_a_loss = inp.not_a_loss_warning(laws)
    if not_a_loss:  # every approach minimised something that is not a loss: no answer
        head["available"] = False
        head["why_missing"] = f"Analysis warns that {not_a_loss}."
        head["text"] = f"No answer for {format_flops(budget)} FLOPs. {head['why_missing']}"
        return head
    if largest and budget / largest > max_extrapolation:
        head["available"] = False
        head["why_missing"] = (
            f"{format_flops(budget)} FLOPs is {format_flops(budget / largest)}× the largest "
            f"fitted budget ({format_flops(largest)} FLOPs), beyond "
            f"reporting.max_headline_extrapolation ({format_flops(max_extrapolation)}×): a law "
            "fitted there says nothing this far out. Set reporting.headline_budget nearer the "
            f"runs (e.g. {format_flops(3 * largest)}); predictions.csv has every approach's "
            "numbers at analysis.target_budgets.")
        head["text"] = f"No answer for {format_flops(budget)} FLOPs. {head['why_missing']}"
        return head

    values, source = _prediction_at(preds, approach, budget)
    if values is None:
        values, source = _curve_at(curves, approach, budget)
    if values is None:
        values, source = _law_at(laws, approach, budget), "law"
        notes.append(f"The headline budget {format_flops(budget)} is neither one of the "
                     "predicted target budgets nor inside the fitted curves' range, so it is "
                     "given without an interval.")
    head.update(values)
    head.setdefault("tokens_per_param_interval", None)  # curves and bare laws carry none
    head["source"] = source

    head["largest_fitted_budget"] = largest
    head["extrapolation_factor"] = budget / largest if largest else None
    head["extrapolation_note"] = _extrapolation_note(budget, smallest, largest,
                                                     head.get("model_size_interval"))
    if approach != "approach_3" and largest and budget > largest:
        head["extrapolation_note"] += " " + no_floor_note([inp.APPROACH_NAMES[approach]]) + "."

    head["text"] = _headline_text(head, confidence, unit or inp.data_unit(laws), compute)
    return head


def _pinned_note(rec: Mapping[str, Any], pinned: str) -> str | None:
    """What analysis found against the approach reporting.headline_approach pins, if anything:
    a pinned headline must not drop the caveat an automatic one would carry."""
    passed = rec.get("passed_over") if isinstance(rec.get("passed_over"), Mapping) else {}
    problems = passed.get(pinned) or []
    if not problems:
        return None
    name = inp.APPROACH_NAMES.get(rec.get("approach"), rec.get("approach"))
    return (f"set by reporting.headline_approach, though analysis passed over it "
            f"({'; '.join(map(str, problems))})"
            + (f" and recommends {name}" if rec.get("approach") not in (None, pinned) else "")
            + "; read it with care")


def _choice_note(rec: Mapping[str, Any]) -> str | None:
    """Why analysis recommends this approach, and what it passed over (reporting shows it)."""
    if not rec.get("approach"):
        return None
    passed = rec.get("passed_over") if isinstance(rec.get("passed_over"), Mapping) else {}
    problems = {a: "; ".join(map(str, p)) for a, p in passed.items() if p}
    if rec.get("passed_every_check") is False:
        listed = "; ".join(f"{inp.APPROACH_NAMES.get(a, a)}: {p}" for a, p in problems.items())
        return ("no approach passed every check of analysis, so it takes the first with an "
                f"answer; read it with care ({listed})")
    note = "the approach analysis recommends"
    if problems:
        note += ", passing over " + "; ".join(f"{inp.APPROACH_NAMES.get(a, a)} ({p})"
                                             for a, p in problems.items())
    return note


def _extrapolation_note(budget: float, smallest: float | None, largest: float | None,
                        interval: Any = None) -> str | None:
    if not largest:
        return None
    if smallest and budget < smallest:
        return (f"{format_flops(budget)} FLOPs lies below the budgets of the fit (smallest "
                f"{format_flops(smallest)} FLOPs): an extrapolation downwards.")
    factor = budget / largest
    if factor <= 1:
        return (f"{format_flops(budget)} FLOPs lies within the budgets of the fit (largest "
                f"{format_flops(largest)} FLOPs).")
    note = (f"{format_flops(budget)} FLOPs is {format_sig(factor, 2)}× the largest budget in the "
            f"fit ({format_flops(largest)} FLOPs)")
    if factor >= 10:
        note += (f": an extrapolation over {format_sig(math.log10(factor), 2)} orders of "
                 "magnitude")
        if inp.interval_pair(interval) is not None:
            note += (". The interval covers what the runs can show (the fit's noise and, for "
                     "Approach 3, the law's own error measured on them), not a change of "
                     "behaviour at larger scale")
    return note + "."


def _close(a: pd.Series, b: float) -> pd.Series:
    return np.isclose(a.astype(float), b, rtol=1e-6, atol=0)


def _prediction_at(preds: pd.DataFrame, approach: str, budget: float):
    rows = preds[(preds["approach"] == approach) & _close(preds["compute_budget"], budget)]
    rows = rows.dropna(subset=["model_size", "num_tokens"])
    if rows.empty:
        return None, None
    row = rows.iloc[0]
    return inp.row_quantities(row, ("model_size", "num_tokens", "loss", "tokens_per_param")), \
        "predictions"


def _curve_at(curves: pd.DataFrame, approach: str, budget: float):
    c = curves[(curves["approach"] == approach)].dropna(subset=["compute_budget", "model_size",
                                                                "num_tokens"])
    c = c[c["compute_budget"] > 0]
    if c.empty or not (c["compute_budget"].min() <= budget <= c["compute_budget"].max()):
        return None, None
    x = np.log(c["compute_budget"].to_numpy(float))
    row: dict[str, float] = {}
    for col in ("model_size", "model_size_lo", "model_size_hi", "num_tokens", "num_tokens_lo",
                "num_tokens_hi", "loss", "loss_lo", "loss_hi"):
        y = c[col].to_numpy(float)
        ok = np.isfinite(y) & (y > 0)
        if ok.sum() >= 2:
            row[col] = float(np.exp(np.interp(math.log(budget), x[ok], np.log(y[ok]))))
    return inp.row_quantities(row, ("model_size", "num_tokens", "loss")), "scaling_law_curves"


def _law_at(laws: Mapping[str, Any], approach: str, budget: float) -> dict[str, Any]:
    surface = inp.surface(laws) if approach == "approach_3" else None
    if surface is not None:
        # the surface's own optimum under the study's compute model: Approach 3's stored laws
        # are fitted through the study's budgets when f is not 6N, so only local there
        n, d = (float(v) for v in optimal_allocation(budget, surface, inp.compute_model(laws)))
        loss = float(parametric_loss(n, d, surface))
    else:
        n = inp.evaluate_law(inp.law(laws, approach, "n_opt"), budget)
        d = inp.evaluate_law(inp.law(laws, approach, "d_opt"), budget)
        l_law = inp.law(laws, approach, "l_opt")
        loss = inp.evaluate_law(l_law, budget) if l_law is not None else None
    return {"model_size": n, "model_size_interval": None, "num_tokens": d,
            "num_tokens_interval": None, "loss": loss, "loss_interval": None,
            "tokens_per_param": d / n}


def _headline_text(head: dict[str, Any], confidence: float, unit: DataUnit,
                   compute: ComputeModel) -> str:
    text = (f"At {format_flops(head['budget'])} FLOPs, train N ≈ {format_count(head['model_size'])}"
            f" parameters on D ≈ {unit.count(head['num_tokens'])}")
    level = f"{format_sig(100 * confidence, 3)}%"
    if head.get("model_size_interval") and head.get("num_tokens_interval"):
        text += (f" ({level} interval: N {format_interval(head['model_size_interval'], format_count)}"
                 f", D {format_interval(head['num_tokens_interval'], format_count)})")
    else:
        text += " (no interval available)"
    return f"{text}; {head['approach_name']}, compute counted as {compute.short()}."


def no_floor_note(names: list[str]) -> str:
    """Why Approaches 1-2's loss beyond their fitted budgets is optimistic (`names`: whose)."""
    subject = (f"{names[0]}'s loss is a power law" if len(names) == 1
               else f"the losses of {' and '.join(names)} are power laws")
    return (f"{subject} in C with no irreducible term: beyond the fit it falls as if the loss "
            "could reach 0, so it is optimistic there, by more than its interval says "
            "(Approach 3's surface keeps its floor)")
