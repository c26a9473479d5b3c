"""The study-level checks of the scaling_laws document: do the approaches agree, and the
warnings at its top (runs left out, thin budgets, disagreement, a missed held-out budget, targets
far beyond the measured budgets). None of them changes a number.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from flops_fit.fitting.checks.extrapolation import EXTRAPOLATION_MISS, LOSS_MISS
from flops_fit.schema import APPROACHES

if TYPE_CHECKING:
    from flops_fit.fitting.checks.extrapolation import ExtrapolationCheck

FAR_TARGET = 100  # targets beyond this multiple of the largest measured budget are flagged
#: an interval of a positive quantity (N_opt) wider than this factor, hi / lo, is too wide to
#: judge agreement by: two such intervals overlap whatever the approaches say, and a model size
#: known only within 10x does not say which model to train
MAX_AGREEMENT_SPAN = 10.0


def agreement(
    name: str, values: dict[str, Any], intervals: dict[str, Any], level: float,
    unreliable: Sequence[str] = (), max_span: float | None = None,
) -> dict[str, Any]:
    """Do the approaches' `level` intervals of one quantity all overlap? `unreliable`: the
    approaches whose intervals the bootstrap flagged (their overlap proves little: said so).

    `max_span` (a positive quantity's intervals, compared as ratios): an interval wider than
    hi / lo = max_span cannot show agreement. Intervals that overlap are judged among the
    narrower ones; with fewer than two of those the verdict is "cannot tell" (`agree` None,
    `too_wide` naming the wide ones). Intervals that do not overlap disagree, however wide.
    """
    have = {
        k: iv
        for k, iv in intervals.items()
        if iv is not None and iv[0] is not None and iv[1] is not None
    }
    out = {"values": values, "intervals": intervals, "too_wide": []}
    if len(have) < 2:
        return {**out, "agree": None,
                "message": f"{name}: fewer than two approaches have an interval to compare"}
    lo = max(iv[0] for iv in have.values())
    hi = min(iv[1] for iv in have.values())
    if lo > hi:
        parts = "; ".join(f"{k} [{iv[0]:.4g}, {iv[1]:.4g}]" for k, iv in sorted(have.items()))
        return {**out, "agree": False,
                "message": f"{name}: the approaches DISAGREE, intervals do not all overlap: {parts}"}
    wide = sorted(k for k, iv in have.items() if max_span is not None and _too_wide(iv, max_span))
    out["too_wide"] = wide
    judged = {k: iv for k, iv in have.items() if k not in wide}
    spans = ", ".join(f"{k} [{have[k][0]:.4g}, {have[k][1]:.4g}] spans {_span(have[k])}"
                      for k in wide)
    if len(judged) < 2:
        return {**out, "agree": None, "message": (
            f"{name}: cannot tell: the {100 * level:.3g}% intervals overlap, but {spans}; "
            f"an interval wider than {max_span:g}x cannot show that the approaches agree")}
    lo = max(iv[0] for iv in judged.values())
    hi = min(iv[1] for iv in judged.values())
    message = (
        f"{name}: {', '.join(sorted(judged))} agree (their {100 * level:.3g}% intervals overlap "
        f"on [{lo:.4g}, {hi:.4g}])"
    )
    flagged = sorted(set(unreliable) & set(judged))
    if flagged:
        message += (f", though the interval of {', '.join(flagged)} is flagged unreliable "
                    "(too many failed bootstrap draws)")
    if wide:
        message += f"; too wide to judge (wider than {max_span:g}x): {spans}"
    return {**out, "agree": True, "message": message}


def _too_wide(interval: Sequence[float], max_span: float) -> bool:
    lo, hi = interval
    return lo <= 0 or hi / lo > max_span


def _span(interval: Sequence[float]) -> str:
    """How wide an interval of a positive quantity is, in words: '6 orders of magnitude'."""
    lo, hi = interval
    if lo <= 0:
        return "down to zero or below"
    return f"{math.log10(hi / lo):.2g} orders of magnitude"


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
