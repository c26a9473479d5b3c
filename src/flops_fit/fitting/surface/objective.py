"""Approach 3's objectives and their derivatives.

The surface is written as a log-sum-exp so every coefficient stays positive (Hoffmann et al.
2022; Besiroglu et al. 2024):

    log L_hat = LSE(a - alpha log N,  b - beta log D,  e),   A = e^a, B = e^b, E = e^e,

with theta = (a, b, e, alpha, beta). Two objectives (`OBJECTIVES`, `Approach3Params.objective`):

- ``"huber_log"`` (the default, the paper's): sum_i w_i Huber_delta(log L_hat_i - log L_i).
- ``"least_squares"``: sum_i w_i (L_hat_i - L_i)^2 in raw loss -- the maximum-likelihood fit
  under additive Gaussian noise, where the log-space objective is misspecified.

Both share one Gauss-Newton structure: with t_1 = A/N^alpha, t_2 = B/D^beta, t_3 = E, the
Jacobian rows of the residual are (p1, p2, p3, -p1 x, -p2 y), x = log N, y = log D, where
p_j = t_j / L_hat (the softmax weights, log space) or p_j = t_j (raw space).

Every function here takes many parameter vectors at once (theta of shape (K, 5)): the start
search, the solver and the bootstrap evaluate thousands together. `weights` (one row, or one row
per theta) are the bootstrap's resampling counts; `log_l` (one row per theta) optionally replaces
the runs' log-losses (a residual bootstrap's synthetic losses).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from flops_fit.fitting.surface.law import allocation_constants

#: theta = (a, b, e, alpha, beta) = (log A, log B, log E, alpha, beta)
OBJECTIVES = ("huber_log", "least_squares")
OBJECTIVE_DESCRIPTIONS = {
    "huber_log": "sum of Huber(delta) losses of log-loss residuals log L_hat - log L "
    "(Hoffmann et al. 2022)",
    "least_squares": "sum of squared raw-loss residuals (L_hat - L)^2 (least squares; the "
    "maximum-likelihood fit under additive Gaussian noise)",
}
# Problems per batch in the vectorised code: temporaries of CHUNK x n doubles stay below
# ~256 KB, inside malloc's reuse range (larger ones are fresh mmaps whose page faults made every
# numpy operation ~5x slower per element, measured).
_CHUNK_ELEMENTS = 32_768
# The Huber Gauss-Newton curvature of a run: 1 inside the quadratic zone |r| <= delta (the exact
# second derivative) plus this fraction of the IRLS weight delta/max(|r|, delta) everywhere,
# which keeps the matrix regular when few runs are inside the zone. (Pure IRLS, weight delta/|r| everywhere, is
# an L1-like majoriser that converges linearly: ~4x the iterations, measured on Chinchilla.)
_IRLS_FLOOR = 1e-3
_LOWER = np.tril_indices(5, -1)
# derivatives(): the products u p_i p_j and psi p_i, in this row order so that the ones summed
# against x (rows 0-3) and against y (rows 3-6) are contiguous blocks.
_ROWS = ("11", "13", "q1", "12", "22", "23", "q2", "33", "q3")


class ParametricFitError(ValueError):
    """The surface cannot be fitted to these runs (too few, non-positive values)."""


def batch_rows(n_runs: int) -> int:
    """How many parameter vectors to evaluate together on `n_runs` runs."""
    return max(8, _CHUNK_ELEMENTS // max(1, n_runs))


def check_objective(objective: str) -> str:
    if objective not in OBJECTIVES:
        raise ValueError(
            f"unknown Approach 3 objective {objective!r}: expected one of {OBJECTIVES}"
        )
    return objective


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

    @property
    def moment_rows(self) -> np.ndarray:
        """`moments` transposed, (6, n) C-contiguous: one row per moment."""
        cached = self.__dict__.get("_moment_rows")
        if cached is None:
            cached = np.ascontiguousarray(self.moments.T)
            object.__setattr__(self, "_moment_rows", cached)
        return cached

    @property
    def loss(self) -> np.ndarray:
        """The runs' losses L (raw, not logged)."""
        cached = self.__dict__.get("_loss")
        if cached is None:
            cached = np.exp(self.log_l)
            object.__setattr__(self, "_loss", cached)
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


