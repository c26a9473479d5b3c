"""Approach 3's objective: the summed Huber loss of log-loss residuals, and its derivatives.

The surface is written as a log-sum-exp so every coefficient stays positive (Hoffmann et al.
2022; Besiroglu et al. 2024):

    log L_hat = LSE(a - alpha log N,  b - beta log D,  e),   A = e^a, B = e^b, E = e^e,

with theta = (a, b, e, alpha, beta). Every function here takes many parameter vectors at once
(theta of shape (K, 5)): the start search, the solver and the bootstrap evaluate thousands
together. `weights` (one row, or one row per theta) are the bootstrap's resampling counts.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from flops_fit.fitting.surface import allocation_constants

#: theta = (a, b, e, alpha, beta) = (log A, log B, log E, alpha, beta)
THETA_NAMES = ("log_A", "log_B", "log_E", "alpha", "beta")
# Problems per batch in the vectorised code: temporaries of CHUNK x n doubles stay below
# ~256 KB, inside malloc's reuse range (larger ones are fresh mmaps whose page faults made every
# numpy operation ~5x slower per element, measured).
_CHUNK_ELEMENTS = 32_768
_LOWER = np.tril_indices(5, -1)


class ParametricFitError(ValueError):
    """The surface cannot be fitted to these runs (too few, non-positive values)."""


def batch_rows(n_runs: int) -> int:
    """How many parameter vectors to evaluate together on `n_runs` runs."""
    return max(8, _CHUNK_ELEMENTS // max(1, n_runs))


@dataclass(frozen=True)
class RunData:
    """The runs Approach 3 is fitted to, in logs: x = log N, y = log D, log L."""

    log_n: np.ndarray
    log_d: np.ndarray
    log_l: np.ndarray

    @property
    def moments(self) -> np.ndarray:
        """(n, 6) columns 1, x, y, x^2, xy, y^2 with x = log N, y = log D."""
        cached = self.__dict__.get("_moments")
        if cached is None:
            x, y = self.log_n, self.log_d
            cached = np.stack([np.ones_like(x), x, y, x * x, x * y, y * y], axis=1)
            object.__setattr__(self, "_moments", cached)
        return cached

    @classmethod
    def from_arrays(cls, model_size: Any, num_tokens: Any, loss: Any) -> RunData:
        n, d, l_ = (np.asarray(x, dtype=float).ravel() for x in (model_size, num_tokens, loss))
        if not (n.shape == d.shape == l_.shape):
            raise ParametricFitError("model_size, num_tokens and loss must have the same length")
        for name, arr in (("model_size", n), ("num_tokens", d), ("loss", l_)):
            if not np.all(np.isfinite(arr) & (arr > 0)):
                raise ParametricFitError(f"{name} must be finite and positive for every run")
        return cls(np.log(n), np.log(d), np.log(l_))


def huber(r: np.ndarray, delta: float) -> np.ndarray:
    ar = np.abs(r)
    return np.where(ar <= delta, 0.5 * r * r, delta * (ar - 0.5 * delta))


def _predict_log(theta: np.ndarray, data: RunData) -> np.ndarray:
    t1 = theta[:, 0:1] - theta[:, 3:4] * data.log_n
    t2 = theta[:, 1:2] - theta[:, 4:5] * data.log_d
    t3 = theta[:, 2:3]
    m = np.maximum(np.maximum(t1, t2), t3)
    return m + np.log(np.exp(t1 - m) + np.exp(t2 - m) + np.exp(t3 - m))


def batched_objective(
    theta: np.ndarray, data: RunData, weights: np.ndarray | None, delta: float
) -> np.ndarray:
    """Sum of (weighted) Huber residuals of log-loss for each row of theta (K, 5)."""
    theta = np.atleast_2d(np.asarray(theta, dtype=float))
    with np.errstate(over="ignore", invalid="ignore"):
        rho = huber(_predict_log(theta, data) - data.log_l, delta)
    if weights is not None:
        rho = rho * weights
    f = rho.sum(axis=1)
    return np.where(np.isfinite(f), f, np.inf)


def residual_parts(theta: np.ndarray, data: RunData):
    """exp of the three log-sum-exp terms, their sum and the log-loss residuals (K, n)."""
    e1 = np.exp(theta[:, 0:1] - theta[:, 3:4] * data.log_n)
    e2 = np.exp(theta[:, 1:2] - theta[:, 4:5] * data.log_d)
    e3 = np.exp(theta[:, 2:3])
    s = e1 + e2 + e3
    return e1, e2, e3, s, np.log(s) - data.log_l


def weighted_huber_sum(r: np.ndarray, weights: np.ndarray | None, delta: float) -> np.ndarray:
    rho = huber(r, delta)
    if weights is not None:
        rho = rho * weights
    f = rho.sum(axis=1)
    return np.where(np.isfinite(f), f, np.inf)


def derivatives(parts, data: RunData, weights: np.ndarray | None, delta: float):
    """Gradient and IRLS Gauss-Newton matrix H = J^T U J from `residual_parts`.

    With p_i the softmax weights of the three terms, x = log N and y = log D, the Jacobian rows
    are (p1, p2, p3, -p1 x, -p2 y) and U = diag(w min(1, delta/|r|)), the IRLS weights of the
    Huber loss; each entry of H is a sum over runs of u p_i p_j times 1, x, y, x^2, xy or y^2.
    """
    e1, e2, e3, s, r = parts
    u = np.minimum(1.0, delta / np.maximum(np.abs(r), 1e-300))
    psi = u * r  # = clip(r, -delta, delta)
    if weights is not None:
        u *= weights
        psi *= weights
    inv = 1.0 / s
    p1, p2, p3 = e1 * inv, e2 * inv, e3 * inv
    x, y = data.log_n, data.log_d
    xx, xy, yy = data.moments[:, 3], data.moments[:, 4], data.moments[:, 5]
    up1, up2, up3 = u * p1, u * p2, u * p3
    s11, s12, s13 = up1 * p1, up1 * p2, up1 * p3
    s22, s23, s33 = up2 * p2, up2 * p3, up3 * p3
    h = np.empty((r.shape[0], 5, 5))
    h[:, 0, 0], h[:, 0, 3], h[:, 3, 3] = s11.sum(1), -(s11 @ x), s11 @ xx
    h[:, 0, 1], h[:, 0, 4], h[:, 1, 3], h[:, 3, 4] = s12.sum(1), -(s12 @ y), -(s12 @ x), s12 @ xy
    h[:, 0, 2], h[:, 2, 3] = s13.sum(1), -(s13 @ x)
    h[:, 1, 1], h[:, 1, 4], h[:, 4, 4] = s22.sum(1), -(s22 @ y), s22 @ yy
    h[:, 1, 2], h[:, 2, 4] = s23.sum(1), -(s23 @ y)
    h[:, 2, 2] = s33.sum(1)
    h[:, _LOWER[0], _LOWER[1]] = h[:, _LOWER[1], _LOWER[0]]
    q1, q2 = psi * p1, psi * p2
    grad = np.stack([q1.sum(1), q2.sum(1), (psi * p3).sum(1), -(q1 @ x), -(q2 @ y)], axis=1)
    return grad, h


def objective_gradient_hessian(
    theta: np.ndarray, data: RunData, weights: np.ndarray | None, delta: float
):
    """Objective, gradient and IRLS Gauss-Newton matrix for each row of theta."""
    parts = residual_parts(theta, data)
    f = weighted_huber_sum(parts[4], weights, delta)
    grad, h = derivatives(parts, data, weights, delta)
    return f, grad, h


def objective_and_gradient(
    theta: np.ndarray, data: RunData, weights: np.ndarray | None, delta: float
) -> tuple[float, np.ndarray]:
    """For scipy: f(theta) and its analytic gradient for one parameter vector."""
    th = np.asarray(theta, dtype=float)[None, :]
    w = None if weights is None else np.asarray(weights, dtype=float)[None, :]
    with np.errstate(over="ignore", invalid="ignore", divide="ignore"):
        f, g, _ = objective_gradient_hessian(th, data, w, delta)
    if not np.isfinite(f[0]) or not np.all(np.isfinite(g)):
        return float("inf"), np.zeros(5)
    return float(f[0]), g[0]


def theta_to_params(theta: np.ndarray) -> dict[str, np.ndarray]:
    """Columns of theta (B, 5) as named arrays E, A, B, alpha, beta, a, b, G (each (B,))."""
    theta = np.atleast_2d(np.asarray(theta, dtype=float))
    with np.errstate(over="ignore", invalid="ignore", divide="ignore"):
        params = {
            "E": np.exp(theta[:, 2]),
            "A": np.exp(theta[:, 0]),
            "B": np.exp(theta[:, 1]),
            "alpha": theta[:, 3],
            "beta": theta[:, 4],
        }
    return {**params, **allocation_constants(params)}
