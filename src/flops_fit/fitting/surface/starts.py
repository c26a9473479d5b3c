"""Approach 3's start search: variable projection over the exponents (alpha, beta).

For fixed exponents the surface L = E + A/N^alpha + B/D^beta is linear in (E, A, B). On a dense
grid of (alpha, beta) pairs, every pair's non-negative least-squares fit comes out of one matrix
product of Gram sums and a 3x3 solve per pair (the exact NNLS optimum: the best feasible
solution over all supports): of relative residuals (L_hat - L)/L (weights 1/L^2), which are
log-residuals to first order, for the Huber-on-log objective; of raw residuals L_hat - L (unit
weights) for the least-squares one, whose profile it then is exactly. Each pair is scored by the
true objective; the starts handed to the solver are the local minima of that profile, best
first, topped up with the best pairs overall. A term a pair's NNLS fit leaves out (or keeps
tiny) is handed on small but not 0, so that the solver can bring it back.
"""

from __future__ import annotations

import numpy as np

from flops_fit.fitting.surface.objective import (
    RunData,
    batch_rows,
    batched_objective,
    check_objective,
)

#: a term the NNLS start leaves out (or keeps smaller) starts at this share of the lowest loss
#: measured (at the median run), not at 0: the solver works in log-coefficients, where a term
#: near 0 has a gradient near 0 and could never come back even when the optimum needs it
DROPPED_TERM_SHARE = 0.01


def grid(spec: tuple[float, float, float]) -> np.ndarray:
    """The exponents start, start + step, ..., up to stop (inclusive)."""
    start, stop, step = spec
    return np.arange(start, stop + 0.5 * step, step)


def profile_surface(
    data: RunData,
    alphas: np.ndarray,
    betas: np.ndarray,
    delta: float,
    objective: str = "huber_log",
) -> tuple[np.ndarray, np.ndarray]:
    """For every (alpha_i, beta_j): the NNLS (E, A, B) and its objective (`objective.OBJECTIVES`).

    Returns (objective (I, J), theta (I, J, 5)). "huber_log": the NNLS of relative residuals
    (L_hat - L)/L, which equal log residuals to first order, so this inner solution is a close
    start for the Huber fit. "least_squares": the NNLS of raw residuals, the exact inner optimum.
    """
    check_objective(objective)
    alphas, betas = np.asarray(alphas, float), np.asarray(betas, float)
    loss = data.loss
    w = 1.0 / loss**2 if objective == "huber_log" else np.ones_like(loss)
    xs = np.exp(-alphas[:, None] * data.log_n[None, :])  # (I, n)
    ys = np.exp(-betas[:, None] * data.log_d[None, :])  # (J, n)
    ni, nj = len(alphas), len(betas)
    # Gram sums of the columns (1, X_i, Y_j) under weights w, and right-hand sides with L.
    s11 = np.full((ni, nj), w.sum())
    s1x = np.broadcast_to((xs @ w)[:, None], (ni, nj))
    s1y = np.broadcast_to((ys @ w)[None, :], (ni, nj))
    sxx = np.broadcast_to(((xs * xs) @ w)[:, None], (ni, nj))
    syy = np.broadcast_to(((ys * ys) @ w)[None, :], (ni, nj))
    sxy = (xs * w) @ ys.T
    wl = w * loss
    r1 = np.full((ni, nj), wl.sum())
    rx = np.broadcast_to((xs @ wl)[:, None], (ni, nj))
    ry = np.broadcast_to((ys @ wl)[None, :], (ni, nj))
    yy = float((wl * loss).sum())
    gram = np.stack(
        [
            np.stack([s11, s1x, s1y], -1),
            np.stack([s1x, sxx, sxy], -1),
            np.stack([s1y, sxy, syy], -1),
        ],
        -2,
    )  # (I, J, 3, 3) over (E, A, B)
    rhs = np.stack([r1, rx, ry], -1)  # (I, J, 3)

    best_sse = np.full((ni, nj), np.inf)
    best = np.zeros((ni, nj, 3))
    supports = [(0, 1, 2), (0, 1), (0, 2), (1, 2), (0,), (1,), (2,)]
    with np.errstate(all="ignore"):
        for support in supports:
            idx = np.array(support)
            g_s = gram[..., idx[:, None], idx[None, :]]
            r_s = rhs[..., idx]
            ridge = 1e-12 * np.einsum("...ii->...i", g_s).mean(-1)[..., None, None]
            g_s = g_s + ridge * np.eye(len(idx))
            coef = np.linalg.solve(g_s, r_s[..., None])[..., 0]
            sse = (
                yy
                - 2 * np.einsum("...i,...i->...", coef, r_s)
                + np.einsum("...i,...ij,...j->...", coef, g_s, coef)
            )
            feasible = np.all(coef > 0, axis=-1) & np.isfinite(sse)
            take = feasible & (sse < best_sse)
            full = np.zeros((ni, nj, 3))
            full[..., idx] = coef
            best_sse = np.where(take, sse, best_sse)
            best = np.where(take[..., None], full, best)
    # Each pair is scored with its exact NNLS fit (a dropped term exactly 0); the start it
    # hands on carries no term below DROPPED_TERM_SHARE.
    small = np.log(DROPPED_TERM_SHARE * float(np.min(loss)))
    lifted = np.stack(
        np.broadcast_arrays(
            np.full((ni, nj), small),
            (small + alphas * np.median(data.log_n))[:, None],
            (small + betas * np.median(data.log_d))[None, :],
        ),
        -1,
    )
    kept = best > 0
    with np.errstate(divide="ignore"):
        logc = np.log(np.where(kept, best, 1.0))
    obj = _scores(_theta(np.where(kept, logc, -np.inf), alphas, betas), data, delta, objective)
    obj[~np.isfinite(best_sse)] = np.inf
    return obj, _theta(np.where(kept, np.maximum(logc, lifted), lifted), alphas, betas)


