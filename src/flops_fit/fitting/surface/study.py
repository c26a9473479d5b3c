"""Approach 3 on the analysis runs table: the surface fit, its bootstrap draws and warnings.

The fit itself is `fitting.surface.fit`; this module hands it the used runs, bootstraps it with
the draws every approach shares (`fitting.bootstrap`). Which (N, D) a budget buys on the surface
is the study's compute model's business (`fitting.surface.compute_model`), not this module's.

The residual bootstrap (default): a draw's losses are the fitted surface at the runs times
exp(a resampled log residual of the fit, `residual_pool`: leverage-corrected r/sqrt(1-h) with h
from the Gauss-Newton Jacobian of log L at the fit, or, for the default near-L1 Huber fit, the
residuals of all but the 5 runs the fit passes through), centred and scaled by the small-sample
factor t/z of n - 5 degrees of freedom (`bootstrap.residual_losses`); every draw is refitted
(`parametric.bootstrap_parametric`). A draw whose refit gives no valid surface is left out of
the percentiles and counted (`BootstrapReport`).
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np
import pandas as pd

from flops_fit.fitting.bootstrap import (
    BootstrapReport,
    Resampling,
    plan_draws,
)
from flops_fit.fitting.laws.beyond import LawError, measure_law_error
from flops_fit.fitting.laws.bounded import FLOOR, floor_entry, law_bounds, named_text
from flops_fit.fitting.laws.choice import MIN_FIT_BUDGETS, LawChoice, rollout_folds
from flops_fit.fitting.laws.families import (
    DEFAULT_LAW,
    EXPONENT_FLOOR,
    FAMILIES,
    K_CEILING,
    PLATEAU_CEILING,
    VANISHED_SHARE,
    at_bound,
    vanished,
)
from flops_fit.fitting.laws.study import (
    FAILED_DRAW,
    chinchilla_family_fit,
    family_residuals,
    fit_laws,
    params_mapping,
    residual_draws,
)
from flops_fit.fitting.surface.compute_model import ComputeModel
from flops_fit.fitting.surface.fit import (
    MIN_RUNS,
    ParametricFit,
    ParametricFitError,
    bootstrap_parametric,
    fit_parametric,
)
from flops_fit.fitting.surface.objective import theta_to_params
from flops_fit.fitting.surface.surface_warnings import (
    drifting_draws_warning,
    surface_bootstrap_warnings,
    surface_fit_warnings,
)
from flops_fit.fitting.threads import limit_blas_threads
from flops_fit.parameters.analysis import AnalysisConfig

log = logging.getLogger(__name__)


@dataclass
class SurfaceFit:
    """Approach 3 on a study. `fit` is None when the surface could not be fitted (see warnings);
    `draws` (schema.SURFACE_KEYS -> (B,), NaN for dropped draws) is None without a bootstrap."""

    fit: ParametricFit | None
    draws: dict[str, np.ndarray] | None
    warnings: list[str]
    n_runs: int
    #: the bootstrap's scheme, draws and failures; None without a bootstrap or a fit
    bootstrap: BootstrapReport | None = None
    #: the law families fitted and the one that answers (None: Chinchilla's form, pinned)
    choice: LawChoice | None = None
    #: the answering law's own error away from its data (None: off, or not measured and no
    #: floor; without folds: the loss's floor alone)
    law_error: LawError | None = None
    #: Chinchilla's surface's and the answering law's parameters on a bound, in the fit or at
    #: an end of their intervals (`laws.bounded`: name -> entry)
    at_bound: dict[str, dict[str, Any]] = field(default_factory=dict)
    law_at_bound: dict[str, dict[str, Any]] = field(default_factory=dict)

    @property
    def law(self) -> str:
        """The family whose surface answers (`fitting.laws.families`)."""
        return self.choice.chosen if self.choice is not None else DEFAULT_LAW

    @property
    def params(self) -> dict[str, Any] | None:
        """The answer as a params mapping (``law`` and every fitted family's parameters), for
        `parametric_loss` and `optimal_allocation`; None without a fit."""
        if self.fit is None:
            return None
        if self.choice is None:
            return {"law": DEFAULT_LAW, **self.fit.params}
        return {**self.fit.params, **params_mapping(self.choice)}

    def residuals(self, n: np.ndarray, d: np.ndarray, loss: np.ndarray):
        """Fitted losses, log residuals, leverage and the number of parameters of the answer."""
        fit = (chinchilla_family_fit(self.fit) if self.choice is None
               else self.choice.fits[self.law])
        return (*family_residuals(fit, np.log(n), np.log(d), np.log(loss)),
                FAMILIES[self.law].n_params)


def fit_surface(runs: pd.DataFrame, cfg: AnalysisConfig, model: ComputeModel) -> SurfaceFit:
    """Approach 3: the fit, its bootstrap draws (named arrays), its law's error beyond the fit
    (under the study's compute model `model`: N_opt's error is measured there) and warnings."""
    used = runs[runs["used_in_fit"]]
    result = SurfaceFit(fit=None, draws=None, warnings=[], n_runs=int(len(used)))
    if len(used) < MIN_RUNS:
        result.warnings.append(
            f"only {len(used)} usable runs: Approach 3 needs at least {MIN_RUNS}"
        )
        return result
    n, d, loss = (used[c].to_numpy(float) for c in ("model_size", "num_tokens", "final_loss"))
    t0 = time.perf_counter()
    with limit_blas_threads(cfg.blas_threads) as threads:
        try:
            fit = fit_parametric(n, d, loss, cfg.approach_3)
        except ParametricFitError as exc:
            result.warnings.append(f"Approach 3 could not be fitted: {exc}")
            return result
        t_fit = time.perf_counter() - t0
        result.fit = fit
        log.info(
            "Approach 3: %s A=%.4g B=%.4g alpha=%.4g beta=%.4g objective=%.6g "
            "(%d runs, %.2f s; %s)",
            named_text("E", f"{fit.E:.4g}", floor_entry(fit.E, None, loss, cfg.confidence_level),
                       "="),
            fit.A,
            fit.B,
            fit.alpha,
            fit.beta,
            fit.objective,
            fit.n_runs,
            t_fit,
            threads,
        )
        resampling = plan_draws(runs, cfg.bootstrap)
        positions = np.flatnonzero(runs["used_in_fit"].to_numpy(bool))
        if resampling is not None:
            t1 = time.perf_counter()
            if cfg.law == DEFAULT_LAW:
                boot, report = _bootstrap(fit, n, d, loss, positions, resampling, cfg)
                draws = theta_to_params(boot.theta)
                bad = ~np.isfinite(boot.objective) | ~np.isfinite(draws["G"])
                result.draws = {key: np.where(bad, np.nan, value) for key, value in draws.items()}
                result.bootstrap = replace(report, failed_draws=int(bad.sum()))
                log.info("Approach 3 bootstrap: %d draws in %.2f s", len(bad),
                         time.perf_counter() - t1)
                result.warnings.extend(
                    surface_bootstrap_warnings(boot.improved_by_extra_start, result.bootstrap)
                )
        laws = None
        if cfg.law != DEFAULT_LAW:
            result.choice, laws = fit_laws(fit, n, d, loss, used["budget"].to_numpy(float),
                                           positions, resampling, cfg)
            answer = result.choice.fits[result.law]
            if result.choice.unchosen:
                result.warnings.append(
                    f"analysis.law is auto but no family could be chosen: "
                    f"{result.choice.reason}; add budgets (each with analysis.budgets.min_runs "
                    "runs) to let the study choose")
            hit = at_bound(result.law, answer.theta, float(np.log(loss).max()))
            if hit:
                result.warnings.append(
                    f"the {result.law} law's fit sits on its bound for {', '.join(hit)} "
                    f"(exponents at least {EXPONENT_FLOOR:g}; a plateau L_max at most "
                    f"{PLATEAU_CEILING:g}x the highest loss, k at most {K_CEILING:g}): the runs "
                    "only say the law lies along a valley beyond it, so read its parameters "
                    "with care")
            if result.law != DEFAULT_LAW and answer.ok and vanished(
                    result.law, answer.theta, np.log(n), np.log(d))[0]:
                result.warnings.append(
                    f"the {result.law} law's fit lost its term in N or in D (below "
                    f"{VANISHED_SHARE:g} of its terms at every run): a smaller law than the "
                    "family, whose N_opt runs off to an edge, stops growing with C or grows as "
                    "C itself, so its allocation says nothing; pin another analysis.law or set "
                    "it to auto")
            if laws is not None:
                result.draws, result.bootstrap = laws.draws, laws.report
                basins = (laws.chinchilla_basins if result.law == DEFAULT_LAW
                          else np.zeros(0, dtype=bool))
                result.warnings.extend(surface_bootstrap_warnings(basins, laws.report,
                                                                  FAILED_DRAW))
        if cfg.law_error:
            result.law_error = _law_error(result, n, d, loss, used["budget"].to_numpy(float),
                                          cfg, model)
    if result.law == DEFAULT_LAW:
        result.warnings.extend(surface_fit_warnings(fit, loss, cfg.approach_3))
    # what sits on a bound is shown as such, not as the solver's last number
    level = cfg.confidence_level
    floor = floor_entry(fit.E, None if result.draws is None else result.draws[FLOOR], loss,
                        level)
    result.at_bound = {FLOOR: floor} if floor is not None else {}
    if result.choice is not None:
        result.law_at_bound = law_bounds(
            result.law, result.choice.fits[result.law].theta, result.draws,
            None if laws is None else laws.sides.get(result.law), loss, level)
    if result.draws is not None:
        result.warnings.extend(drifting_draws_warning(
            result.params, result.draws, used["budget"].to_numpy(float), model,
            cfg.confidence_level))
    return result


def _law_error(result: SurfaceFit, n, d, loss, budget, cfg: AnalysisConfig,
               model: ComputeModel) -> LawError | None:
    """The answering family's error beyond the fit, from the choice's rollout folds (or the
    same folds fitted here when the family is pinned); a warning when none can be held out."""
    choice = result.choice
    answer = chinchilla_family_fit(result.fit) if choice is None else choice.fits[result.law]
    folds = (choice.folds if choice is not None and choice.folds else
             rollout_folds(budget, cfg.law_choice.held_out, cfg.budgets.min_runs))
    fold_fits = (choice.fold_fits(result.law) if choice is not None and choice.folds
                 else None)
    err = measure_law_error(answer, np.log(n), np.log(d), np.log(loss), budget, folds,
                            fold_fits, model, cfg.bootstrap.seed,
                            delta=cfg.approach_3.huber_delta, objective=cfg.approach_3.objective,
                            floor=cfg.law_error_floor)
    if err is None or not err.folds:
        why = (f"no budget with {cfg.budgets.min_runs}+ runs could be held out "
               f"({MIN_FIT_BUDGETS + 1} such budgets are needed)" if not folds else
               f"the {result.law} law could not be fitted to the budgets below a held-out one")
        carry = ("intervals above the centre of the budgets carry the parameters' noise only"
                 if err is None else
                 "N_opt's and D_opt's intervals above the centre of the budgets carry the "
                 "parameters' noise only, the loss's also analysis.law_error_floor's "
                 f"{100 * err.floor:.2f}% per unit of ln C")
        result.warnings.append(
            f"{why}: the law's own error beyond the fit is not measured, so {carry}")
    else:
        log.info("Approach 3's %s law beyond the fit: error %.2f%% in L (rollout measured "
                 "%.2f%%, the floor is %.2f%%) and %.1f%% in N_opt per unit of ln C (rollout "
                 "over %d budget(s))", err.law, 100 * err.loss_used_per_ln_c,
                 100 * err.loss_per_ln_c, 100 * err.floor, 100 * err.n_opt_per_ln_c,
                 len(err.folds))
    return err


def surface_residuals(fit: ParametricFit, n: np.ndarray, d: np.ndarray, loss: np.ndarray):
    """Fitted losses, log residuals log(L / fitted) and leverage of each run: the diagonal of
    J (J^T J)^-1 J^T with J the Jacobian of log L_hat in theta = (log A, log B, log E, alpha,
    beta) at the fit (`laws.study.family_residuals`)."""
    return family_residuals(chinchilla_family_fit(fit), np.log(n), np.log(d), np.log(loss))


def _bootstrap(fit, n, d, loss, positions, resampling: Resampling, cfg: AnalysisConfig):
    """Refit every draw; returns (SurfaceDraws, a BootstrapReport without the failures)."""
    if not resampling.residual:
        weights = resampling.weights[:, positions]
        boot = bootstrap_parametric(fit, n, d, loss, weights, cfg.bootstrap, cfg.approach_3)
        return boot, BootstrapReport(
            scheme=resampling.mode, draws=resampling.draws, failed_draws=0
        )
    losses, dof, factor, rule = residual_draws(chinchilla_family_fit(fit), np.log(n), np.log(d),
                                               np.log(loss), positions, resampling, cfg)
    boot = bootstrap_parametric(
        fit, n, d, loss, None, cfg.bootstrap, cfg.approach_3, losses=losses
    )
    return boot, BootstrapReport(
        scheme=resampling.mode,
        draws=resampling.draws,
        failed_draws=0,
        residual_dof=dof,
        small_sample_factor=factor,
        note=f"residuals: {rule}; a draw whose refit gives no valid surface (non-finite "
        "objective or a non-positive exponent) is left out of the percentiles and counted in "
        "failed_draws",
    )
