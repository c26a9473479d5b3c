"""The study-level checks of the scaling_laws document: do the approaches agree, and the
warnings at its top (runs left out, thin budgets, disagreement, a missed held-out budget, targets
far beyond the measured budgets). None of them changes a number.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from flops_fit.fitting.checks.extrapolation import EXTRAPOLATION_MISS, LOSS_MISS
from flops_fit.schema import APPROACHES

if TYPE_CHECKING:
    from flops_fit.fitting.checks.extrapolation import ExtrapolationCheck

FAR_TARGET = 100  # targets beyond this multiple of the largest measured budget are flagged


def agreement(
    name: str, values: dict[str, Any], intervals: dict[str, Any], level: float,
    unreliable: Sequence[str] = (),
) -> dict[str, Any]:
    """Do the approaches' `level` intervals of one quantity all overlap? `unreliable`: the
    approaches whose intervals the bootstrap flagged (their overlap proves little: said so)."""
    have = {
        k: iv
        for k, iv in intervals.items()
        if iv is not None and iv[0] is not None and iv[1] is not None
    }
    if len(have) < 2:
        return {
            "agree": None,
            "values": values,
            "intervals": intervals,
            "message": f"{name}: fewer than two approaches have an interval to compare",
        }
    lo = max(iv[0] for iv in have.values())
    hi = min(iv[1] for iv in have.values())
    agree = bool(lo <= hi)
    names = ", ".join(sorted(have))
    if agree:
        message = (
            f"{name}: {names} agree (their {100 * level:.3g}% intervals overlap on "
            f"[{lo:.4g}, {hi:.4g}])"
        )
        flagged = sorted(set(unreliable) & set(have))
        if flagged:
            message += (f", though the interval of {', '.join(flagged)} is flagged unreliable "
                        "(too many failed bootstrap draws)")
    else:
        parts = "; ".join(f"{k} [{iv[0]:.4g}, {iv[1]:.4g}]" for k, iv in sorted(have.items()))
        message = f"{name}: the approaches DISAGREE, intervals do not all overlap: {parts}"
    return {"agree": agree, "values": values, "intervals": intervals, "message": message}


def study_warnings(
    n_runs: int,
    n_excluded: int,
    runs_per_budget: Sequence[int],
    min_runs: int,
    agreements: Mapping[str, Mapping[str, Any]],
    check: ExtrapolationCheck,
    budgets: Sequence[float],
    target_budgets: Sequence[float],
) -> list[str]:
    """The warnings at the top of the scaling_laws document."""
    warnings = []
    if n_excluded:
        warnings.append(f"{n_excluded} of {n_runs} runs left out of every fit (see excluded_runs)")
    small = [n for n in runs_per_budget if n < min_runs]
    if small:
        warnings.append(
            f"{len(small)} budget(s) have fewer than {min_runs} "
            f"usable runs and only inform Approach 3"
        )
    for a in agreements.values():
        if a["agree"] is False:
            warnings.append(a["message"])
    ho = check.held_out_budget
    for approach in APPROACHES:
        entry = check.approaches.get(approach)
        err = entry.n_opt_rel_error if entry is not None else None
        note = f" (the check {entry.note})" if entry is not None and entry.note else ""
        if err is not None and abs(err) > EXTRAPOLATION_MISS:
            warnings.append(
                f"{approach} misses the held-out budget {ho:.3g}'s N_opt by "
                f"{100 * err:+.0f}%{note}: treat its extrapolations with care"
            )
        loss_err = entry.loss_rel_error if entry is not None else None
        if loss_err is not None and abs(loss_err) > LOSS_MISS:
            warnings.append(
                f"{approach} misses the held-out budget {ho:.3g}'s optimal loss by "
                f"{100 * loss_err:+.0f}%{note}: treat its predicted losses with care"
            )
    top = max(target_budgets)
    if top > FAR_TARGET * (budgets[-1] if budgets else 1):
        warnings.append(
            f"target budgets reach {top:.3g} FLOPs, "
            f"{top / budgets[-1]:.3g}x the largest budget "
            f"measured ({budgets[-1]:.3g}): intervals assume the laws hold that far"
        )
    return warnings
