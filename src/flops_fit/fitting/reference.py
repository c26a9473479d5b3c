"""The paper's recipe for Approach 3, plainly: L-BFGS-B from every point of a 4,500-start grid.

Hoffmann et al. (2022, appendix D.2) and Besiroglu et al. (2024): alpha, beta in {0, 0.5, ..., 2},
e in {-1, -0.5, ..., 1}, a, b in {0, 5, ..., 25}; scipy's L-BFGS-B with its default settings
and, as in Epoch AI's notebook, finite-difference gradients (`analytic_gradient=False`); the
lowest summed Huber objective wins. It is slow (minutes), so it lives here for the benchmark and
the slow tests that check `fitting.parametric.fit_parametric` reaches an objective at least as
low. It is never used by the pipeline.
"""

from __future__ import annotations

import itertools
import time
from typing import Any

import numpy as np
from scipy.optimize import minimize

from flops_fit.fitting.objective import RunData, batched_objective, objective_and_gradient
from flops_fit.fitting.parametric import ParametricFit
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