def _theta(log_eab: np.ndarray, alphas: np.ndarray, betas: np.ndarray) -> np.ndarray:
    """(I, J, 5) theta rows from log-coefficients (I, J, 3) over (E, A, B) and the exponents."""
    theta = np.empty(log_eab.shape[:2] + (5,))
    theta[..., 0], theta[..., 1], theta[..., 2] = log_eab[..., 1], log_eab[..., 2], log_eab[..., 0]
    theta[..., 3] = alphas[:, None]
    theta[..., 4] = betas[None, :]
    return theta


def _scores(theta: np.ndarray, data: RunData, delta: float, objective: str) -> np.ndarray:
    flat = theta.reshape(-1, 5)
    chunk = batch_rows(data.log_l.size)
    return np.concatenate(
        [
            batched_objective(flat[i : i + chunk], data, None, delta, objective=objective)
            for i in range(0, len(flat), chunk)
        ]
    ).reshape(theta.shape[:2])


def local_minima(obj: np.ndarray) -> np.ndarray:
    """Flat indices of grid points no higher than their 8 neighbours, best first."""
    padded = np.pad(obj, 1, constant_values=np.inf)
    centre = padded[1:-1, 1:-1]
    is_min = np.isfinite(centre)
    for di in (-1, 0, 1):
        for dj in (-1, 0, 1):
            if di or dj:
                is_min &= (
                    centre
                    <= padded[1 + di : padded.shape[0] - 1 + di, 1 + dj : padded.shape[1] - 1 + dj]
                )
    flat = np.flatnonzero(is_min.ravel())
    return flat[np.argsort(obj.ravel()[flat])]


def start_points(obj: np.ndarray, theta_grid: np.ndarray, n_starts: int) -> np.ndarray:
    """Up to `n_starts` theta rows: the profile's local minima, best first, then the best
    remaining grid pairs. Empty when no pair has a feasible fit."""
    flat_theta = theta_grid.reshape(-1, 5)
    order = list(local_minima(obj)[:n_starts])
    for idx in np.argsort(obj.ravel()):
        if len(order) >= n_starts:
            break
        if idx not in order and np.isfinite(obj.ravel()[idx]):
            order.append(int(idx))
    return flat_theta[np.array(order, dtype=int)]
