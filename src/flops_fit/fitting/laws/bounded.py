"""Which of Approach 3's parameters sit on a bound, in the fit and at each end of their
intervals, and the words that show such a parameter to a person.

A parameter on its bound was not measured: the runs only say that the law lies along a valley
beyond it, so its number means nothing by itself. Two kinds of bound: the solver's
(`families.bounds`: an exponent's floor, the saturating family's ceilings on its plateau L_max
and its power k), found by `families.bound_sides`; and 0 for an irreducible loss E, which
ln E, unbounded, only runs off towards (`families.negligible`): such an E shows as "≈ 0".

An end of an interval sits on the bound when more draws than that end's tail sit on their own
bound: the percentile then falls among them, and its number says no more than theirs. The
ceiling on L_max moves with each draw's highest loss, so such an end mixes the draws' ceilings
and can even fall just short of the fit's own; it is shown as the bound, not as a number.

Each entry (JSON-ready) says: `side` ("lower" or "upper"), `bound` (the fit's bound there: 0
for E), `fit` (the fit sits on it) and `interval` ([lower end, upper end] sit on it). Only
parameters with something on a bound have one.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from flops_fit.fitting.laws.families import bound_sides, bounds, family, negligible
from flops_fit.parameters.analysis import MIN_DRAWS_FOR_INTERVAL

AT_BOUND = "at its bound"
#: how a value on its bound 0 is shown (E): the number there is the solver's last step
ZERO = "≈ 0"
#: the additive irreducible loss, bounded by 0 (`families.negligible`)
FLOOR = "E"
#: what a reader of a parameter table with something on a bound needs to know
NOTE = ("A parameter at its bound was not measured: the runs only say that the law lies along "
        "a valley beyond it (E ≈ 0: its term vanished next to the lowest loss). An interval "
        "ending at its bound has more draws than that end's tail on their own bound, so a "
        "number there would only be theirs.")


def value_text(number: str, entry: Mapping[str, Any] | None) -> str:
    """A parameter as shown: `number` (the caller's formatting of it), or, when the fit sits on
    its bound, "≈ 0 (at its bound)" for a bound at 0 and "<number> (at its bound)" else."""
    if not isinstance(entry, Mapping) or not entry.get("fit"):
        return number
    return f"{ZERO if entry.get('bound') == 0 else number} ({AT_BOUND})"


def named_text(name: str, number: str, entry: Mapping[str, Any] | None,
               equals: str = " = ") -> str:
    """"name = value" as shown: "E ≈ 0 (at its bound)" for E at 0 (see `value_text`)."""
    shown = value_text(number, entry)
    return f"{name} {shown}" if shown.startswith(ZERO) else f"{name}{equals}{shown}"


def end_text(entry: Mapping[str, Any] | None, end: int) -> str | None:
    """The words for one end of an interval (0: lower, 1: upper) that sits on the bound: "≈ 0"
    for a bound at 0, "its bound" else; None when it does not (its number is shown)."""
    if not isinstance(entry, Mapping) or not (entry.get("interval") or [False, False])[end]:
        return None
    return ZERO if entry.get("bound") == 0 else "its bound"


def _entry(side: int, bound: float, at_fit: bool, on_bound: np.ndarray | None,
           counted: np.ndarray | None, level: float) -> dict[str, Any] | None:
    """`on_bound` (B,): which draws sit on that bound; `counted` (B,): the draws the interval
    is taken over (its finite values)."""
    ends = [False, False]
    if on_bound is not None and counted is not None and counted.sum() >= MIN_DRAWS_FOR_INTERVAL:
        share, tail = float(np.mean(on_bound[counted])), 0.5 * (1.0 - level)
        near, far = (0, 1) if side < 0 else (1, 0)
        ends[near], ends[far] = share > tail, share > 1.0 - tail
    if not at_fit and not any(ends):
        return None
    return {"side": "lower" if side < 0 else "upper", "bound": float(bound),
            "fit": bool(at_fit), "interval": ends}


def floor_entry(value: float, draws: np.ndarray | None, loss: np.ndarray,
                level: float) -> dict[str, Any] | None:
    """E on its bound 0, in the fit and in the draws (`draws` (B,), NaN for failed ones)."""
    lowest = float(np.min(loss))
    values = None if draws is None else np.asarray(draws, dtype=float)
    return _entry(-1, 0.0, bool(negligible(value, lowest)),
                  None if values is None else negligible(values, lowest),
                  None if values is None else np.isfinite(values), level)


def law_bounds(law: str, theta: np.ndarray, draws: Mapping[str, np.ndarray] | None,
               draw_sides: np.ndarray | None, loss: np.ndarray, level: float
               ) -> dict[str, dict[str, Any]]:
    """Family `law`'s parameters on a bound (name -> entry): the fit theta (p,), fitted to runs
    of losses `loss`, and the draws (keyed as `LawFamily.key`; `draw_sides` (B, p): where each
    draw sits on its own bounds, None where the draws' solver has none)."""
    fam = family(law)
    theta = np.asarray(theta, dtype=float)
    log_max = np.array([float(np.log(np.max(loss)))])
    fit_sides = bound_sides(law, theta, log_max)[0]
    out = {}
    for i, (name, coord) in enumerate(zip(fam.param_names, fam.theta_names, strict=True)):
        values = None if draws is None else np.asarray(draws[fam.key(name)], dtype=float)
        if name == FLOOR:
            entry = floor_entry(float(np.exp(theta[i])), values, loss, level)
        else:
            entry = None
            # no family bounds a parameter on both sides, so one entry at most
            for side, bound in zip((-1, 1), bounds(law, log_max), strict=True):
                limit = bound[0, i]
                if entry is None and np.isfinite(limit):
                    entry = _entry(side, np.exp(limit) if coord.startswith("ln ") else limit,
                                   fit_sides[i] == side,
                                   None if draw_sides is None else draw_sides[:, i] == side,
                                   None if values is None else np.isfinite(values), level)
        if entry is not None:
            out[name] = entry
    return out
