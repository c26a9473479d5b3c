"""The paper's recipe for Approach 3, plainly: L-BFGS-B from every point of a 4,500-start grid.

Hoffmann et al. (2022, appendix D.2) and Besiroglu et al. (2024): alpha, beta in {0, 0.5, ..., 2},
e in {-1, -0.5, ..., 1}, a, b in {0, 5, ..., 25}; scipy's L-BFGS-B with its default settings
and, as in Epoch AI's notebook, finite-difference gradients (`analytic_gradient=False`); the
lowest summed Huber objective wins. It is slow (minutes), so it lives here for the benchmark and
the slow tests that check `fitting.surface.fit.fit_parametric` reaches an objective at least as
low. It is never used by the pipeline.

It also keeps a frozen copy of Approach 3's bootstrap as it was before its warm-started rewrite
(`bootstrap_parametric_reference`: IRLS Levenberg-Marquardt, three starts for every draw), which
benchmarks/bench_parametric_fit.py times `fitting.surface.fit.bootstrap_parametric` against and
whose intervals it compares.
"""

from __future__ import annotations

import itertools
import time
from typing import Any

import numpy as np
from scipy.optimize import minimize

from flops_fit.fitting.surface.fit import ParametricFit
from flops_fit.fitting.surface.objective import RunData, batched_objective, objective_and_gradient
from flops_fit.parameters.analysis import Approach3Params

REFERENCE_GRID = {
    "alpha": np.arange(0.0, 2.5, 0.5),
    "beta": np.arange(0.0, 2.5, 0.5),
    "e": np.arange(-1.0, 1.5, 0.5),
    "a": np.arange(0.0, 30.0, 5.0),
    "b": np.arange(0.0, 30.0, 5.0),
}


def reference_starts() -> np.ndarray:
    """The 4,500 starting points as theta rows (a, b, e, alpha, beta)."""
    g = REFERENCE_GRID
    return np.array(
        [
            (a, b, e, al, be)
            for al, be, e, a, b in itertools.product(g["alpha"], g["beta"], g["e"], g["a"], g["b"])
        ],
        dtype=float,
    )


def fit_parametric_reference(
    model_size: Any,
    num_tokens: Any,
    loss: Any,
    *,
    analytic_gradient: bool = False,
    every: int = 1,
    delta: float | None = None,
) -> tuple[ParametricFit, dict[str, Any]]:
    """Best of L-BFGS-B runs from the grid starts (every `every`-th start when > 1).

    `delta` defaults to `analysis.approach_3.huber_delta`'s default (the paper's 1e-3).
    Returns the fit and a report: starts run, seconds, the objectives of all starts.
    """
    delta = Approach3Params().huber_delta if delta is None else delta
    data = RunData.from_arrays(model_size, num_tokens, loss)
    starts = reference_starts()[::every]

    def plain(theta):
        return float(batched_objective(theta[None, :], data, None, delta)[0])

    t0 = time.perf_counter()
    objectives = np.empty(len(starts))
    best_x, best_f = None, np.inf
    with np.errstate(all="ignore"):
        for i, x0 in enumerate(starts):
            if analytic_gradient:
                res = minimize(
                    objective_and_gradient,
                    x0,
                    args=(data, None, delta),
                    jac=True,
                    method="L-BFGS-B",
                )
            else:
                res = minimize(plain, x0, method="L-BFGS-B")
            objectives[i] = res.fun
            if np.isfinite(res.fun) and res.fun < best_f:
                best_x, best_f = res.x, float(res.fun)
    seconds = time.perf_counter() - t0
    a_, b_, e_, alpha, beta = best_x
    fit = ParametricFit(
        E=float(np.exp(e_)),
        A=float(np.exp(a_)),
        B=float(np.exp(b_)),
        alpha=float(alpha),
        beta=float(beta),
        objective=best_f,
        n_runs=int(data.log_l.size),
        theta=[float(x) for x in best_x],
        method={
            "scheme": "reference grid + L-BFGS-B",
            "starts": len(starts),
            "analytic_gradient": analytic_gradient,
        },
    )
    return fit, {"starts": len(starts), "seconds": seconds, "objectives": objectives}


# --- The bootstrap before its warm-started rewrite, frozen (benchmarks/bench_parametric_fit.py
# times `fitting.surface.fit.bootstrap_parametric` against it and compares the intervals). It is a
# self-contained copy: IRLS Levenberg-Marquardt on the Huber objective, 3 starts for every draw.

_REF_FTOL, _REF_MAX_ITER, _REF_PERTURBATION = 1e-9, 500, 0.15
_REF_LOWER = np.tril_indices(5, -1)


def _ref_parts(theta, data):
    e1 = np.exp(theta[:, 0:1] - theta[:, 3:4] * data.log_n)
    e2 = np.exp(theta[:, 1:2] - theta[:, 4:5] * data.log_d)
    e3 = np.exp(theta[:, 2:3])
    s = e1 + e2 + e3
    return e1, e2, e3, s, np.log(s) - data.log_l


