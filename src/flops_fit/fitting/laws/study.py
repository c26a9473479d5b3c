"""Approach 3 with law families on a study's runs: the choice (`laws.choice`) and a bootstrap
that repeats it.

The draws are made as Chinchilla's are (`surface.study`): a residual draw's losses are the
answering family's fitted losses times exp(a resampled, leverage-corrected residual of that
fit), scaled by the small-sample factor of n - p degrees of freedom; a pairs draw reweights the
runs. The draws repeat the choice (`choice.draw_choice`: every family refitted on every
rollout fold); each draw then refits the family it chose, on all runs, and Chinchilla's form
(by Approach 3's own solver, whose parameters are always reported). A draw's answer is its own
family's: the params mapping carries ``"law"`` per draw (`laws.evaluate`).
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass

import numpy as np

from flops_fit.fitting.bootstrap import (
    BootstrapReport,
    Resampling,
    residual_losses,
    residual_pool,
    small_sample_factor,
)
from flops_fit.fitting.laws.choice import LawChoice, choose_law, draw_choice
from flops_fit.fitting.laws.families import (
    DEFAULT_LAW,
    FAMILIES,
    bound_sides,
    highest_log_loss,
    log_loss_and_jacobian,
    theta_to_named,
    valid,
    vanished,
)
from flops_fit.fitting.laws.solver import FamilyFit, minimise
from flops_fit.fitting.surface.fit import ParametricFit, bootstrap_parametric
from flops_fit.fitting.surface.objective import theta_to_params
from flops_fit.parameters.analysis import AnalysisConfig

log = logging.getLogger(__name__)

#: what a failed draw of the law families is (the warnings say it; the bootstrap note too)
FAILED_DRAW = ("no valid law (non-finite objective, non-positive exponent, or a term in N or "
               "in D that vanished: families.vanished)")


def family_residuals(fit: FamilyFit, x: np.ndarray, y: np.ndarray, log_l: np.ndarray):
    """Fitted losses, log residuals ln(L / fitted) and each run's leverage (the diagonal of
    J (J^T J)^+ J^T, J the Jacobian of ln L_hat in theta at the fit)."""
    f, jac = log_loss_and_jacobian(fit.law, fit.theta[None, :], x, y)
    j = jac[0]
    leverage = np.einsum("ij,jk,ik->i", j, np.linalg.pinv(j.T @ j), j)
    return np.exp(f[0]), log_l - f[0], leverage


def residual_draws(fit: FamilyFit, x, y, log_l, positions: np.ndarray, resampling: Resampling,
                   cfg: AnalysisConfig) -> tuple[np.ndarray, int, float, str]:
    """A residual bootstrap's losses (B, n) from family fit `fit`: its fitted losses times a
    resampled, leverage-corrected residual (`bootstrap.residual_pool`), scaled by the
    small-sample factor of n - p degrees of freedom; with that dof, the factor and the pool's
    rule in words."""
    fitted, resid, leverage = family_residuals(fit, x, y, log_l)
    p = FAMILIES[fit.law].n_params
    pool, rule = residual_pool(resid, leverage, cfg.approach_3, p)
    dof = int(log_l.size - p)
    factor = small_sample_factor(dof, cfg.confidence_level)
    return residual_losses(fitted, pool, positions, resampling, factor), dof, factor, rule


def params_mapping(choice: LawChoice) -> dict[str, object]:
    """The full-data answer as a params mapping: ``law`` and every fitted family's params."""
    out: dict[str, object] = {"law": choice.chosen}
    for name, fit in choice.fits.items():
        named = fit.params if fit.ok else dict.fromkeys(FAMILIES[name].param_names, np.nan)
        out.update({FAMILIES[name].key(k): v for k, v in named.items()})
    return out


def chinchilla_family_fit(fit: ParametricFit) -> FamilyFit:
    """Approach 3's own Chinchilla fit as the law family's fit (theta in the family's order)."""
    theta = [np.log(fit.A), np.log(fit.B), np.log(fit.E), fit.alpha, fit.beta]
    return FamilyFit(DEFAULT_LAW, np.asarray(theta, dtype=float), fit.objective, fit.n_runs)


@dataclass
class LawDraws:
    """The draws of Approach 3 under law families: each draw's answer, and Chinchilla's form
    refitted in every draw by Approach 3's own solver (its basins flag for the warnings)."""

    draws: dict[str, np.ndarray]
    report: BootstrapReport
    chinchilla_basins: np.ndarray
    #: family -> where each draw's parameters (B, p) sit on the draw's own bounds
    #: (`families.bound_sides`; 0 where the family did not answer the draw or failed it)
    sides: dict[str, np.ndarray]


