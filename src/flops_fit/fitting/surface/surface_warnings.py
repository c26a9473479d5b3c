"""Warnings about Approach 3's fit, in the words the report shows: exponents at the edge of the
start grid, an implausible irreducible loss, several basins across bootstrap draws, failed draws.
None of them changes a number.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from flops_fit.fitting.bootstrap import bootstrap_warnings

if TYPE_CHECKING:
    from flops_fit.fitting.bootstrap import BootstrapReport
    from flops_fit.fitting.surface.fit import ParametricFit
    from flops_fit.parameters.analysis import Approach3Params

BASINS_WARN = 0.05  # share of bootstrap draws where a perturbed start found a better minimum


def surface_bootstrap_warnings(
    improved_by_extra_start: np.ndarray, report: BootstrapReport, families: bool = False
) -> list[str]:
    """Draws whose best minimum came from a perturbed start (several basins), failed draws
    (with `families`, the draws of law families, which also fail on a vanished term)."""
    warnings = []
    moved = float(np.mean(improved_by_extra_start)) if len(improved_by_extra_start) else 0.0
    if moved > BASINS_WARN:
        warnings.append(
            f"in {moved:.0%} of bootstrap draws a perturbed start found a better "
            f"minimum than the full-data fit: the surface has several basins for these "
            f"runs, so its intervals may be wide and its fit fragile"
        )
    failure = ("no valid law (non-finite objective, non-positive exponent, or a term in N or "
               "in D that vanished)") if families else None
    return warnings + bootstrap_warnings("approach_3", report, failure)


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
