"""Is the sweep good enough to trust? Per-budget checks of where the sizes sit against the
fitted optimum, and whether Approach 3's exponents are identified by the runs.

- **Off-centre**: a budget whose sizes are centred (geometric mean of the sampled range) more
  than `OFF_CENTRE_FACTOR` from its fitted optimum measures one wall of the IsoFLOP curve well
  and the other badly; the parabola vertex is then biased.
- **At the edge**: the lowest-loss run is the smallest or largest size of its budget, or the
  fitted optimum lies outside the sampled range: the minimum may lie beyond the sweep.
- **Misfit**: the surface's RMS log-residual (n - 5 degrees of freedom) is more than
  `MISFIT_FACTOR` times that of the per-budget parabolas (n - 3 per budget) and above
  `MISFIT_FLOOR`: L = E + A/N^alpha + B/D^beta does not describe these runs, whatever its
  intervals say (they cover noise, not the wrong functional form).
- **Not identified**: alpha and beta trade off along a ridge (bootstrap correlation above
  `MAX_EXPONENT_CORRELATION`) or an interval is wider than its value: the surface's separate
  exponents rest on little, even when a = beta / (alpha + beta) is constrained.
- **Not a loss**: more than `NOT_A_LOSS_SHARE` of the budgets' loss-vs-log N parabolas open
  downward (a maximum, not a minimum), or the lowest value per budget rises at every step over
  at least `MIN_RISING_BUDGETS` budgets: the analysed column is probably a score to maximise
  (an accuracy), and every approach's answer, a minimum of it, means nothing.

The fitted optimum of a budget is Approach 3's (under the study's compute model) when the
surface was fitted, else Approach 2's vertex. Every warning names the fix. Nothing here changes
a number.
"""

from __future__ import annotations

import logging
from typing import Any

import numpy as np
import pandas as pd

from flops_fit.fitting.bootstrap import interval
from flops_fit.fitting.isoflop.approaches import IsoflopFit
from flops_fit.fitting.isoflop.estimators import approach2_residuals, budget_groups
from flops_fit.fitting.laws.families import DEFAULT_LAW, FAMILIES
from flops_fit.fitting.surface.compute_model import (
    ComputeModel,
    allocation_laws,
    optimal_allocation,
)
from flops_fit.fitting.surface.study import SurfaceFit

OFF_CENTRE_FACTOR = 2.0  # sweep centre vs fitted optimum (either way) beyond this is flagged
MAX_EXPONENT_CORRELATION = 0.95  # |corr(alpha, beta)| over the bootstrap draws above this
MISFIT_FACTOR = 2.0  # surface RMS log-residual above this multiple of the parabolas' is flagged
MISFIT_FLOOR = 0.01  # ... and above 1% of loss (near-noiseless runs: both are ~0)
NOT_A_LOSS_SHARE = 0.5  # budgets whose parabola opens downward, above this share: not a loss
MIN_RISING_BUDGETS = 3  # a lowest loss rising at every step of fewer budgets may be noise

log = logging.getLogger(__name__)


def _fix(law: dict[str, Any] | None) -> str:
    if law is None or law.get("coefficient") is None or not np.isfinite(law["coefficient"]):
        return "re-plan it with sizes spanning the fitted optimum"
    return (
        "re-plan it around the fitted law: planning.model_sizes.centre: power_law with "
        f"power_law.coefficient {law['coefficient']:.3g} and power_law.exponent "
        f"{law['exponent']:.3g}"
    )


