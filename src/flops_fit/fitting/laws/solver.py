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

from flops_fit.fitting.laws.families import (
    bounds,
    centre,
    family,
    highest_log_loss,
    log_loss_and_jacobian,
    theta_to_named,
    valid,
)
from flops_fit.fitting.surface.objective import (
    batch_rows,
    check_objective,
    gauss_newton_weights,
    objective_sum,
)
from flops_fit.fitting.surface.solver import lm_loop

LOOSE_FTOL, LOOSE_MAX_ITER = 1e-6, 30  # every start of the grid
FTOL, MAX_ITER = 1e-10, 400  # the best POLISH starts, warm-started fits, the answer's draws
#: a bootstrap draw's rollout refits only score a held-out error: a looser stop serves them
ROLLOUT_FTOL, ROLLOUT_MAX_ITER = 1e-7, 20
POLISH = 3
_EXPONENTS = (0.1, 0.3, 0.6, 1.0)


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
                for k in (2.0, 16.0):
                    m = float(np.max(log_l)) + 0.5
                    log_s = -np.log(np.expm1(max(m - ml, 1e-3) / k))
                    rows.append((log_s - np.log(2) + al / k * mx, log_s - np.log(2) + be / k * my,
                                 al / k, be / k, m, np.log(k)))
            else:
                family(name)
    return np.asarray(rows, dtype=float)


def _residuals(name, theta, x, y, target, objective):
    """Residuals (K, n) in the objective's space and their Jacobian (K, n, p)."""
    f, j = log_loss_and_jacobian(name, theta, x, y)
    if objective == "huber_log":
        return f - target, j
    pred = np.exp(f)
    return pred - target, j * pred[..., None]


def _derivatives(r, j, weights, delta, objective):
    """Gradient (K, p) and Gauss-Newton matrix (K, p, p) at residuals r with Jacobian j."""
    u, psi = gauss_newton_weights(r, delta, objective)
    w = 1.0 if weights is None else weights
    grad = np.einsum("kn,knp->kp", w * psi, j)
    hess = np.matmul((np.broadcast_to(w * u, r.shape)[..., None] * j).transpose(0, 2, 1), j)
    return grad, hess


def minimise(name: str, theta0: np.ndarray, x: np.ndarray, y: np.ndarray, log_l: np.ndarray,
             *, weights: np.ndarray | None = None, delta: float = 1e-3,
             objective: str = "huber_log", ftol: float = FTOL, max_iter: int = MAX_ITER
             ) -> tuple[np.ndarray, np.ndarray]:
    """Refine the rows of theta0 (K, p); returns (theta (K, p), objective (K,)).

    `log_l` is (n,), shared, or (K, n), one target row per problem (a bootstrap draw's or a
    rollout fold's losses); `weights` (n,) or (K, n) count the runs (0 leaves a run out).
    Every family is kept inside its bounds (`families.bounds`), starts included.
    """
    check_objective(objective)
    theta0 = np.atleast_2d(np.asarray(theta0, dtype=float))
    k, n = theta0.shape[0], x.size
    log_l = np.broadcast_to(np.asarray(log_l, dtype=float), (k, n))
    target = log_l if objective == "huber_log" else np.exp(log_l)
    if weights is not None:
        weights = np.broadcast_to(np.asarray(weights, dtype=float), (k, n))
    lower, upper = bounds(name, highest_log_loss(log_l, weights))
    theta0 = np.clip(theta0, lower, upper)
    out_t, out_f = np.empty_like(theta0), np.empty(k)
    chunk = batch_rows(n)
    x0, y0 = float(np.median(x)), float(np.median(y))
    theta0 = centre(name, theta0, x0, y0)
    x, y = x - x0, y - y0
    with np.errstate(all="ignore"):
        for lo in range(0, k, chunk):
            hi = min(k, lo + chunk)
            out_t[lo:hi], out_f[lo:hi] = _lm(
                name, theta0[lo:hi].copy(), x, y, target[lo:hi],
                None if weights is None else weights[lo:hi],
                (lower[lo:hi], upper[lo:hi]), delta, objective, ftol, max_iter)
    return centre(name, out_t, x0, y0, back=True), out_f