def target(data: RunData, log_l: np.ndarray | None, objective: str) -> np.ndarray:
    """What the residuals are taken against, in the objective's space: log L or L.

    `log_l` None: the runs' own, (n,); else the given per-problem log-losses (K, n)."""
    if objective == "huber_log":
        return data.log_l if log_l is None else log_l
    return data.loss if log_l is None else np.exp(log_l)


def _predict_log(theta: np.ndarray, data: RunData) -> np.ndarray:
    t1 = theta[:, 0:1] - theta[:, 3:4] * data.log_n
    t2 = theta[:, 1:2] - theta[:, 4:5] * data.log_d
    t3 = theta[:, 2:3]
    m = np.maximum(np.maximum(t1, t2), t3)
    return m + np.log(np.exp(t1 - m) + np.exp(t2 - m) + np.exp(t3 - m))


def batched_objective(
    theta: np.ndarray,
    data: RunData,
    weights: np.ndarray | None,
    delta: float,
    log_l: np.ndarray | None = None,
    objective: str = "huber_log",
) -> np.ndarray:
    """The objective (`OBJECTIVES`) for each row of theta (K, 5); weighted when `weights` is given.

    `log_l` (K, n) replaces the runs' log-losses with one target row per theta (a residual
    bootstrap's synthetic losses); None fits every row to `data.log_l`. `delta` is the Huber
    threshold (unused by "least_squares").
    """
    theta = np.atleast_2d(np.asarray(theta, dtype=float))
    with np.errstate(over="ignore", invalid="ignore"):
        pred = _predict_log(theta, data)
        if objective != "huber_log":
            pred = np.exp(pred)
        return objective_sum(pred - target(data, log_l, objective), weights, delta, objective)


def residual_parts(
    theta: np.ndarray,
    data: RunData,
    log_l: np.ndarray | None = None,
    objective: str = "huber_log",
    *,
    target_values: np.ndarray | None = None,
):
    """The three surface terms t_j (exp of the log-sum-exp terms), their sum L_hat and the
    residuals (K, n): log L_hat - log L ("huber_log") or L_hat - L ("least_squares").

    `target_values` (the objective's `target`, already computed) takes precedence over `log_l`.
    """
    e1 = np.exp(theta[:, 0:1] - theta[:, 3:4] * data.log_n)
    e2 = np.exp(theta[:, 1:2] - theta[:, 4:5] * data.log_d)
    e3 = np.exp(theta[:, 2:3])
    s = e1 + e2
    s += e3
    tv = target(data, log_l, objective) if target_values is None else target_values
    r = np.log(s) - tv if objective == "huber_log" else s - tv
    return e1, e2, e3, s, r


def objective_sum(
    r: np.ndarray, weights: np.ndarray | None, delta: float, objective: str = "huber_log"
) -> np.ndarray:
    """Sum over runs of the (weighted) loss of residuals r (K, n): Huber or squares; inf if
    not finite."""
    if objective == "huber_log":
        c = np.clip(r, -delta, delta)
        rho = r - 0.5 * c
        rho *= c  # = Huber_delta(r)
    else:
        rho = r * r
    if weights is None:
        f = rho.sum(axis=1)
    elif np.ndim(weights) == 1:
        f = rho @ weights
    else:
        f = np.einsum("kn,kn->k", rho, weights)
    return np.where(np.isfinite(f), f, np.inf)


