"""Approach 3 with law families on a study's runs: the choice (`laws.choice`) and a bootstrap
that repeats it.

The draws are made as Chinchilla's are (`surface.study`): a residual draw's losses are the
answering family's fitted losses times exp(a resampled, leverage-corrected residual of that
fit), scaled by the small-sample factor of n - p degrees of freedom; a pairs draw reweights the
runs. Every draw then refits every family, on all runs and on every rollout fold, and chooses
the family as the full data did (`choice.draw_choice`). A draw's answer is its own family's:
the params mapping carries ``"law"`` per draw (`laws.evaluate`).
"""

from __future__ import annotations

import logging
import time

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
    log_loss_and_jacobian,
    theta_to_named,
    valid,
)
from flops_fit.fitting.laws.solver import FamilyFit
from flops_fit.fitting.surface.objective import theta_to_params
from flops_fit.parameters.analysis import AnalysisConfig

log = logging.getLogger(__name__)


def family_residuals(fit: FamilyFit, x: np.ndarray, y: np.ndarray, log_l: np.ndarray):
    """Fitted losses, log residuals ln(L / fitted) and each run's leverage (the diagonal of
    J (J^T J)^+ J^T, J the Jacobian of ln L_hat in theta at the fit)."""
    f, jac = log_loss_and_jacobian(fit.law, fit.theta[None, :], x, y)
    j = jac[0]
    leverage = np.einsum("ij,jk,ik->i", j, np.linalg.pinv(j.T @ j), j)
    return np.exp(f[0]), log_l - f[0], leverage


def params_mapping(choice: LawChoice) -> dict[str, object]:
    """The full-data answer as a params mapping: ``law`` and every fitted family's params."""
    out: dict[str, object] = {"law": choice.chosen}
    for name, fit in choice.fits.items():
        named = fit.params if fit.ok else dict.fromkeys(FAMILIES[name].param_names, np.nan)
        out.update({FAMILIES[name].key(k): v for k, v in named.items()})
    return out


def fit_laws(chinchilla: FamilyFit, n, d, loss, budget, positions: np.ndarray,
             resampling: Resampling | None, cfg: AnalysisConfig
             ) -> tuple[LawChoice, dict[str, np.ndarray] | None, BootstrapReport | None]:
    """The families' fits, the choice, and (with `resampling`) the draws that repeat it.

    `chinchilla` is Approach 3's own fit of Chinchilla's form; `positions` are the rows of the
    runs table that the runs (n, d, loss) are, for the resampling's columns."""
    settings, lc = cfg.approach_3, cfg.law_choice
    kw = {"delta": settings.huber_delta, "objective": settings.objective}
    x, y, log_l = np.log(n), np.log(d), np.log(loss)
    t0 = time.perf_counter()
    choice = choose_law(x, y, log_l, np.asarray(budget, dtype=float), law=cfg.law,
                        held_out=lc.held_out, tie=lc.tie, chinchilla=chinchilla, **kw)
    log.info("Approach 3's law: %s (%s; %.2f s)", choice.chosen, choice.reason,
             time.perf_counter() - t0)
    if resampling is None:
        return choice, None, None
    t1 = time.perf_counter()
    answer = choice.fits[choice.chosen]
    p = FAMILIES[answer.law].n_params
    dof, factor, note, weights = None, None, None, None
    if resampling.residual:
        fitted, resid, leverage = family_residuals(answer, x, y, log_l)
        pool, rule = residual_pool(resid, leverage, settings, p)
        dof = int(loss.size - p)
        factor = small_sample_factor(dof, cfg.confidence_level)
        log_draws = np.log(residual_losses(fitted, pool, positions, resampling, factor))
        note = f"residuals of the {answer.law} fit: {rule}"
    else:
        weights = resampling.weights[:, positions]
        log_draws = np.broadcast_to(log_l, weights.shape)
    thetas, pick, objectives = draw_choice(choice, x, y, log_draws, weights, lc.tie, **kw)
    names = list(choice.fits)
    draws: dict[str, np.ndarray] = {"law": np.asarray(names)[pick]}
    answered = np.zeros(pick.size, dtype=bool)
    for i, name in enumerate(names):
        named = theta_to_named(name, thetas[name])
        ok = valid(name, named) & np.isfinite(objectives[name])
        if name == DEFAULT_LAW:
            named = theta_to_params(thetas[name])
            ok &= np.isfinite(named["G"])
        for key, value in named.items():
            draws[FAMILIES[name].key(key)] = np.where(ok, value, np.nan)
        answered |= ok & (pick == i)
    choice.draw_shares = {name: float(np.mean(pick == i)) for i, name in enumerate(names)}
    how = ("every draw refits every family and repeats the choice by held-out error"
           if choice.mode == "auto" and choice.folds else f"every draw refits {choice.chosen}")
    report = BootstrapReport(
        scheme=resampling.mode, draws=resampling.draws, failed_draws=int((~answered).sum()),
        residual_dof=dof, small_sample_factor=factor,
        note="; ".join(filter(None, [note, how, "a draw whose family gives no valid law is left "
                                     "out of the percentiles and counted in failed_draws"])))
    log.info("Approach 3 bootstrap over %d families: %d draws in %.2f s (%s)", len(names),
             pick.size, time.perf_counter() - t1,
             ", ".join(f"{k} {v:.0%}" for k, v in choice.draw_shares.items()))
    return choice, draws, report
