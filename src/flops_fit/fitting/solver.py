"""A batched Levenberg-Marquardt solver for Approach 3's Huber objective (`fitting.objective`).

All K problems (starting points, or bootstrap draws with their own weights) are refined at
once: each step solves (H + lambda diag H) step = -g with H the IRLS Gauss-Newton matrix of the
Huber loss (weights min(1, delta/|r|)), and is kept only when the true objective does not
increase, so the objective never goes up. Problems leave the batch as they converge.
"""

from __future__ import annotations

import numpy as np

from flops_fit.fitting.objective import (
    RunData,
    batch_rows,
    derivatives,
    objective_gradient_hessian,
    residual_parts,
    weighted_huber_sum,
)


def minimise_batched(
    theta0: np.ndarray,
    data: RunData,
    weights: np.ndarray | None,
    delta: float,
    ftol: float,
    max_iter: int,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Refine K starting points at once; returns (theta (K,5), objective (K,), iterations (K,)).

    `weights` is None, one row (n,) shared by all problems, or one row per problem (K, n) -- the
    bootstrap's resampling counts. A problem stops when a step lowers its objective by less
    than `ftol` (relative), or after `max_iter` steps.
    """
    theta0 = np.atleast_2d(np.asarray(theta0, dtype=float))
    k = len(theta0)
    if weights is not None:
        weights = np.asarray(weights, dtype=float)
        if weights.ndim == 1:
            weights = np.broadcast_to(weights, (k, weights.size))
    out_t, out_f, out_i = np.empty_like(theta0), np.empty(k), np.empty(k, dtype=int)
    chunk = batch_rows(data.log_l.size)
    for lo in range(0, k, chunk):
        hi = min(k, lo + chunk)
        w = None if weights is None else np.ascontiguousarray(weights[lo:hi])
        with np.errstate(over="ignore", invalid="ignore", divide="ignore", under="ignore"):
            t, f, it = _lm_chunk(theta0[lo:hi].copy(), data, w, delta, ftol, max_iter)
        out_t[lo:hi], out_f[lo:hi], out_i[lo:hi] = t, f, it
    return out_t, out_f, out_i


def _lm_chunk(theta, data, weights, delta, ftol, max_iter):
    k = len(theta)
    lam = np.full(k, 1e-3)
    f, g, h = objective_gradient_hessian(theta, data, weights, delta)
    bad = ~np.isfinite(f) | ~np.all(np.isfinite(g), axis=1)
    f[bad] = np.inf
    iterations = np.zeros(k, dtype=int)
    active = np.flatnonzero(~bad)
    eye = np.eye(5)
    floor = 1e-300 * max(1, data.log_l.size)
    for _ in range(max_iter):
        if active.size == 0:
            break
        hs = h[active]
        diag = np.einsum("kii->ki", hs)
        scale = diag + 1e-9 * diag.mean(axis=1, keepdims=True) + 1e-300
        system = hs + (lam[active, None] * scale)[:, :, None] * eye
        try:
            step = -np.linalg.solve(system, g[active][:, :, None])[:, :, 0]
        except np.linalg.LinAlgError:
            step = -np.stack(
                [
                    np.linalg.lstsq(a_, b_, rcond=None)[0]
                    for a_, b_ in zip(system, g[active], strict=True)
                ]
            )
        trial = theta[active] + step
        w_act = None if weights is None else weights[active]
        parts = residual_parts(trial, data)
        f_trial = weighted_huber_sum(parts[4], w_act, delta)
        ok = np.isfinite(f_trial) & (f_trial <= f[active]) & np.all(np.isfinite(step), axis=1)
        rel = (f[active] - f_trial) / np.maximum(f[active], floor)
        accepted = active[ok]
        if accepted.size:
            theta[accepted] = trial[ok]
            f[accepted] = f_trial[ok]
            w_acc = None if w_act is None else w_act[ok]
            g[accepted], h[accepted] = derivatives(tuple(p[ok] for p in parts), data, w_acc, delta)
            lam[accepted] = np.maximum(lam[accepted] / 3.0, 1e-12)
        lam[active[~ok]] *= 10.0
        iterations[active] += 1
        converged = ok & ((rel < ftol) | (f[active] <= floor))
        stuck = lam[active] > 1e10
        active = active[~(converged | stuck)]
    return theta, f, iterations
