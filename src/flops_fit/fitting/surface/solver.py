"""A batched Levenberg-Marquardt solver for Approach 3's objectives (`fitting.surface.objective`).

All K problems (starting points, or bootstrap draws with their own weights or losses) are
refined at once: each step solves (H + lambda diag H) step = -g with H the Gauss-Newton matrix
(for the Huber objective: exact curvature inside the Huber zone, a small IRLS floor outside;
see `objective.derivatives`), and is kept only when the true objective does not increase, so
the objective never goes up. Problems leave the batch as they converge.
"""

from __future__ import annotations

import numpy as np

from flops_fit.fitting.surface.objective import (
    RunData,
    batch_rows,
    check_objective,
    derivatives,
    objective_sum,
    residual_parts,
    target,
)

_LAMBDA0, _LAMBDA_DOWN, _LAMBDA_UP = 1e-3, 10.0, 10.0  # damping: start, after a kept/lost step


def minimise_batched(
    theta0: np.ndarray,
    data: RunData,
    weights: np.ndarray | None,
    delta: float,
    ftol: float,
    max_iter: int,
    *,
    log_l: np.ndarray | None = None,
    objective: str = "huber_log",
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Refine K starting points at once; returns (theta (K,5), objective (K,), iterations (K,)).

    `weights` is None, one row (n,) shared by all problems, or one row per problem (K, n) -- the
    bootstrap's resampling counts. `log_l` is None (every problem fits the runs' log-losses
    `data.log_l`), one row (n,) shared by all problems, or one row per problem (K, n) -- a
    residual bootstrap's synthetic log-losses. `objective` is one of `objective.OBJECTIVES`
    (`delta`, the Huber threshold, is unused by "least_squares"). A problem stops when a step
    lowers its objective by less than `ftol` (relative), or after `max_iter` steps.
    """
    check_objective(objective)
    theta0 = np.atleast_2d(np.asarray(theta0, dtype=float))
    k, n = len(theta0), data.log_l.size
    weights = _per_problem(weights, k, n, "weights")
    log_l = _per_problem(log_l, k, n, "log_l")
    out_t, out_f, out_i = np.empty_like(theta0), np.empty(k), np.empty(k, dtype=int)
    chunk = batch_rows(n)
    for lo in range(0, k, chunk):
        hi = min(k, lo + chunk)
        w = None if weights is None else np.ascontiguousarray(weights[lo:hi])
        with np.errstate(over="ignore", invalid="ignore", divide="ignore", under="ignore"):
            tv = target(data, None if log_l is None else log_l[lo:hi], objective)
            t, f, it = _lm_chunk(
                theta0[lo:hi].copy(), data, w, delta, ftol, max_iter, np.asarray(tv), objective
            )
        out_t[lo:hi], out_f[lo:hi], out_i[lo:hi] = t, f, it
    return out_t, out_f, out_i


def _per_problem(arr, k: int, n: int, name: str) -> np.ndarray | None:
    """None, or `arr` as (k, n): a single row (n,) is shared by every problem."""
    if arr is None:
        return None
    arr = np.asarray(arr, dtype=float)
    if arr.ndim == 1:
        arr = np.broadcast_to(arr, (k, arr.size))
    if arr.shape != (k, n):
        raise ValueError(f"{name} must have shape ({n},) or ({k}, {n}), got {arr.shape}")
    return arr


def damped_step(h: np.ndarray, g: np.ndarray, lam: np.ndarray) -> np.ndarray:
    """The Levenberg-Marquardt steps (K, p): solve (H + lambda diag H) step = -g per problem
    (least squares where a system is singular)."""
    diag = np.einsum("kii->ki", h)
    scale = diag + 1e-9 * diag.mean(axis=1, keepdims=True) + 1e-300
    system = h + (lam[:, None] * scale)[:, :, None] * np.eye(h.shape[-1])
    try:
        return -np.linalg.solve(system, g[:, :, None])[:, :, 0]
    except np.linalg.LinAlgError:
        return -np.stack([np.linalg.lstsq(a_, b_, rcond=None)[0]
                          for a_, b_ in zip(system, g, strict=True)])


def lm_loop(theta, f, g, h, evaluate, derive, ftol: float, max_iter: int, floor: float,
            project=None):
    """The Levenberg-Marquardt iteration shared by every surface solver, on K problems at once.

    `theta` (K, p), `f` (K,), `g` (K, p), `h` (K, p, p) at the start are updated in place.
    `evaluate(trial, rows)` gives the objective (len(rows),) at trial points of problems `rows`
    and whatever `derive(parts, rows, ok)` needs to give the gradient and Gauss-Newton matrix of
    the accepted ones (`rows[ok]`), so derivatives are only computed where a step was kept. A
    problem stops when a kept step lowers its objective by less than `ftol` (relative) or to
    `floor`, when its damping exceeds 1e10, or after `max_iter` steps. `project(trial, rows)`,
    when given, maps trial points into the problems' domain before they are evaluated (a
    projected step: a law whose best fit lies on a bound stops there instead of crawling
    along a valley that never ends). Returns iterations (K,).
    """
    k = len(theta)
    lam = np.full(k, _LAMBDA0)
    bad = ~np.isfinite(f) | ~np.all(np.isfinite(g), axis=1)
    f[bad] = np.inf
    iterations = np.zeros(k, dtype=int)
    active = np.flatnonzero(~bad)
    for _ in range(max_iter):
        if active.size == 0:
            break
        step = damped_step(h[active], g[active], lam[active])
        trial = theta[active] + step
        if project is not None:
            trial = project(trial, active)
        f_trial, parts = evaluate(trial, active)
        f_act = f[active]
        ok = np.isfinite(f_trial) & (f_trial <= f_act) & np.all(np.isfinite(step), axis=1)
        rel = (f_act - f_trial) / np.maximum(f_act, floor)
        accepted = active[ok]
        if accepted.size:
            theta[accepted] = trial[ok]
            f[accepted] = f_trial[ok]
            g[accepted], h[accepted] = derive(parts, active, ok)
            lam[accepted] = np.maximum(lam[accepted] / _LAMBDA_DOWN, 1e-12)
        lam[active[~ok]] *= _LAMBDA_UP
        iterations[active] += 1
        converged = ok & ((rel < ftol) | (f_trial <= floor))
        stuck = lam[active] > 1e10
        active = active[~(converged | stuck)]
    return iterations


def _lm_chunk(theta, data, weights, delta, ftol, max_iter, tv, objective):
    """One batch: `tv` is the target in the objective's space, (n,) shared or (k, n)."""
    per_problem_target = tv.ndim == 2
    parts = residual_parts(theta, data, objective=objective, target_values=tv)
    f = objective_sum(parts[4], weights, delta, objective)
    work = np.empty((9, len(theta), data.log_l.size))  # derivatives' scratch, reused every step
    g, h = derivatives(parts, data, weights, delta, objective, work)

    def evaluate(trial, rows):
        w = None if weights is None else weights[rows]
        parts = residual_parts(trial, data, objective=objective,
                               target_values=tv[rows] if per_problem_target else tv)
        return objective_sum(parts[4], w, delta, objective), parts

    def derive(parts, rows, ok):
        w = None if weights is None else weights[rows[ok]]
        kept = parts if ok.all() else tuple(p[ok] for p in parts)
        return derivatives(kept, data, w, delta, objective, work)

    floor = 1e-300 * max(1, data.log_l.size)
    iterations = lm_loop(theta, f, g, h, evaluate, derive, ftol, max_iter, floor)
    return theta, f, iterations