def fit_laws(fit: ParametricFit, n, d, loss, budget, positions: np.ndarray,
             resampling: Resampling | None, cfg: AnalysisConfig,
             starts: dict[str, np.ndarray] | None = None,
             below: dict[str, dict[float, FamilyFit]] | None = None,
             log_level: int = logging.INFO) -> tuple[LawChoice, LawDraws | None]:
    """The families' fits, the choice, and (with `resampling`) the draws that repeat it.

    `fit` is Approach 3's own fit of Chinchilla's form; `positions` are the rows of the runs
    table that the runs (n, d, loss) are, for the resampling's columns; `starts` (a family's
    theta) replace a family's start grid, `below` as in `choice.choose_law`; `log_level`: of the
    line that says which law answers (a check that refits on fewer runs says its own)."""
    settings, lc = cfg.approach_3, cfg.law_choice
    kw = {"delta": settings.huber_delta, "objective": settings.objective}
    x, y, log_l = np.log(n), np.log(d), np.log(loss)
    t0 = time.perf_counter()
    choice = choose_law(x, y, log_l, np.asarray(budget, dtype=float), law=cfg.law,
                        held_out=lc.held_out, tie=lc.tie, min_runs=cfg.budgets.min_runs,
                        chinchilla=chinchilla_family_fit(fit), starts=starts, below=below,
                        **kw)
    log.log(log_level, "Approach 3's law: %s (%s; %.2f s)", choice.chosen, choice.reason,
            time.perf_counter() - t0)
    if resampling is None:
        return choice, None
    t1 = time.perf_counter()
    answer = choice.fits[choice.chosen]
    dof, factor, note, weights, losses = None, None, None, None, None
    if resampling.residual:
        losses, dof, factor, rule = residual_draws(answer, x, y, log_l, positions, resampling,
                                                   cfg)
        log_draws = np.log(losses)
        note = f"residuals of the {answer.law} fit: {rule}"
    else:
        weights = resampling.weights[:, positions]
        log_draws = np.broadcast_to(log_l, weights.shape)
    pick, how = draw_choice(choice, x, y, log_draws, weights, tie=lc.tie, pilot=lc.pilot_draws,
                            **kw)
    names = list(choice.fits)
    draws: dict[str, np.ndarray] = {"law": np.asarray(names)[pick]}
    # Chinchilla's form in every draw, whichever family answers: its parameters are reported
    boot = bootstrap_parametric(fit, n, d, loss, weights, cfg.bootstrap, settings, losses=losses)
    named = theta_to_params(boot.theta)
    answered = np.zeros(pick.size, dtype=bool)
    ok = np.isfinite(boot.objective) & np.isfinite(named["G"])
    draws.update({key: np.where(ok, value, np.nan) for key, value in named.items()})
    answered |= ok & (pick == names.index(DEFAULT_LAW))
    sides = {}
    for i, name in enumerate(names):
        rows = np.flatnonzero(pick == i)
        if name == DEFAULT_LAW:
            continue
        named = {key: np.full(pick.size, np.nan) for key in FAMILIES[name].param_names}
        sides[name] = np.zeros((pick.size, FAMILIES[name].n_params), dtype=int)
        if rows.size:  # a family is refitted in the draws it answers, warm from its fit
            start = np.repeat(choice.fits[name].theta[None, :], rows.size, axis=0)
            counts = None if weights is None else weights[rows]
            theta, objective = minimise(name, start, x, y, log_draws[rows], weights=counts,
                                        **kw)
            got = theta_to_named(name, theta)
            good = valid(name, got) & np.isfinite(objective) & ~vanished(name, theta, x, y)
            for key in named:
                named[key][rows] = np.where(good, got[key], np.nan)
            answered[rows[good]] = True
            on_bound = bound_sides(name, theta, highest_log_loss(log_draws[rows], counts))
            sides[name][rows] = np.where(good[:, None], on_bound, 0)
        draws.update({FAMILIES[name].key(k): v for k, v in named.items()})
    choice.draw_shares = {name: float(np.mean(pick == i)) for i, name in enumerate(names)}
    report = BootstrapReport(
        scheme=resampling.mode, draws=resampling.draws, failed_draws=int((~answered).sum()),
        residual_dof=dof, small_sample_factor=factor,
        note="; ".join(filter(None, [
            note, how, "a family's parameters are refitted in the draws it answers (NaN in "
            "the others), Chinchilla's in every draw", f"a draw whose family gives {FAILED_DRAW} "
            "is left out of the percentiles and counted in failed_draws"])))
    log.info("Approach 3 bootstrap over %d families: %d draws in %.2f s (%s)", len(names),
             pick.size, time.perf_counter() - t1,
             ", ".join(f"{k} {v:.0%}" for k, v in choice.draw_shares.items()))
    return choice, LawDraws(draws, report, boot.improved_by_extra_start, sides)
