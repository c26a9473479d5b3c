"""Approach 3: the fit of L(N, D) = E + A/N^alpha + B/D^beta to runs, and its bootstrap.

Fitted as in Hoffmann et al. (2022) and Besiroglu et al. (2024): minimise the *sum* of
Huber(delta) residuals of log-loss over a log-sum-exp parameterisation (`fitting.objective`).
The paper's recipe starts L-BFGS-B from each of 4,500 grid points (`fitting.reference`). This
module reaches an objective at least as low (checked against that recipe on the digitised
Chinchilla runs, see tests/fitting/test_parametric.py and benchmarks/bench_parametric_fit.py)
more than a hundred times faster (benchmarks/bench_parametric_fit.py prints the ratio):

1. **Starts** from variable projection over (alpha, beta) (`fitting.start_search`).
2. **Batched robust Gauss-Newton.** All starts are refined at once by a Levenberg-Marquardt
   iteration on the IRLS majoriser of the Huber loss (`fitting.solver`): all to a loose
   tolerance, the best few on to a tight one.
3. **Polish.** The best few end points are polished by L-BFGS-B with the analytic gradient.

The bootstrap reuses step 2 for all draws at once, warm-started from the full-data fit plus a
few perturbed starts per draw (`bootstrap_parametric`).

The user-facing settings are `params:analysis.approach_3` (`Approach3Params`) and
`params:analysis.bootstrap` (`BootstrapParams`); the solver's tolerances are constants here.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from scipy.optimize import minimize

from flops_fit.fitting.objective import (
    ParametricFitError,
    RunData,
    batched_objective,
    objective_and_gradient,
)
from flops_fit.fitting.solver import minimise_batched
from flops_fit.fitting.start_search import grid, profile_surface, start_points
from flops_fit.fitting.surface import PARAM_NAMES, allocation_constants
from flops_fit.parameters.analysis import Approach3Params, BootstrapParams

MIN_RUNS = 6  # five parameters: fewer runs cannot constrain the surface
# The solver's stopping rules (relative objective decrease per step, and steps).
LOOSE_FTOL, LOOSE_MAX_ITER = 1e-7, 200  # every start
TIGHT_FTOL, TIGHT_MAX_ITER = 1e-12, 1000  # the best `n_polish` starts
# Each bootstrap draw: 1e-9 leaves a draw's exponents within ~5e-5 of full convergence
# (measured on the Chinchilla runs), far inside any interval.
BOOTSTRAP_FTOL, BOOTSTRAP_MAX_ITER = 1e-9, 500
BOOTSTRAP_PERTURBATION = 0.15  # sd of the log-factor applied to alpha and beta of extra starts
_LBFGS_OPTIONS = {"maxiter": 5000, "ftol": 1e-15, "gtol": 1e-14, "maxcor": 20}

__all__ = [
    "MIN_RUNS",
    "ParametricFit",
    "ParametricFitError",
    "bootstrap_parametric",
    "fit_parametric",
]


@dataclass
class ParametricFit:
    """A fitted surface: its five parameters, the objective reached and how it was reached."""

    E: float
    A: float
    B: float
    alpha: float
    beta: float
    objective: float
    n_runs: int
    theta: list[float] = field(default_factory=list)
    method: dict[str, Any] = field(default_factory=dict)

    @property
    def params(self) -> dict[str, float]:
        return {k: getattr(self, k) for k in PARAM_NAMES}

    @property
    def constants(self) -> dict[str, float]:
        """The allocation constants a, b, G (`surface.allocation_constants`)."""
        return allocation_constants(self.params)

    @property
    def a(self) -> float:
        return self.constants["a"]

    @property
    def b(self) -> float:
        return self.constants["b"]

    @property
    def G(self) -> float:  # noqa: N802 - the paper's name
        return self.constants["G"]


def fit_parametric(
    model_size: Any,
    num_tokens: Any,
    loss: Any,
    settings: Approach3Params | None = None,
    weights: Any = None,
) -> ParametricFit:
    """Fit L(N, D) = E + A/N^alpha + B/D^beta to runs (see the module docstring for the scheme).

    `settings` defaults to `Approach3Params()` (= conf/base); `weights` counts each run.
    """
    settings = settings or Approach3Params()
    delta = settings.huber_delta
    data = RunData.from_arrays(model_size, num_tokens, loss)
    n = data.log_l.size
    if n < MIN_RUNS:
        raise ParametricFitError(
            f"Approach 3 needs at least {MIN_RUNS} runs to fit five parameters, got {n}"
        )
    w = None if weights is None else np.asarray(weights, dtype=float)
    obj, theta_grid = profile_surface(
        data, grid(settings.alpha_grid), grid(settings.beta_grid), delta
    )
    starts = start_points(obj, theta_grid, settings.n_starts)
    if not len(starts):
        raise ParametricFitError("no feasible start found for the parametric fit")
    # All starts to a loose tolerance, then the best few to a tight one, then L-BFGS-B.
    theta, f, iters = minimise_batched(starts, data, w, delta, LOOSE_FTOL, LOOSE_MAX_ITER)
    keep = np.argsort(np.where(np.isfinite(f), f, np.inf))[: max(1, settings.n_polish)]
    theta, f, iters_tight = minimise_batched(
        theta[keep], data, w, delta, TIGHT_FTOL, TIGHT_MAX_ITER
    )
    best_theta, best_f = _polish(theta, f, data, w, delta, settings.n_polish)
    E, A, B = math.exp(best_theta[2]), math.exp(best_theta[0]), math.exp(best_theta[1])
    return ParametricFit(
        E=E,
        A=A,
        B=B,
        alpha=float(best_theta[3]),
        beta=float(best_theta[4]),
        objective=float(best_f),
        n_runs=n,
        theta=[float(x) for x in best_theta],
        method={
            "scheme": "variable projection over (alpha, beta) + batched IRLS Levenberg-Marquardt "
            "+ L-BFGS-B polish",
            "grid_pairs": int(obj.size),
            "starts_refined": len(starts),
            "max_iterations": int(iters.max() + iters_tight.max()),
            "huber_delta": delta,
        },
    )


def _polish(theta: np.ndarray, f: np.ndarray, data: RunData, weights, delta: float, n: int):
    order = np.argsort(f)[: max(1, n)]
    best_theta, best_f = theta[order[0]].copy(), float(f[order[0]])
    for i in order:
        if not np.isfinite(f[i]):
            continue
        res = minimize(
            objective_and_gradient,
            theta[i],
            args=(data, weights, delta),
            jac=True,
            method="L-BFGS-B",
            options=_LBFGS_OPTIONS,
        )
        cand_f = float(
            batched_objective(
                res.x[None, :], data, None if weights is None else weights[None, :], delta
            )[0]
        )
        for cand_t, val in ((res.x, cand_f), (theta[i], float(f[i]))):
            if val < best_f:
                best_theta, best_f = np.array(cand_t, dtype=float), val
    return best_theta, best_f


@dataclass(frozen=True)
class SurfaceDraws:
    """The bootstrap of a fit: one row per draw."""

    theta: np.ndarray  # (B, 5)
    objective: np.ndarray  # (B,)
    iterations: np.ndarray  # (B,)
    #: a perturbed start beat the warm start by more than 1e-6 relative: several basins
    improved_by_extra_start: np.ndarray  # (B,) bool


def bootstrap_parametric(
    fit: ParametricFit,
    model_size: Any,
    num_tokens: Any,
    loss: Any,
    weights: np.ndarray,
    bootstrap: BootstrapParams | None = None,
    settings: Approach3Params | None = None,
) -> SurfaceDraws:
    """Refit the surface for every row of `weights` (draws x runs resampling counts).

    Every draw starts from the full-data fit and from `bootstrap.extra_starts` perturbed copies
    of it (alpha and beta scaled by exp(N(0, BOOTSTRAP_PERTURBATION)), log A and log B moved so
    that each term keeps its value at the median run), seeded by `bootstrap.seed`; the best
    end point is kept. All draws and starts are refined together by `minimise_batched`.
    """
    bootstrap = bootstrap or BootstrapParams()
    delta = (settings or Approach3Params()).huber_delta
    data = RunData.from_arrays(model_size, num_tokens, loss)
    weights = np.asarray(weights, dtype=float)
    draws = weights.shape[0]
    base = np.asarray(fit.theta, dtype=float)
    n_start = 1 + max(0, int(bootstrap.extra_starts))
    starts = np.repeat(base[None, :], draws * n_start, axis=0)
    if n_start > 1:
        rng = np.random.default_rng(np.random.SeedSequence([int(bootstrap.seed), 3]))
        extra = starts[draws:]
        factors = np.exp(rng.normal(0.0, BOOTSTRAP_PERTURBATION, size=(len(extra), 2)))
        new_alpha, new_beta = extra[:, 3] * factors[:, 0], extra[:, 4] * factors[:, 1]
        extra[:, 0] += (new_alpha - extra[:, 3]) * np.median(data.log_n)
        extra[:, 1] += (new_beta - extra[:, 4]) * np.median(data.log_d)
        extra[:, 3], extra[:, 4] = new_alpha, new_beta
    all_w = np.tile(weights, (n_start, 1))
    theta, f, iters = minimise_batched(
        starts, data, all_w, delta, BOOTSTRAP_FTOL, BOOTSTRAP_MAX_ITER
    )
    f = f.reshape(n_start, draws)
    theta = theta.reshape(n_start, draws, 5)
    best = np.argmin(np.where(np.isfinite(f), f, np.inf), axis=0)
    pick = np.arange(draws)
    return SurfaceDraws(
        theta=theta[best, pick],
        objective=f[best, pick],
        iterations=iters.reshape(n_start, draws).max(axis=0),
        improved_by_extra_start=f[best, pick] < f[0] * (1 - 1e-6),
    )
