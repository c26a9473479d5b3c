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
from dataclasses import dataclass, replace
from typing import Any

import numpy as np
import pandas as pd

from flops_fit.fitting.bootstrap import (
    BootstrapReport,
    Resampling,
    plan_draws,
    residual_losses,
    small_sample_factor,
    standardised_residuals,
)
from flops_fit.fitting.laws.choice import LawChoice
from flops_fit.fitting.laws.families import DEFAULT_LAW, FAMILIES
from flops_fit.fitting.laws.study import family_residuals, fit_laws, params_mapping
from flops_fit.fitting.surface.fit import (
    MIN_RUNS,
    ParametricFit,
    ParametricFitError,
    bootstrap_parametric,
    fit_parametric,
)
from flops_fit.fitting.surface.law import PARAM_NAMES, parametric_loss
from flops_fit.fitting.surface.objective import theta_to_params
from flops_fit.fitting.surface.surface_warnings import (
    surface_bootstrap_warnings,
    surface_fit_warnings,
)
from flops_fit.fitting.threads import limit_blas_threads
from flops_fit.parameters.analysis import AnalysisConfig, Approach3Params

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
        if self.choice is None or self.law == DEFAULT_LAW:
            return (*surface_residuals(self.fit, n, d, loss), len(PARAM_NAMES))
        fit = self.choice.fits[self.law]
        return (*family_residuals(fit, np.log(n), np.log(d), np.log(loss)),
                FAMILIES[self.law].n_params)


def fit_surface(runs: pd.DataFrame, cfg: AnalysisConfig) -> SurfaceFit:
    """Approach 3: the fit, its bootstrap draws (named arrays) and warnings."""
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
            "Approach 3: E=%.4g A=%.4g B=%.4g alpha=%.4g beta=%.4g objective=%.6g "
            "(%d runs, %.2f s; %s)",
            fit.E,
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
        if resampling is not None:
            t1 = time.perf_counter()
            positions = np.flatnonzero(runs["used_in_fit"].to_numpy(bool))
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
        if cfg.law != DEFAULT_LAW:
            positions = np.flatnonzero(runs["used_in_fit"].to_numpy(bool))
            result.choice, result.draws, result.bootstrap = fit_laws(
                fit.theta, fit.objective, n, d, loss, used["budget"].to_numpy(float), positions,
                resampling, cfg,
                lambda r, h, p: residual_pool(r, h, cfg.approach_3, p))
    if result.law == DEFAULT_LAW:
        result.warnings.extend(surface_fit_warnings(fit, loss, cfg.approach_3))
    return result


def surface_residuals(fit: ParametricFit, n: np.ndarray, d: np.ndarray, loss: np.ndarray):
    """Fitted losses, log residuals log(L / fitted) and leverage of each run: the diagonal of
    J (J^T J)^-1 J^T with J the Jacobian of log L_hat in theta = (log A, log B, log E, alpha,
    beta) at the fit."""
    fitted = np.asarray(parametric_loss(n, d, fit.params), dtype=float)
    t1 = fit.A * n**-fit.alpha
    t2 = fit.B * d**-fit.beta
    p1, p2, p3 = t1 / fitted, t2 / fitted, fit.E / fitted
    jac = np.stack([p1, p2, p3, -p1 * np.log(n), -p2 * np.log(d)], axis=1)
    leverage = np.einsum("ij,jk,ik->i", jac, np.linalg.pinv(jac.T @ jac), jac)
    return fitted, np.log(loss / fitted), leverage


def _bootstrap(fit, n, d, loss, positions, resampling: Resampling, cfg: AnalysisConfig):
    """Refit every draw; returns (SurfaceDraws, a BootstrapReport without the failures)."""
    if not resampling.residual:
        weights = resampling.weights[:, positions]
        boot = bootstrap_parametric(fit, n, d, loss, weights, cfg.bootstrap, cfg.approach_3)
        return boot, BootstrapReport(
            scheme=resampling.mode, draws=resampling.draws, failed_draws=0
        )
    fitted, residuals, leverage = surface_residuals(fit, n, d, loss)
    pool, rule = residual_pool(residuals, leverage, cfg.approach_3)
    dof = int(loss.size - len(PARAM_NAMES))
    factor = small_sample_factor(dof, cfg.confidence_level)
    losses = residual_losses(fitted, pool, positions, resampling, factor)
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


def residual_pool(
    residuals: np.ndarray, leverage: np.ndarray, settings: Approach3Params,
    n_params: int = len(PARAM_NAMES),
) -> tuple[np.ndarray, str]:
    """The residuals the draws resample, and which rule made them.

    A least-squares-like fit (least_squares, or Huber with most residuals inside huber_delta)
    shrinks every residual by its leverage: r / sqrt(1 - h), centred. A Huber fit with most
    residuals beyond huber_delta (the default delta 1e-3 against noise of ~1%) is close to least
    absolute deviations, which instead passes almost exactly through about as many runs as it
    has parameters and leaves the others' residuals at the noise's scale: those p ~0 residuals
    are left out and the rest taken as they are, centred. (Resampled with them, the draws'
    noise spikes at 0, which such a fit reproduces too well: its intervals covered the truth
    92% of the time for a nominal 95%, measured by benchmarks/bench_coverage.py.)
    """
    r = np.asarray(residuals, dtype=float)
    p = int(n_params)
    near_l1 = (
        settings.objective == "huber_log"
        and r.size > 2 * p
        and float(np.median(np.abs(r))) > settings.huber_delta
    )
    if not near_l1:
        return standardised_residuals(r, leverage), "leverage-corrected r/sqrt(1-h)"
    keep = np.sort(np.argsort(np.abs(r))[p:])
    return (
        standardised_residuals(r[keep], None),
        f"near-L1 Huber fit: the {p} runs it passes through left out",
    )
