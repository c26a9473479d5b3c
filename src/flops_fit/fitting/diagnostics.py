"""Warnings about fits, and the agreement check between approaches.

Each function looks at fitted results and says, in words the report shows, what a reader should
distrust: a budget left out, a poor power law, too few budgets, a surface at the edge of its
start grid or with several basins, approaches whose intervals do not overlap, targets far beyond
the measured budgets. None of them changes a number.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from flops_fit.fitting.bootstrap import UNRELIABLE_SHARE
from flops_fit.schema import APPROACHES

if TYPE_CHECKING:
    from flops_fit.fitting.bootstrap import BootstrapReport
    from flops_fit.fitting.extrapolation import ExtrapolationCheck
    from flops_fit.fitting.isoflop_laws import BudgetOptimum, IsoflopFit
    from flops_fit.fitting.parametric import ParametricFit
    from flops_fit.parameters.analysis import Approach3Params

POOR_R2 = 0.9  # a power law through the optima with a lower R^2 is flagged
BASINS_WARN = 0.05  # share of bootstrap draws where a perturbed start found a better minimum
EXTRAPOLATION_MISS = 0.5  # relative N_opt error at the held-out budget that is flagged
FAR_TARGET = 100  # targets beyond this multiple of the largest measured budget are flagged


# ---------------------------------------------------------------------------------------------
# Approaches 1 and 2
# ---------------------------------------------------------------------------------------------


def left_out_budget(approach: str, point: BudgetOptimum) -> str:
    return (
        f"budget {point.compute_budget:.3g} FLOPs left out of the {approach} fit: {point.reason}"
    )


def isoflop_warnings(fit: IsoflopFit) -> list[str]:
    """Budgets left out, poor power laws, too few budgets, failed bootstrap draws."""
    warnings = [left_out_budget(fit.approach, p) for p in fit.excluded]
    for key, law in fit.laws.items():
        if law.r2 is not None and law.r2 < POOR_R2:
            warnings.append(f"{key} power law fits poorly (R^2 = {law.r2:.3f})")
    n_valid = len(fit.points) - len(fit.excluded)
    if n_valid < 2:
        warnings.append(f"only {n_valid} usable budget(s): no power law can be fitted")
    elif n_valid == 2:
        warnings.append(
            "only 2 usable budgets: the power laws pass exactly through them "
            "(R^2 undefined) and their intervals rest on very little"
        )
    if fit.bootstrap is not None:
        warnings.extend(bootstrap_warnings(fit.approach, fit.bootstrap))
    return warnings


# ---------------------------------------------------------------------------------------------
# Approach 3
# ---------------------------------------------------------------------------------------------


def surface_bootstrap_warnings(
    improved_by_extra_start: np.ndarray, report: BootstrapReport
) -> list[str]:
    """Draws whose best minimum came from a perturbed start (several basins), failed draws."""
    warnings = []
    moved = float(np.mean(improved_by_extra_start)) if len(improved_by_extra_start) else 0.0
    if moved > BASINS_WARN:
        warnings.append(
            f"in {moved:.0%} of bootstrap draws a perturbed start found a better "
            f"minimum than the full-data fit: the surface has several basins for these "
            f"runs, so its intervals may be wide and its fit fragile"
        )
    return warnings + bootstrap_warnings("approach_3", report)


def bootstrap_warnings(approach: str, report: BootstrapReport) -> list[str]:
    """Failed bootstrap draws (and budget-draws), and an interval made unreliable by them."""
    if not report.failed_draws:
        return []
    what = (
        "no valid surface (non-finite objective or non-positive exponent)"
        if report.failed_budget_draws is None
        else f"a budget whose parabola failed ({report.failed_budget_draws} of "
        f"{report.budget_draws} budget-draws: no minimum, vertex outside the sampled "
        f"sizes or too few distinct sizes) or fewer than two budgets"
    )
    text = (
        f"{approach}: {report.failed_draws} of {report.draws} bootstrap draws "
        f"({report.failed_draw_share:.1%}) failed with {what} and are left out of the "
        f"intervals"
    )
    if report.unreliable:
        text += (
            f"; more than {UNRELIABLE_SHARE:.0%} failed, so its intervals are UNRELIABLE "
            f"(the failed draws are the noisiest ones: the intervals are likely too narrow)"
        )
    return [text]


def surface_fit_warnings(
    fit: ParametricFit, loss: np.ndarray, settings: Approach3Params
) -> list[str]:
    """Exponents outside the start grid, an irreducible loss E implausible next to the runs."""
    warnings = []
    for key in ("alpha", "beta"):
        value = getattr(fit, key)
        hi = (settings.alpha_grid if key == "alpha" else settings.beta_grid)[1]
        if value <= 0 or value > hi:
            warnings.append(
                f"{key} = {value:.3g} lies outside the start grid (0, {hi:g}]: "
                f"the surface may be degenerate for these runs"
            )
    if 0.2 * float(np.min(loss)) > fit.E or float(np.min(loss)) < fit.E:
        warnings.append(
            f"E = {fit.E:.3g} is implausible next to the lowest loss "
            f"{np.min(loss):.3g}: the runs may not constrain the irreducible loss"
        )
    return warnings


# ---------------------------------------------------------------------------------------------
# The study
# ---------------------------------------------------------------------------------------------


def agreement(
    name: str, values: dict[str, Any], intervals: dict[str, Any], level: float
) -> dict[str, Any]:
    """Do the approaches' `level` intervals of one quantity all overlap?"""
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
        if err is not None and abs(err) > EXTRAPOLATION_MISS:
            warnings.append(
                f"{approach} misses the held-out budget {ho:.3g}'s N_opt by "
                f"{100 * err:+.0f}%: treat its extrapolations with care"
            )
    top = max(target_budgets)
    if top > FAR_TARGET * (budgets[-1] if budgets else 1):
        warnings.append(
            f"target budgets reach {top:.3g} FLOPs, "
            f"{top / budgets[-1]:.3g}x the largest budget "
            f"measured ({budgets[-1]:.3g}): intervals assume the laws hold that far"
        )
    return warnings