def derivatives(
    parts,
    data: RunData,
    weights: np.ndarray | None,
    delta: float,
    objective: str = "huber_log",
    work: np.ndarray | None = None,
):
    """Gradient (K, 5) and Gauss-Newton matrix H = J^T U J (K, 5, 5) from `residual_parts`.

    J's rows are (p1, p2, p3, -p1 x, -p2 y) (see the module docstring). "huber_log": the
    gradient weights are psi = w clip(r, -delta, delta) and U = diag(w u) with u = 1 inside the
    Huber zone |r| <= delta, plus _IRLS_FLOOR delta/max(|r|, delta) (the exact Gauss-Newton
    curvature of the Huber loss, kept regular by a small IRLS term). "least_squares":
    psi = 2 w r, U = diag(2 w). Each entry is a sum over runs of u p_i p_j (or psi p_i) times
    1, x, y, x^2, xy or y^2. `work` is an optional scratch array (9, >= K, n) to reuse.
    """
    e1, e2, e3, s, r = parts
    k, n = r.shape
    u, psi = gauss_newton_weights(r, delta, objective)
    if weights is not None:  # in place where fresh: this runs every solver step
        u = u * weights if np.ndim(u) == 0 else np.multiply(u, weights, out=u)
        psi *= weights
    if objective == "huber_log":
        inv = 1.0 / s
        p1, p2, p3 = e1 * inv, e2 * inv, e3 * inv
    else:
        p1, p2, p3 = e1, e2, np.broadcast_to(e3, r.shape)
    if work is None or work.shape[1] < k or work.shape[2] != n:
        work = np.empty((9, k, n))
    buf = work[:, :k]
    up1, up2 = u * p1, u * p2
    np.multiply(up1, p1, out=buf[0])
    np.multiply(up1, p3, out=buf[1])
    np.multiply(psi, p1, out=buf[2])
    np.multiply(up1, p2, out=buf[3])
    np.multiply(up2, p2, out=buf[4])
    np.multiply(up2, p3, out=buf[5])
    np.multiply(psi, p2, out=buf[6])
    np.multiply(u * p3, p3, out=buf[7])
    np.multiply(psi, p3, out=buf[8])
    m = data.moment_rows
    one = buf @ m[0]  # (9, k): every row against 1
    bx = buf[0:4] @ m[1]  # 11, 13, q1, 12 against x
    by = buf[3:7] @ m[2]  # 12, 22, 23, q2 against y
    s11_xx, s12_xy, s22_yy = buf[0] @ m[3], buf[3] @ m[4], buf[4] @ m[5]
    h = np.empty((k, 5, 5))
    h[:, 0, 0], h[:, 0, 1], h[:, 0, 2] = one[0], one[3], one[1]
    h[:, 0, 3], h[:, 0, 4] = -bx[0], -by[0]
    h[:, 1, 1], h[:, 1, 2], h[:, 1, 3], h[:, 1, 4] = one[4], one[5], -bx[3], -by[1]
    h[:, 2, 2], h[:, 2, 3], h[:, 2, 4] = one[7], -bx[1], -by[2]
    h[:, 3, 3], h[:, 3, 4], h[:, 4, 4] = s11_xx, s12_xy, s22_yy
    h[:, _LOWER[0], _LOWER[1]] = h[:, _LOWER[1], _LOWER[0]]
    grad = np.stack([one[2], one[6], one[8], -bx[2], -by[3]], axis=1)
    return grad, h


def gauss_newton_weights(r: np.ndarray, delta: float, objective: str):
    """Per-run curvature weights u and gradient weights psi of the objective at residuals r:
    Huber: u = 1 inside |r| <= delta plus _IRLS_FLOOR delta/max(|r|, delta), psi = clip(r);
    squares: u = 2, psi = 2 r. The gradient is J^T (w psi), the Gauss-Newton matrix
    J^T diag(w u) J."""
    if objective != "huber_log":
        return 2.0, 2.0 * r
    ar = np.abs(r)
    u = (_IRLS_FLOOR * delta) / np.maximum(ar, delta)
    u += ar <= delta
    return u, np.clip(r, -delta, delta)


def objective_gradient_hessian(
    theta: np.ndarray,
    data: RunData,
    weights: np.ndarray | None,
    delta: float,
    log_l: np.ndarray | None = None,
    objective: str = "huber_log",
):
    """Objective, gradient and Gauss-Newton matrix for each row of theta."""
    parts = residual_parts(theta, data, log_l, objective)
    f = objective_sum(parts[4], weights, delta, objective)
    grad, h = derivatives(parts, data, weights, delta, objective)
    return f, grad, h


def objective_and_gradient(
    theta: np.ndarray,
    data: RunData,
    weights: np.ndarray | None,
    delta: float,
    log_l: np.ndarray | None = None,
    objective: str = "huber_log",
) -> tuple[float, np.ndarray]:
    """For scipy: f(theta) and its analytic gradient for one parameter vector (`log_l`: an
    optional target row (n,) replacing the runs' log-losses)."""
    th = np.asarray(theta, dtype=float)[None, :]
    w = None if weights is None else np.asarray(weights, dtype=float)[None, :]
    tl = None if log_l is None else np.asarray(log_l, dtype=float)[None, :]
    with np.errstate(over="ignore", invalid="ignore", divide="ignore"):
        f, g, _ = objective_gradient_hessian(th, data, w, delta, tl, objective)
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
