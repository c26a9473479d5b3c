"""Approach 3: the fit of L(N, D) = E + A/N^alpha + B/D^beta to runs, and its bootstrap.

Fitted as in Hoffmann et al. (2022) and Besiroglu et al. (2024): by default minimise the *sum*
of Huber(delta) residuals of log-loss over a log-sum-exp parameterisation (`fitting.surface.objective`);
`Approach3Params.objective = "least_squares"` minimises the sum of squared raw-loss residuals
instead (the fit for additive noise, under which the log-space objective is misspecified). The
objective used is recorded in `ParametricFit.method["objective"]`. The paper's recipe starts
L-BFGS-B from each of 4,500 grid points (`fitting.reference`). This module reaches an objective
at least as low (checked against that recipe on the digitised Chinchilla runs, see
tests/fitting/test_parametric.py and benchmarks/bench_parametric_fit.py) more than a hundred
times faster (benchmarks/bench_parametric_fit.py prints the ratio):

1. **Starts** from variable projection over (alpha, beta) (`fitting.surface.starts`).
2. **Batched Gauss-Newton.** All starts are refined at once by a Levenberg-Marquardt iteration
   (`fitting.surface.solver`; for the Huber loss its exact Gauss-Newton curvature, kept regular by a
   small IRLS term): all to a loose tolerance, the best few on to a tight one.
3. **Polish.** The best few end points are polished by L-BFGS-B with the analytic gradient.

The bootstrap reuses step 2 for all draws at once, warm-started from the full-data fit, with a
few perturbed starts per draw run lazily (`bootstrap_parametric`).

The user-facing settings are `params:analysis.approach_3` (`Approach3Params`) and
`params:analysis.bootstrap` (`BootstrapParams`); the solver's tolerances are constants here.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from scipy.optimize import minimize

from flops_fit.fitting.surface.law import PARAM_NAMES, allocation_constants
from flops_fit.fitting.surface.objective import (
    OBJECTIVE_DESCRIPTIONS,
    ParametricFitError,
    RunData,
    batched_objective,
    objective_and_gradient,
)
from flops_fit.fitting.surface.solver import minimise_batched
from flops_fit.fitting.surface.starts import grid, profile_surface, start_points
from flops_fit.parameters.analysis import Approach3Params, BootstrapParams

MIN_RUNS = 6  # five parameters: fewer runs cannot constrain the surface
# The solver's stopping rules (relative objective decrease per step, and steps).
LOOSE_FTOL, LOOSE_MAX_ITER = 1e-7, 200  # every start
TIGHT_FTOL, TIGHT_MAX_ITER = 1e-12, 1000  # the best `n_polish` starts
# Each bootstrap draw: 1e-9 leaves a draw's exponents within ~5e-6 of full convergence
# (measured on the Chinchilla runs, 1,000 draws), far inside any interval.
BOOTSTRAP_FTOL, BOOTSTRAP_MAX_ITER = 1e-9, 500
BOOTSTRAP_PERTURBATION = 0.15  # sd of the log-factor applied to alpha and beta of extra starts
BASIN_ABS_TOL = 1e-12  # an objective improvement below this is not another basin
# The perturbed starts are run for this many draws first (and for draws whose warm start did not
# converge); for all the others only if one of those found a better minimum. With 100 probed
# draws a basin that wins in >= 5 % of draws (surface_warnings.BASINS_WARN) is missed with
# probability 0.95^100 < 0.6 %.
BOOTSTRAP_PROBE_DRAWS = 100
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
    delta, kind = settings.huber_delta, settings.objective
    data = RunData.from_arrays(model_size, num_tokens, loss)
    n = data.log_l.size
    if n < MIN_RUNS:
        raise ParametricFitError(
            f"Approach 3 needs at least {MIN_RUNS} runs to fit five parameters, got {n}"
        )
    w = None if weights is None else np.asarray(weights, dtype=float)
    obj, theta_grid = profile_surface(
        data, grid(settings.alpha_grid), grid(settings.beta_grid), delta, kind
    )
    starts = start_points(obj, theta_grid, settings.n_starts)
    if not len(starts):
        raise ParametricFitError("no feasible start found for the parametric fit")
    # All starts to a loose tolerance, then the best few to a tight one, then L-BFGS-B.
    theta, f, iters = minimise_batched(
        starts, data, w, delta, LOOSE_FTOL, LOOSE_MAX_ITER, objective=kind
    )
    keep = np.argsort(np.where(np.isfinite(f), f, np.inf))[: max(1, settings.n_polish)]
    theta, f, iters_tight = minimise_batched(
        theta[keep], data, w, delta, TIGHT_FTOL, TIGHT_MAX_ITER, objective=kind
    )
    best_theta, best_f = _polish(theta, f, data, w, delta, settings.n_polish, kind)
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
            "objective": kind,
            "objective_description": OBJECTIVE_DESCRIPTIONS[kind],
            "scheme": "variable projection over (alpha, beta) + batched Gauss-Newton "
            "Levenberg-Marquardt + L-BFGS-B polish",
            "grid_pairs": int(obj.size),
            "starts_refined": len(starts),
            "max_iterations": int(iters.max() + iters_tight.max()),
            **({"huber_delta": delta} if kind == "huber_log" else {}),
        },
    )


def _polish(
    theta: np.ndarray,
    f: np.ndarray,
    data: RunData,
    weights,
    delta: float,
    n: int,
    objective: str = "huber_log",
):
    order = np.argsort(f)[: max(1, n)]
    best_theta, best_f = theta[order[0]].copy(), float(f[order[0]])
    for i in order:
        if not np.isfinite(f[i]):
            continue
        res = minimize(
            objective_and_gradient,
            theta[i],
            args=(data, weights, delta, None, objective),
            jac=True,
            method="L-BFGS-B",
            options=_LBFGS_OPTIONS,
        )
        cand_f = float(
            batched_objective(
                res.x[None, :],
                data,
                None if weights is None else weights[None, :],
                delta,
                objective=objective,
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
    #: the perturbed starts were run for this draw (all draws once any probed draw improved)
    extra_starts_tried: np.ndarray | None = None  # (B,) bool


def bootstrap_parametric(
    fit: ParametricFit,
    model_size: Any,
    num_tokens: Any,
    loss: Any,
    weights: np.ndarray | None = None,
    bootstrap: BootstrapParams | None = None,
    settings: Approach3Params | None = None,
    *,
    losses: np.ndarray | None = None,
) -> SurfaceDraws:
    """Refit the surface for every draw: a row of `weights` and/or of `losses`.

    `weights` (B, n) are resampling counts (a pairs bootstrap); `losses` (B, n) are per-draw
    losses that replace `loss` (a residual bootstrap: draw b is fitted to losses[b]). Either
    or both may be given (B must agree); a missing `weights` counts every run once, a missing
    `losses` fits every draw to `loss`.

    Every draw is refined from the full-data fit (warm start). `bootstrap.extra_starts`
    perturbed copies of it (alpha and beta scaled by exp(N(0, BOOTSTRAP_PERTURBATION)), log A
    and log B moved so that each term keeps its value at the median run; seeded by
    `bootstrap.seed`) are run lazily: for the first BOOTSTRAP_PROBE_DRAWS draws and for any
    draw whose warm start did not converge; only if one of them beats its warm start are they
    run for every draw. The best end point of a draw is kept.
    """
    bootstrap = bootstrap or BootstrapParams()
    settings = settings or Approach3Params()
    delta, kind = settings.huber_delta, settings.objective
    data = RunData.from_arrays(model_size, num_tokens, loss)
    weights, log_l = _draw_arrays(weights, losses, data.log_l.size)
    draws = (weights if weights is not None else log_l).shape[0]
    base = np.asarray(fit.theta, dtype=float)

    def refine(starts, rows):
        w = None if weights is None else weights[rows]
        tl = None if log_l is None else log_l[rows]
        return minimise_batched(
            starts, data, w, delta, BOOTSTRAP_FTOL, BOOTSTRAP_MAX_ITER, log_l=tl, objective=kind
        )

    pick = np.arange(draws)
    theta, f, iters = refine(np.repeat(base[None, :], draws, axis=0), pick)
    warm_f = f.copy()
    tried = np.zeros(draws, dtype=bool)
    n_extra = max(0, int(bootstrap.extra_starts))
    if n_extra and draws:
        extra = _perturbed_starts(base, data, draws, n_extra, int(bootstrap.seed))
        probe = (pick < BOOTSTRAP_PROBE_DRAWS) | ~np.isfinite(f) | (iters >= BOOTSTRAP_MAX_ITER)
        for rows in (np.flatnonzero(probe), np.flatnonzero(~probe)):
            if not rows.size:
                continue
            t_x, f_x, i_x = refine(extra[:, rows].reshape(-1, 5), np.tile(rows, n_extra))
            f_x = np.where(np.isfinite(f_x), f_x, np.inf).reshape(n_extra, rows.size)
            best = np.argmin(f_x, axis=0)
            f_best = f_x[best, np.arange(rows.size)]
            better = f_best < np.where(np.isfinite(f[rows]), f[rows], np.inf)
            theta[rows[better]] = t_x.reshape(n_extra, rows.size, 5)[best, np.arange(rows.size)][
                better
            ]
            f[rows[better]] = f_best[better]
            iters[rows] = np.maximum(iters[rows], i_x.reshape(n_extra, rows.size).max(axis=0))
            tried[rows] = True
            if not np.any(_better(f[rows], warm_f[rows])):
                break  # no probed draw has a better basin: the rest keep their warm start
    return SurfaceDraws(
        theta=theta,
        objective=f,
        iterations=iters,
        improved_by_extra_start=_better(f, warm_f),
        extra_starts_tried=tried,
    )


def _better(f: np.ndarray, warm: np.ndarray) -> np.ndarray:
    """A perturbed start found a better basin: lower by 1e-6 relative AND by more than
    BASIN_ABS_TOL (on noise-free runs both objectives are ~0 and their ratio is noise)."""
    return (f < warm * (1 - 1e-6)) & (warm - f > BASIN_ABS_TOL)


def _perturbed_starts(base, data: RunData, draws: int, n_extra: int, seed: int) -> np.ndarray:
    """(n_extra, draws, 5): start j of draw b (the same draws of the seeded generator as
    before the starts were run lazily)."""
    rng = np.random.default_rng(np.random.SeedSequence([seed, 3]))
    extra = np.repeat(base[None, :], n_extra * draws, axis=0)
    factors = np.exp(rng.normal(0.0, BOOTSTRAP_PERTURBATION, size=(len(extra), 2)))
    new_alpha, new_beta = extra[:, 3] * factors[:, 0], extra[:, 4] * factors[:, 1]
    extra[:, 0] += (new_alpha - extra[:, 3]) * np.median(data.log_n)
    extra[:, 1] += (new_beta - extra[:, 4]) * np.median(data.log_d)
    extra[:, 3], extra[:, 4] = new_alpha, new_beta
    return extra.reshape(n_extra, draws, 5)


def _draw_arrays(weights, losses, n: int) -> tuple[np.ndarray | None, np.ndarray | None]:
    """The bootstrap's (B, n) weights and target log-losses, checked; None where not given."""
    if weights is None and losses is None:
        raise ValueError("bootstrap_parametric needs weights (B, n), losses (B, n) or both")
    out = []
    for name, arr in (("weights", weights), ("losses", losses)):
        if arr is not None:
            arr = np.asarray(arr, dtype=float)
            if arr.ndim != 2 or arr.shape[1] != n:
                raise ValueError(f"{name} must have shape (draws, {n}), got {arr.shape}")
            bad = ~np.isfinite(arr) | (arr < 0 if name == "weights" else arr <= 0)
            if bad.any():
                kind = "non-negative" if name == "weights" else "positive"
                raise ValueError(f"{name} must be finite and {kind}")
        out.append(arr)
    weights, losses = out
    if weights is not None and losses is not None and len(weights) != len(losses):
        raise ValueError(
            f"weights and losses must have one row per draw each: {len(weights)} vs "
            f"{len(losses)} rows"
        )
    return weights, None if losses is None else np.log(losses)
