"""Approach 3 on the analysis runs table: the surface fit, its bootstrap draws and warnings.

The fit itself is `fitting.parametric`; this module hands it the used runs, bootstraps it with
the draws every approach shares (`fitting.bootstrap`) and records how the runs' compute relates
to C = 6 N D, on which the surface's closed-form optimum is defined (`ComputeRatios`).
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from flops_fit.fitting.bootstrap import run_weights
from flops_fit.fitting.diagnostics import (
    compute_ratio_warnings,
    surface_bootstrap_warnings,
    surface_fit_warnings,
)
from flops_fit.fitting.objective import theta_to_params
from flops_fit.fitting.parametric import (
    MIN_RUNS,
    ParametricFit,
    ParametricFitError,
    bootstrap_parametric,
    fit_parametric,
)
from flops_fit.fitting.threads import limit_blas_threads
from flops_fit.flops import compute_6nd
from flops_fit.parameters.analysis import AnalysisConfig

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ComputeRatios:
    """Median of 6 N D / compute over the used runs, per budget and overall (1 when compute is
    6 N D): converts a budget's own FLOP count to the 6 N D the surface's optimum is defined on."""

    by_budget: dict[int, float] = field(default_factory=dict)
    overall: float = 1.0

    @classmethod
    def of(cls, runs: pd.DataFrame) -> ComputeRatios:
        used = runs[runs["used_in_fit"]]
        ratio = compute_6nd(used["model_size"], used["num_tokens"]) / used["compute"]
        ratio = ratio.where(np.isfinite(ratio) & (ratio > 0))
        by_budget = ratio.groupby(used["budget_id"]).median().dropna()
        overall = float(ratio.median()) if ratio.notna().any() else 1.0
        return cls({int(k): float(v) for k, v in by_budget.items()}, overall)

    def as_6nd(self, budget_id: int, budget: float) -> float:
        """The budget's compute expressed as 6 N D."""
        return budget * self.by_budget.get(budget_id, self.overall)


@dataclass
class SurfaceFit:
    """Approach 3 on a study. `fit` is None when the surface could not be fitted (see warnings);
    `draws` (schema.SURFACE_KEYS -> (B,), NaN for dropped draws) is None without a bootstrap."""

    fit: ParametricFit | None
    draws: dict[str, np.ndarray] | None
    warnings: list[str]
    compute_ratios: ComputeRatios
    n_runs: int


def fit_surface(runs: pd.DataFrame, cfg: AnalysisConfig) -> SurfaceFit:
    """Approach 3: the fit, its bootstrap draws (named arrays) and warnings."""
    used = runs[runs["used_in_fit"]]
    ratios = ComputeRatios.of(runs)
    result = SurfaceFit(
        fit=None,
        draws=None,
        warnings=compute_ratio_warnings(ratios.overall),
        compute_ratios=ratios,
        n_runs=int(len(used)),
    )
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
        weights = run_weights(runs, cfg.bootstrap)
        if weights is not None:
            t1 = time.perf_counter()
            rows = runs.index[runs["used_in_fit"]].to_numpy()
            boot = bootstrap_parametric(
                fit, n, d, loss, weights[:, rows], cfg.bootstrap, cfg.approach_3
            )
            draws = theta_to_params(boot.theta)
            bad = ~np.isfinite(boot.objective) | ~np.isfinite(draws["G"])
            result.draws = {key: np.where(bad, np.nan, value) for key, value in draws.items()}
            log.info("Approach 3 bootstrap: %d draws in %.2f s", len(bad), time.perf_counter() - t1)
            result.warnings.extend(surface_bootstrap_warnings(boot.improved_by_extra_start, bad))
    result.warnings.extend(surface_fit_warnings(fit, loss, cfg.approach_3))
    return result
