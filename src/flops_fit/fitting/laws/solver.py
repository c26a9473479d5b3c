"""Fitting any law family (`laws.families`) on the objectives and solver scheme of Approach 3.

The objective is Approach 3's (`Approach3Params.objective`): the sum of Huber(delta) log-loss
residuals, or of squared raw-loss residuals. The solver is the same batched
Levenberg-Marquardt as Chinchilla's (`surface.solver`), written for any number of parameters
with the family's analytic Jacobian: for the Huber loss, the exact Gauss-Newton curvature inside
the Huber zone plus a small IRLS floor outside; each step kept only when the objective does not
increase. Many problems (starts, rollout folds, bootstrap draws) are refined together.

Starts are a fixed grid per family (`starts`): exponents spread over 0.1-1.2 with the
coefficients chosen so that every term carries a share of the median run's loss.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from flops_fit.fitting.laws.families import family, log_loss_and_jacobian, theta_to_named, valid
from flops_fit.fitting.surface.objective import IRLS_FLOOR, batch_rows, check_objective
from flops_fit.fitting.surface.solver import LAMBDA0, LAMBDA_DOWN, LAMBDA_UP, damped_step

FTOL, MAX_ITER = 1e-10, 400  # a fit from its starts, and every bootstrap refit
_EXPONENTS = (0.1, 0.25, 0.5, 0.8, 1.2)


@dataclass(frozen=True)
class FamilyFit:
    """One family fitted to runs: theta, its named parameters, the objective it reached."""

    law: str
    theta: np.ndarray  # (p,)
    objective: float
    n_runs: int

    @property
    def params(self) -> dict[str, float]:
        return {k: float(v[0]) for k, v in theta_to_named(self.law, self.theta).items()}

    @property
    def ok(self) -> bool:
        named = theta_to_named(self.law, self.theta)
        return bool(np.isfinite(self.objective) and valid(self.law, named)[0])


def starts(name: str, x: np.ndarray, y: np.ndarray, log_l: np.ndarray) -> np.ndarray:
    """The start grid (S, p) of family `name` for runs at x = ln N, y = ln D with ln L."""
    mx, my, ml = float(np.median(x)), float(np.median(y)), float(np.median(log_l))
    floor = float(np.min(log_l)) - 1.0
    rows = []
    for al in _EXPONENTS:
        for be in _EXPONENTS:
            a, b = ml + al * mx - np.log(3), ml + be * my - np.log(3)
            if name == "chinchilla":
                rows.append((a, b, floor, al, be))
            elif name == "interaction":
                rows.append((a, b, floor, ml + al * mx + be * my - np.log(6), al, be))
            elif name == "kaplan":  # be plays q, the outer exponent
                q = be
                rows.append((ml / q + al * mx - np.log(2), ml / q + my - np.log(2), al, q))
            elif name == "saturating":
                for k in (1.0, 4.0, 16.0):
                    m = float(np.max(log_l)) + 0.5
                    log_s = -np.log(np.expm1(max(m - ml, 1e-3) / k))
                    rows.append((log_s - np.log(2) + al / k * mx, log_s - np.log(2) + be / k * my,
                                 al / k, be / k, m, k))
            else:
                family(name)
    return np.asarray(rows, dtype=float)


def _parts(name, theta, x, y, target, weights, delta, objective, jac=True):
    """Objective (K,), and when `jac`: gradient (K, p) and Gauss-Newton matrix (K, p, p)."""
    f, j = log_loss_and_jacobian(name, theta, x, y, jacobian=jac)
    if objective == "huber_log":
        r = f - target
    else:
        pred = np.exp(f)
        r = pred - target
        if jac:
            j = j * pred[..., None]
    if objective == "huber_log":
        c = np.clip(r, -delta, delta)
        rho = (r - 0.5 * c) * c
    else:
        rho = r * r
    w = 1.0 if weights is None else weights
    obj = np.sum(w * rho, axis=1)
    obj = np.where(np.isfinite(obj), obj, np.inf)
    if not jac:
        return obj, None, None
    if objective == "huber_log":
        ar = np.abs(r)
        u = (IRLS_FLOOR * delta) / np.maximum(ar, delta) + (ar <= delta)
        psi = np.clip(r, -delta, delta)
    else:
        u, psi = 2.0 * np.ones_like(r), 2.0 * r
    grad = np.einsum("kn,knp->kp", w * psi, j)
    hess = np.einsum("kn,knp,knq->kpq", w * u, j, j)
    return obj, grad, hess


def minimise(name: str, theta0: np.ndarray, x: np.ndarray, y: np.ndarray, log_l: np.ndarray,
             *, weights: np.ndarray | None = None, delta: float = 1e-3,
             objective: str = "huber_log", ftol: float = FTOL, max_iter: int = MAX_ITER
             ) -> tuple[np.ndarray, np.ndarray]:
    """Refine the rows of theta0 (K, p); returns (theta (K, p), objective (K,)).

    `log_l` is (n,), shared, or (K, n), one target row per problem (a bootstrap draw's or a
    rollout fold's losses); `weights` (n,) or (K, n) count the runs (0 leaves a run out).
    """
    check_objective(objective)
    theta0 = np.atleast_2d(np.asarray(theta0, dtype=float))
    k, n = theta0.shape[0], x.size
    log_l = np.broadcast_to(np.asarray(log_l, dtype=float), (k, n))
    target = log_l if objective == "huber_log" else np.exp(log_l)
    if weights is not None:
        weights = np.broadcast_to(np.asarray(weights, dtype=float), (k, n))
    out_t, out_f = np.empty_like(theta0), np.empty(k)
    chunk = batch_rows(n)
    with np.errstate(all="ignore"):
        for lo in range(0, k, chunk):
            hi = min(k, lo + chunk)
            out_t[lo:hi], out_f[lo:hi] = _lm(
                name, theta0[lo:hi].copy(), x, y, target[lo:hi],
                None if weights is None else weights[lo:hi], delta, objective, ftol, max_iter)
    return out_t, out_f


def _lm(name, theta, x, y, target, weights, delta, objective, ftol, max_iter):
    k = theta.shape[0]
    lam = np.full(k, LAMBDA0)
    f, g, h = _parts(name, theta, x, y, target, weights, delta, objective)
    bad = ~np.isfinite(f) | ~np.all(np.isfinite(g), axis=1)
    f[bad] = np.inf
    active = np.flatnonzero(~bad)
    floor = 1e-300 * max(1, x.size)
    for _ in range(max_iter):
        if active.size == 0:
            break
        step = damped_step(h[active], g[active], lam[active])
        trial = theta[active] + step
        w_act = None if weights is None else weights[active]
        f_trial, g_trial, h_trial = _parts(name, trial, x, y, target[active], w_act, delta,
                                           objective)
        f_act = f[active]
        ok = np.isfinite(f_trial) & (f_trial <= f_act) & np.all(np.isfinite(step), axis=1)
        ok &= np.all(np.isfinite(g_trial), axis=1)
        rel = (f_act - f_trial) / np.maximum(f_act, floor)
        acc = active[ok]
        theta[acc], f[acc], g[acc], h[acc] = trial[ok], f_trial[ok], g_trial[ok], h_trial[ok]
        lam[acc] = np.maximum(lam[acc] / LAMBDA_DOWN, 1e-12)
        lam[active[~ok]] *= LAMBDA_UP
        converged = ok & ((rel < ftol) | (f_trial <= floor))
        stuck = lam[active] > 1e10
        active = active[~(converged | stuck)]
    return theta, f


def fit_family(name: str, x: np.ndarray, y: np.ndarray, log_l: np.ndarray, *,
               delta: float = 1e-3, objective: str = "huber_log") -> FamilyFit:
    """Family `name` fitted to runs (x = ln N, y = ln D, ln L) from its start grid: the
    best valid end point (a NaN fit when none is valid)."""
    theta, f = minimise(name, starts(name, x, y, log_l), x, y, log_l, delta=delta,
                        objective=objective)
    ok = valid(name, theta_to_named(name, theta)) & np.isfinite(f)
    if not ok.any():
        return FamilyFit(name, np.full(family(name).n_params, np.nan), float("inf"), x.size)
    best = int(np.flatnonzero(ok)[np.argmin(f[ok])])
    return FamilyFit(name, theta[best], float(f[best]), x.size)