def _lm(name, theta, x, y, target, weights, box, delta, objective, ftol, max_iter):
    r, j = _residuals(name, theta, x, y, target, objective)
    f = objective_sum(r, weights, delta, objective)
    g, h = _derivatives(r, j, weights, delta, objective)

    def evaluate(trial, rows):
        f_log, _ = log_loss_and_jacobian(name, trial, x, y, jacobian=False)
        r = f_log - target[rows] if objective == "huber_log" else np.exp(f_log) - target[rows]
        w = None if weights is None else weights[rows]
        return objective_sum(r, w, delta, objective), trial

    def derive(trial, rows, ok):
        kept = rows[ok]
        r, j = _residuals(name, trial[ok], x, y, target[kept], objective)
        return _derivatives(r, j, None if weights is None else weights[kept], delta, objective)

    def project(trial, rows):
        return np.clip(trial, box[0][rows], box[1][rows])

    lm_loop(theta, f, g, h, evaluate, derive, ftol, max_iter, 1e-300 * max(1, x.size),
            project)
    return theta, f


def fit_family(name: str, x: np.ndarray, y: np.ndarray, log_l: np.ndarray, *,
               delta: float = 1e-3, objective: str = "huber_log",
               start: np.ndarray | None = None) -> FamilyFit:
    """Family `name` fitted to runs (x = ln N, y = ln D, ln L): every start of its grid
    refined loosely, the best `POLISH` of them to convergence; or, given `start` (p,), that
    one point refined. The best valid end point, or a NaN fit when none is valid."""
    every = np.ones(x.size, dtype=bool)
    return fit_subsets(name, x, y, log_l, [every], [start], delta=delta,
                       objective=objective)[0]


def fit_subsets(name: str, x: np.ndarray, y: np.ndarray, log_l: np.ndarray,
                subsets: list[np.ndarray], starts_: list[np.ndarray | None], *,
                delta: float = 1e-3, objective: str = "huber_log") -> list[FamilyFit]:
    """Family `name` fitted to several subsets of the runs (boolean masks (n,)) as
    `fit_family` fits one: from subset i's own start grid where starts_[i] is None, else from
    that theta. Every stage is one batched solve, each problem counting its subset's runs only
    (weight 0 on the others), so fitting k subsets costs about one fit's solver steps."""
    kw = {"delta": delta, "objective": objective}
    masks = [np.asarray(m, dtype=bool) for m in subsets]
    rows, owner = [], []
    grid = [i for i, st in enumerate(starts_) if st is None]
    if grid:
        grids = [starts(name, x[masks[i]], y[masks[i]], log_l[masks[i]]) for i in grid]
        own = np.concatenate([np.full(len(g), i) for g, i in zip(grids, grid, strict=True)])
        theta, f = minimise(name, np.concatenate(grids), x, y, log_l,
                            weights=np.stack([masks[i] for i in own]),
                            ftol=LOOSE_FTOL, max_iter=LOOSE_MAX_ITER, **kw)
        ok = valid(name, theta_to_named(name, theta)) & np.isfinite(f)
        for i in grid:
            mine = np.flatnonzero(own == i)
            good = mine[ok[mine]]
            best = (good[np.argsort(f[good])] if good.size
                    else mine[np.argsort(np.where(np.isfinite(f[mine]), f[mine], np.inf))])
            rows.append(theta[best[:POLISH]])
            owner += [i] * len(best[:POLISH])
    for i, st in enumerate(starts_):
        if st is not None:
            rows.append(np.atleast_2d(np.asarray(st, dtype=float)))
            owner.append(i)
    owner_ = np.asarray(owner)
    theta, f = minimise(name, np.concatenate(rows), x, y, log_l,
                        weights=np.stack([masks[i] for i in owner_]), **kw)
    ok = valid(name, theta_to_named(name, theta)) & np.isfinite(f)
    fits = []
    for i, mask in enumerate(masks):
        mine = np.flatnonzero((owner_ == i) & ok)
        if mine.size == 0:
            fits.append(FamilyFit(name, np.full(family(name).n_params, np.nan), float("inf"),
                                  int(mask.sum())))
            continue
        best = int(mine[np.argmin(f[mine])])
        fits.append(FamilyFit(name, theta[best], float(f[best]), int(mask.sum())))
    return fits
