"""Which approach should a reader act on? The analysis's judgement, with its reasons.

Approach 3 uses every run and the study's own compute model, so it is preferred, then
Approach 2 (a model-free parabola per budget), then Approach 1 (the best sampled size: its
answer moves in steps of the sweep's spacing). An approach is passed over, with the reason
recorded, when it has no fitted allocation with an interval, its bootstrap is unreliable
(too many failed draws), its exponents are not identified or its surface misfits the runs
(Approach 3, `fitting.checks.sweep`), or it missed the
held-out budget's N_opt by more than `checks.extrapolation.EXTRAPOLATION_MISS` in the extrapolation
check. When every approach has a problem, the first one with an answer is taken and all the
problems are listed. `reporting.headline_approach: auto` (the default) opens the report with it.

Works on the scaling_laws document itself (plain JSON), so the rule can be re-read from any
stored study.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from flops_fit.fitting.checks.extrapolation import EXTRAPOLATION_MISS
from flops_fit.jsonsafe import is_finite_number

ORDER = ("approach_3", "approach_2", "approach_1")


def _has_answer(section: Mapping[str, Any]) -> bool:
    """A finite coefficient and exponent for N_opt(C) and D_opt(C) (this runs before the
    document is made JSON-safe, where a NaN would still be a number)."""
    laws = [section.get(k) or {} for k in ("n_opt", "d_opt")]
    return all(is_finite_number(law.get("coefficient")) and is_finite_number(law.get("exponent"))
               for law in laws)


def _problems(doc: Mapping[str, Any], approach: str) -> list[str]:
    section = doc.get(approach) or {}
    if not _has_answer(section):
        return ["no fitted N_opt(C) and D_opt(C)"]
    problems = []
    exponent_iv = ((section.get("n_opt") or {}).get("interval") or {}).get("exponent") or []
    if len(exponent_iv) != 2 or None in exponent_iv:
        problems.append("no interval for its N_opt exponent")
    boot = section.get("bootstrap") or {}
    if boot.get("unreliable"):
        problems.append(section.get("interval_note") or "its bootstrap is unreliable")
    diagnostics = doc.get("diagnostics") or {}
    if approach == "approach_3" and diagnostics.get("identified") is False:
        problems.append("alpha and beta are not identified by the runs")
    if approach == "approach_3" and diagnostics.get("misfit"):
        problems.append(
            f"the surface misfits the runs (RMS residual "
            f"{diagnostics['surface_rms_log_residual']:.1%} against the parabolas' "
            f"{diagnostics['parabola_rms_log_residual']:.1%})"
        )
    check = (doc.get("extrapolation_check") or {}).get(approach) or {}
    err = check.get("n_opt_rel_error")
    if err is not None and abs(err) > EXTRAPOLATION_MISS:
        note = f" (that check {check['note']})" if check.get("note") else ""
        problems.append(
            f"it missed the held-out budget's N_opt by {100 * err:+.0f}% in the extrapolation "
            f"check{note}"
        )
    return problems


def recommend_approach(doc: Mapping[str, Any]) -> dict[str, Any]:
    """{"approach": name or None, "passed_every_check": bool, "reason": one sentence,
    "passed_over": {approach: [its problems]}} (every approach's problems when none passed)."""
    passed: dict[str, list[str]] = {}
    for approach in ORDER:
        problems = _problems(doc, approach)
        if not problems:
            reason = ("the first of Approaches 3, 2, 1 with a fitted allocation, a reliable "
                      "interval and no failed check")
            return {"approach": approach, "passed_every_check": True, "reason": reason,
                    "passed_over": passed}
        passed[approach] = problems
    fallback = next((a for a in ORDER if _has_answer(doc.get(a) or {})), None)
    reason = ("no approach passed every check; the first with a fitted allocation is used"
              if fallback else "no approach has a fitted allocation")
    return {"approach": fallback, "passed_every_check": False, "reason": reason,
            "passed_over": passed}
