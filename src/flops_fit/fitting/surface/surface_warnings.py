"""Warnings about Approach 3's fit, in the words the report shows: exponents at the edge of the
start grid, an implausible irreducible loss, several basins across bootstrap draws, failed draws,
draws that drift away from the fit. None of them changes a number.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np

from flops_fit.fitting.bootstrap import bootstrap_warnings, intervals_columns
from flops_fit.fitting.laws.families import negligible
from flops_fit.fitting.surface.compute_model import optimal_allocation
from flops_fit.fitting.surface.law import parametric_loss

if TYPE_CHECKING:
    from collections.abc import Mapping

    from flops_fit.fitting.bootstrap import BootstrapReport
    from flops_fit.fitting.surface.compute_model import ComputeModel
    from flops_fit.fitting.surface.fit import ParametricFit
    from flops_fit.parameters.analysis import Approach3Params

BASINS_WARN = 0.05  # share of bootstrap draws where a perturbed start found a better minimum


def surface_bootstrap_warnings(
    improved_by_extra_start: np.ndarray, report: BootstrapReport, failure: str | None = None
) -> list[str]:
    """Draws whose best minimum came from a perturbed start (several basins), failed draws
    (`failure`: what a failed draw is, where not the Chinchilla surface's default)."""
    warnings = []
    moved = float(np.mean(improved_by_extra_start)) if len(improved_by_extra_start) else 0.0
    if moved > BASINS_WARN:
        warnings.append(
            f"in {moved:.0%} of bootstrap draws a perturbed start found a better "
            f"minimum than the full-data fit: the surface has several basins for these "
            f"runs, so its intervals may be wide and its fit fragile"
        )
    return warnings + bootstrap_warnings("approach_3", report, failure)


def surface_fit_warnings(
    fit: ParametricFit, loss: np.ndarray, settings: Approach3Params
) -> list[str]:
    """Exponents outside the start grid; an irreducible loss E above the lowest loss, or so far
    below it that the runs do not constrain it."""
    warnings = []
    for key in ("alpha", "beta"):
        value = getattr(fit, key)
        hi = (settings.alpha_grid if key == "alpha" else settings.beta_grid)[1]
        if value <= 0 or value > hi:
            warnings.append(
                f"{key} = {value:.3g} lies outside the start grid (0, {hi:g}]: "
                f"the surface may be degenerate for these runs"
            )
    lowest, floor = float(np.min(loss)), float(fit.E)
    if floor > lowest:
        warnings.append(
            f"E = {floor:.3g} is implausible: an irreducible loss above the lowest loss "
            f"{lowest:.3g} that a run reached"
        )
    elif floor < 0.2 * lowest:
        shown = "E ≈ 0" if negligible(floor, lowest) else f"E = {floor:.3g}"
        warnings.append(
            f"{shown}, under a fifth of the lowest loss {lowest:.3g}: the runs do not show the "
            "floor the loss falls towards (a loss that falls towards 0, or budgets too small "
            "to reach it), so they barely constrain the irreducible loss"
        )
    return warnings


#: the drift is judged only with at least this many finite draws: with fewer, a percentile
#: interval's own noise puts a right law's L_opt outside it at one budget or another (10 draws:
#: 5 of 60 Chinchilla studies at 2% noise; none at 40 or 200)
DRIFT_MIN_DRAWS = 100


def drifting_draws_warning(params: Mapping[str, Any], draws: Mapping[str, Any],
                           budgets: np.ndarray, model: ComputeModel, level: float) -> list[str]:
    """The fit's own L_opt outside its draws' interval at budgets of the runs themselves: the
    refits of data drawn from the fit land elsewhere, so the intervals are not centred on the
    answer (seen where a pinned family misfits the runs and its fit sits in a curved valley)."""
    budgets = np.unique(np.asarray(budgets, dtype=float))
    with np.errstate(all="ignore"):
        n, d = optimal_allocation(budgets, params, model)
        point = parametric_loss(n, d, params)
        ns, ds = optimal_allocation(budgets, draws, model)
        losses = parametric_loss(ns, ds, draws)
        lo, hi = intervals_columns(losses, level)
    enough = np.isfinite(losses).sum(axis=0) >= DRIFT_MIN_DRAWS
    outside = enough & np.isfinite(point) & np.isfinite(lo) & ((point < lo) | (point > hi))
    if not outside.any():
        return []
    where = budgets[outside]
    return [
        f"the {params['law']} law's own L_opt lies outside its {level:.0%} interval at "
        f"{outside.sum()} of the runs' {budgets.size} budgets ({where.min():.3g}-"
        f"{where.max():.3g} FLOPs): refits of data drawn from the fit land away from it, so "
        "its intervals are not centred on its answer; this happens when the law misfits "
        "these runs (its fit sits in a curved valley): read Approach 3 with care, or compare "
        "analysis.law: auto"
    ]