def budget_checks(
    runs: pd.DataFrame,
    isoflop: dict[str, IsoflopFit],
    surface: SurfaceFit,
    model: ComputeModel,
) -> tuple[list[dict[str, Any]], list[str]]:
    """Per budget: sampled range, best run, fitted optimum, centre ratio, flags; and warnings."""
    groups = budget_groups(runs)
    vertices = {p.budget_id: p for p in isoflop["approach_2"].points} if isoflop else {}
    law = None  # the fix re-plans around the best fitted N_opt law: Approach 3's, else 2's
    if surface.fit is not None and groups:
        law = allocation_laws(surface.params, model, [g.budget for g in groups])["n_opt"]
    elif isoflop and isoflop["approach_2"].laws.get("n_opt") is not None:
        law = isoflop["approach_2"].laws["n_opt"].to_dict()
    rows, warnings = [], []
    for g in groups:
        lo, hi = float(g.model_size.min()), float(g.model_size.max())
        best = float(g.model_size[int(np.argmin(g.loss))])
        optimum, source = None, None
        if surface.fit is not None:
            optimum, _ = optimal_allocation(g.budget, surface.params, model)
            optimum, source = float(optimum), "approach_3"
        vertex = vertices.get(g.budget_id)
        if (optimum is None or not np.isfinite(optimum)) and vertex is not None \
                and np.isfinite(vertex.model_size) and vertex.valid:
            optimum, source = float(vertex.model_size), "approach_2"
        centre = float(np.sqrt(lo * hi))
        ratio = centre / optimum if optimum and np.isfinite(optimum) else None
        off = ratio is not None and max(ratio, 1 / ratio) > OFF_CENTRE_FACTOR
        at_edge = g.model_size.size >= 3 and (best in (lo, hi) or (
            optimum is not None and np.isfinite(optimum) and not lo <= optimum <= hi))
        rows.append({
            "compute_budget": g.budget, "n_min": lo, "n_max": hi, "best_run_size": best,
            "fitted_optimum": optimum, "optimum_from": source, "centre_over_optimum": ratio,
            "off_centre": bool(off), "optimum_at_edge": bool(at_edge),
        })
        where = f"budget {g.budget:.3g} FLOPs (sizes {lo:.3g}-{hi:.3g})"
        if off:
            side = "above" if ratio > 1 else "below"
            warnings.append(
                f"{where} is centred {max(ratio, 1 / ratio):.2g}x {side} its fitted optimum "
                f"N = {optimum:.3g} ({source}): one wall of its IsoFLOP curve is barely "
                f"measured and its parabola vertex is biased; {_fix(law)}"
            )
        if at_edge:
            what = ("its lowest loss is at the " + ("smallest" if best == lo else "largest")
                    + " size") if best in (lo, hi) else f"its fitted optimum {optimum:.3g} " \
                "lies outside the sampled sizes"
            warnings.append(
                f"{where}: {what}, so the minimum may lie beyond the sweep; extend the sizes "
                f"past that edge or {_fix(law)}"
            )
    return rows, warnings


def surface_misfit(runs: pd.DataFrame, surface: SurfaceFit) -> tuple[dict[str, Any], list[str]]:
    """The surface's RMS log-residual against the per-budget parabolas' (a local reference)."""
    out: dict[str, Any] = {"surface_rms_log_residual": None,
                           "parabola_rms_log_residual": None, "misfit": None}
    if surface.fit is None:
        return out, []
    groups = budget_groups(runs)
    if not groups:
        return out, []
    n, d, loss = (np.concatenate([getattr(g, k) for g in groups])
                  for k in ("model_size", "num_tokens", "loss"))
    _, resid, _, n_params = surface.residuals(n, d, loss)
    surface_rms = float(np.sqrt(np.sum(resid**2) / max(1, loss.size - n_params)))
    out["surface_rms_log_residual"] = surface_rms
    sq, dof = 0.0, 0
    for g in groups:
        if g.loss.size <= 3:  # a parabola through 3 sizes leaves no residual
            continue
        local_resid = approach2_residuals(g)["residuals"]
        if not np.all(np.isfinite(local_resid)):
            continue
        sq += float(np.sum(local_resid**2))
        dof += g.loss.size - 3
    if dof == 0:
        return out, []
    local = float(np.sqrt(sq / dof))
    misfit = surface_rms > MISFIT_FACTOR * local and surface_rms > MISFIT_FLOOR
    out.update(parabola_rms_log_residual=local, misfit=bool(misfit))
    if not misfit:
        return out, []
    return out, [
        f"Approach 3: the surface misfits the runs: its RMS residual is {surface_rms:.1%} of "
        f"the loss, {surface_rms / local:.2g}x the per-budget parabolas' {local:.1%}, so "
        f"{FAMILIES[surface.law].formula} does not describe these runs and its intervals "
        "(which cover noise, not the wrong form) understate the error; compare it with "
        "Approach 2 (recommended_approach says which passed its checks, the extrapolation check "
        "how each predicted the held-out budget), or set analysis.law: auto to let the family "
        "that best predicts held-out budgets answer"
    ]


