"""Approach 2's parabola on IsoFLOP profiles that lean one way.

A parabola in log N is symmetric; a profile that rises more steeply on one side of its minimum
than on the other (MNIST-1D's, whose small models fall off a wall) pulls the parabola's vertex
towards the flatter side, so every budget's N_opt is biased the same way, and the power law
through them with it; the bootstrap, which redraws the noise around the same parabolas, does not
see it. The outlier screen already judges whether the profiles lean on balance
(`runs.outliers.shared_skew`); where they do, `lean_warning` says so beside Approach 2's answer,
with how far each budget's cubic minimum lies from its vertex. Approach 2 itself is unchanged:
a cubic's minimum is the noisier estimate, and which of the two is nearer the truth the runs
alone cannot tell.
"""

from __future__ import annotations

import numpy as np

from flops_fit.fitting.isoflop.estimators import BudgetRuns
from flops_fit.fitting.runs.outliers import CUBIC_MIN_SIZES, SKEW_LIMIT, shared_skew


def cubic_minimum(log_n: np.ndarray, log_loss: np.ndarray) -> float | None:
    """log10 N at the minimum of a cubic in log10 N through a profile, inside its sizes (None
    where the cubic has no local minimum there)."""
    if np.unique(log_n).size < CUBIC_MIN_SIZES:
        return None
    coef = np.polyfit(log_n, log_loss, 3)
    roots = np.roots(np.polyder(coef))
    second = np.polyder(coef, 2)
    inside = [float(r.real) for r in roots if abs(r.imag) < 1e-12 and np.polyval(second, r.real)
              > 0 and log_n.min() <= r.real <= log_n.max()]
    return inside[0] if inside else None


def lean_warning(groups: list[BudgetRuns], vertices: list[float | None], min_scale: float
                 ) -> str | None:
    """Approach 2's warning where its budgets' profiles lean one way on balance (|skew score|
    beyond SKEW_LIMIT), else None. `vertices`: each group's parabola vertex N (None where it
    has none); `min_scale`: the outlier screen's noise floor (analysis.outliers.min_scale)."""
    profiles = [(np.log10(g.model_size), np.log(g.loss)) for g in groups]
    score, judged = shared_skew(profiles, min_scale)
    if not abs(score) > SKEW_LIMIT:
        return None
    ratios = []
    for (log_n, log_loss), vertex in zip(profiles, vertices, strict=True):
        at = cubic_minimum(log_n, log_loss)
        if at is not None and vertex is not None and vertex > 0:
            ratios.append(10.0**at / vertex)
    steep, flat, biased = (("small", "large", "too large") if score < 0
                           else ("large", "small", "too small"))
    text = (f"the IsoFLOP profiles lean one way (skew score {score:.1f} over {judged - 1} of "
            f"{judged} budgets, the most skewed set aside): they rise more steeply on the "
            f"{steep}-model side of their minimum, and a parabola's vertex sits towards the "
            f"flatter, {flat}-model side, so Approach 2's N_opt may be {biased} at every budget, "
            "by more than its interval says")
    if ratios:
        text += (f"; a cubic's minimum lies at {min(ratios):.2g}–{max(ratios):.2g}× the vertex "
                 f"(median {float(np.median(ratios)):.2g}×) at the {len(ratios)} budgets with "
                 f"{CUBIC_MIN_SIZES}+ sizes")
    return text