def _ref_huber_sum(r, weights, delta):
    ar = np.abs(r)
    rho = np.where(ar <= delta, 0.5 * r * r, delta * (ar - 0.5 * delta))
    if weights is not None:
        rho = rho * weights
    f = rho.sum(axis=1)
    return np.where(np.isfinite(f), f, np.inf)


def _ref_derivatives(parts, data, weights, delta):
    e1, e2, e3, s, r = parts
    u = np.minimum(1.0, delta / np.maximum(np.abs(r), 1e-300))
    psi = u * r
    if weights is not None:
        u *= weights
        psi *= weights
    inv = 1.0 / s
    p1, p2, p3 = e1 * inv, e2 * inv, e3 * inv
    x, y = data.log_n, data.log_d
    xx, xy, yy = x * x, x * y, y * y
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
    h[:, _REF_LOWER[0], _REF_LOWER[1]] = h[:, _REF_LOWER[1], _REF_LOWER[0]]
    q1, q2 = psi * p1, psi * p2
    grad = np.stack([q1.sum(1), q2.sum(1), (psi * p3).sum(1), -(q1 @ x), -(q2 @ y)], axis=1)
    return grad, h


def _ref_lm_chunk(theta, data, weights, delta, ftol, max_iter):
    k = len(theta)
    lam = np.full(k, 1e-3)
    parts = _ref_parts(theta, data)
    f = _ref_huber_sum(parts[4], weights, delta)
    g, h = _ref_derivatives(parts, data, weights, delta)
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
        parts = _ref_parts(trial, data)
        f_trial = _ref_huber_sum(parts[4], w_act, delta)
        ok = np.isfinite(f_trial) & (f_trial <= f[active]) & np.all(np.isfinite(step), axis=1)
        rel = (f[active] - f_trial) / np.maximum(f[active], floor)
        accepted = active[ok]
        if accepted.size:
            theta[accepted] = trial[ok]
            f[accepted] = f_trial[ok]
            w_acc = None if w_act is None else w_act[ok]
            g[accepted], h[accepted] = _ref_derivatives(
                tuple(p[ok] for p in parts), data, w_acc, delta
            )
            lam[accepted] = np.maximum(lam[accepted] / 3.0, 1e-12)
        lam[active[~ok]] *= 10.0
        iterations[active] += 1
        converged = ok & ((rel < ftol) | (f[active] <= floor))
        stuck = lam[active] > 1e10
        active = active[~(converged | stuck)]
    return theta, f, iterations


def bootstrap_parametric_reference(
    theta: Any,
    model_size: Any,
    num_tokens: Any,
    loss: Any,
    weights: np.ndarray,
    *,
    extra_starts: int = 2,
    seed: int = 0,
    delta: float | None = None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The frozen bootstrap: every draw (row of `weights`) refitted from the full fit's `theta`
    and `extra_starts` perturbed starts. Returns (theta (B, 5), objective (B,), improved (B,))."""
    delta = Approach3Params().huber_delta if delta is None else delta
    data = RunData.from_arrays(model_size, num_tokens, loss)
    weights = np.asarray(weights, dtype=float)
    draws = weights.shape[0]
    base = np.asarray(theta, dtype=float)
    n_start = 1 + max(0, int(extra_starts))
    starts = np.repeat(base[None, :], draws * n_start, axis=0)
    if n_start > 1:
        rng = np.random.default_rng(np.random.SeedSequence([int(seed), 3]))
        extra = starts[draws:]
        factors = np.exp(rng.normal(0.0, _REF_PERTURBATION, size=(len(extra), 2)))
        new_alpha, new_beta = extra[:, 3] * factors[:, 0], extra[:, 4] * factors[:, 1]
        extra[:, 0] += (new_alpha - extra[:, 3]) * np.median(data.log_n)
        extra[:, 1] += (new_beta - extra[:, 4]) * np.median(data.log_d)
        extra[:, 3], extra[:, 4] = new_alpha, new_beta
    all_w = np.tile(weights, (n_start, 1))
    k = len(starts)
    out_t, out_f = np.empty_like(starts), np.empty(k)
    chunk = max(8, 32_768 // max(1, data.log_l.size))
    for lo in range(0, k, chunk):
        hi = min(k, lo + chunk)
        with np.errstate(over="ignore", invalid="ignore", divide="ignore", under="ignore"):
            t, f, _ = _ref_lm_chunk(
                starts[lo:hi].copy(),
                data,
                np.ascontiguousarray(all_w[lo:hi]),
                delta,
                _REF_FTOL,
                _REF_MAX_ITER,
            )
        out_t[lo:hi], out_f[lo:hi] = t, f
    f = out_f.reshape(n_start, draws)
    theta_all = out_t.reshape(n_start, draws, 5)
    best = np.argmin(np.where(np.isfinite(f), f, np.inf), axis=0)
    pick = np.arange(draws)
    return theta_all[best, pick], f[best, pick], f[best, pick] < f[0] * (1 - 1e-6)