def identification(surface: SurfaceFit, level: float) -> tuple[dict[str, Any], list[str]]:
    """Are alpha and beta identified? Their bootstrap correlation and interval widths."""
    out: dict[str, Any] = {"alpha_beta_correlation": None, "identified": None}
    if surface.fit is None or surface.draws is None or surface.law != DEFAULT_LAW:
        return out, []  # Chinchilla's alpha and beta: another family's answer does not use them
    alpha, beta = surface.draws["alpha"], surface.draws["beta"]
    ok = np.isfinite(alpha) & np.isfinite(beta)
    if ok.sum() < 10:
        return out, []
    corr = float(np.corrcoef(alpha[ok], beta[ok])[0, 1]) if np.std(alpha[ok]) > 0 and \
        np.std(beta[ok]) > 0 else 0.0
    problems = []
    if abs(corr) > MAX_EXPONENT_CORRELATION:
        problems.append(f"their bootstrap correlation is {corr:.3f}")
    for key in ("alpha", "beta"):
        lo, hi = interval(surface.draws[key], level)
        value = getattr(surface.fit, key)
        if lo is not None and hi - lo > abs(value):
            problems.append(f"the {key} interval [{lo:.3g}, {hi:.3g}] is wider than {key} itself")
    out.update(alpha_beta_correlation=corr, identified=not problems)
    if not problems:
        return out, []
    return out, [
        "Approach 3: alpha and beta are not identified by these runs (" + "; ".join(problems)
        + "): the surface's separate exponents, E, A and B rest on little even where the "
        "allocation exponent a = beta / (alpha + beta) is constrained; widen the range of N "
        "and D (more budgets over more decades, sizes on both sides of every optimum) before "
        "reading them"
    ]


def loss_check(runs: pd.DataFrame, isoflop: dict[str, IsoflopFit],
               column: str) -> tuple[dict[str, Any], list[str]]:
    """Do the analysed values (`column`) behave like a loss? See "Not a loss" above; the
    warning is logged once, and `not_a_loss_warning` tells the report to give no answer."""
    curvatures = [p.parabola["parabola_c2"] for p in (isoflop["approach_2"].points
                                                      if isoflop else []) if p.parabola]
    curvatures = [c for c in curvatures if np.isfinite(c)]
    downward = sum(c <= 0 for c in curvatures)  # as estimators' "opens downward"
    groups = budget_groups(runs)  # in increasing budget
    lowest = [float(g.loss.min()) for g in groups]
    rises = len(lowest) >= MIN_RISING_BUDGETS and all(np.diff(lowest) > 0)
    mostly_down = bool(curvatures) and downward > NOT_A_LOSS_SHARE * len(curvatures)
    signs = []
    if mostly_down:
        signs.append(f"{downward} of {len(curvatures)} budgets' loss-vs-log N parabolas open "
                     "downward (a maximum, not a minimum)")
    if rises:
        signs.append(f"its lowest value per budget rises with compute, from {lowest[0]:.3g} at "
                     f"{groups[0].budget:.3g} FLOPs to {lowest[-1]:.3g} at "
                     f"{groups[-1].budget:.3g} FLOPs")
    warning = None
    if signs:
        warning = (f"the analysed values (column '{column}') may not be a loss: "
                   + " and ".join(signs) + "; every approach looks for its minimum, which "
                   "means nothing for a score to maximise (an accuracy). Analyse a loss "
                   "column: set analysis.columns.loss to its name")
        log.warning("%s", warning)
    return {"loss_column": column, "downward_parabolas": downward,
            "fitted_parabolas": len(curvatures), "lowest_loss_rises": bool(rises),
            "not_a_loss_warning": warning}, [warning] if warning else []


def sweep_diagnostics(
    runs: pd.DataFrame,
    isoflop: dict[str, IsoflopFit],
    surface: SurfaceFit,
    model: ComputeModel,
    level: float,
    loss_column: str,
) -> dict[str, Any]:
    """The scaling_laws document's `diagnostics` section: budgets, identification, warnings."""
    loss, loss_warnings = loss_check(runs, isoflop, loss_column)
    rows, warnings = budget_checks(runs, isoflop, surface, model)
    ident, ident_warnings = identification(surface, level)
    fit, fit_warnings = surface_misfit(runs, surface)
    return {"budgets": rows, **ident, **fit, **loss,
            "warnings": loss_warnings + warnings + ident_warnings + fit_warnings}
