"""Approach 3's objectives (Huber on log-loss, raw least squares): values, analytic derivatives,
theta <-> parameters."""

from __future__ import annotations

import numpy as np
import pytest

from flops_fit.fitting.runs.simulated import CHINCHILLA_TRUTH, synthetic_results
from flops_fit.fitting.surface.law import allocation_constants, parametric_loss
from flops_fit.fitting.surface.objective import (
    OBJECTIVES,
    ParametricFitError,
    RunData,
    batched_objective,
    check_objective,
    derivatives,
    huber,
    objective_and_gradient,
    residual_parts,
    theta_to_params,
)

DELTA = 1e-3


def _data(noise=0.01):
    df = synthetic_results(noise=noise, seed=1, sizes_per_budget=5)
    return RunData.from_arrays(df["model_size"], df["num_tokens"], df["final_loss"])


def _theta(p):
    return np.array([np.log(p["A"]), np.log(p["B"]), np.log(p["E"]), p["alpha"], p["beta"]])


def test_huber_is_quadratic_then_linear():
    r = np.array([-0.01, -1e-4, 0.0, 5e-4, 0.02])
    np.testing.assert_allclose(
        huber(r, DELTA),
        [DELTA * (0.01 - DELTA / 2), 5e-9, 0.0, 1.25e-7, DELTA * (0.02 - DELTA / 2)],
    )


def test_objective_is_the_huber_sum_of_log_residuals():
    df = synthetic_results(noise=0.01, seed=1, sizes_per_budget=5)
    data = RunData.from_arrays(df["model_size"], df["num_tokens"], df["final_loss"])
    pred = parametric_loss(df["model_size"], df["num_tokens"], CHINCHILLA_TRUTH)
    expected = huber(np.log(pred) - np.log(df["final_loss"]), DELTA).sum()
    theta = _theta(CHINCHILLA_TRUTH)
    assert batched_objective(theta, data, None, DELTA)[0] == pytest.approx(expected, rel=1e-10)
    twice = batched_objective(theta, data, np.full(len(df), 2.0), DELTA)[0]
    assert twice == pytest.approx(2 * expected, rel=1e-12)


def test_gradient_matches_finite_differences():
    data = _data()
    theta = _theta(CHINCHILLA_TRUTH) + np.array([0.1, -0.1, 0.05, 0.02, -0.01])
    f, g = objective_and_gradient(theta, data, None, DELTA)
    for i in range(5):
        h = np.zeros(5)
        h[i] = 1e-6
        fd = (
            objective_and_gradient(theta + h, data, None, DELTA)[0]
            - objective_and_gradient(theta - h, data, None, DELTA)[0]
        ) / 2e-6
        assert g[i] == pytest.approx(fd, rel=1e-4, abs=1e-9), i
    assert f == pytest.approx(batched_objective(theta, data, None, DELTA)[0], rel=1e-12)


def test_theta_to_params_is_the_surface_parameterisation():
    theta = np.stack([_theta(CHINCHILLA_TRUTH), _theta({**CHINCHILLA_TRUTH, "alpha": 0.5})])
    params = theta_to_params(theta)
    assert params["E"][0] == pytest.approx(CHINCHILLA_TRUTH["E"])
    assert params["alpha"].tolist() == [0.34, 0.5]
    for key, value in allocation_constants(CHINCHILLA_TRUTH).items():
        assert params[key][0] == pytest.approx(value, rel=1e-14)


def test_bad_runs_are_refused():
    with pytest.raises(ParametricFitError, match="same length"):
        RunData.from_arrays([1e8, 2e8], [1e9], [3.0, 2.9])
    with pytest.raises(ParametricFitError, match="num_tokens must be finite and positive"):
        RunData.from_arrays([1e8], [0.0], [3.0])


def _explicit_gauss_newton(theta, data, w, objective):
    """J^T U J and the gradient written out per run, for checking `derivatives`."""
    e1 = np.exp(theta[:, 0:1] - theta[:, 3:4] * data.log_n)
    e2 = np.exp(theta[:, 1:2] - theta[:, 4:5] * data.log_d)
    e3 = np.broadcast_to(np.exp(theta[:, 2:3]), e1.shape)
    s = e1 + e2 + e3
    p = (e1 / s, e2 / s, e3 / s) if objective == "huber_log" else (e1, e2, e3)
    jac = np.stack([p[0], p[1], p[2], -p[0] * data.log_n, -p[1] * data.log_d], axis=2)
    if objective == "huber_log":
        r = np.log(s) - data.log_l
        u = (np.abs(r) <= DELTA) + 1e-3 * DELTA / np.maximum(np.abs(r), DELTA)
        psi = np.clip(r, -DELTA, DELTA)
    else:
        r = s - data.loss
        u, psi = np.full_like(r, 2.0), 2.0 * r
    return np.einsum("kn,kni->ki", w * psi, jac), np.einsum("kni,kn,knj->kij", jac, w * u, jac)


@pytest.mark.parametrize("objective", OBJECTIVES)
def test_gauss_newton_matrix_and_gradient_are_the_explicit_sums(objective):
    data = _data()
    rng = np.random.default_rng(0)
    theta = _theta(CHINCHILLA_TRUTH) + rng.normal(0, 0.02, size=(7, 5))
    w = rng.poisson(1.0, size=(7, data.log_l.size)).astype(float)
    parts = residual_parts(theta, data, objective=objective)
    g, h = derivatives(parts, data, w, DELTA, objective)
    g_ref, h_ref = _explicit_gauss_newton(theta, data, w, objective)
    np.testing.assert_allclose(g, g_ref, rtol=1e-10, atol=1e-14 * np.abs(g_ref).max())
    np.testing.assert_allclose(h, h_ref, rtol=1e-10, atol=1e-14 * np.abs(h_ref).max())
    # the same with a reused scratch array larger than needed
    g2, h2 = derivatives(parts, data, w, DELTA, objective, np.empty((9, 20, data.log_l.size)))
    np.testing.assert_array_equal(h2, h)


def test_least_squares_is_the_sum_of_squared_raw_residuals():
    df = synthetic_results(noise=0.01, seed=1, sizes_per_budget=5)
    data = RunData.from_arrays(df["model_size"], df["num_tokens"], df["final_loss"])
    pred = parametric_loss(df["model_size"], df["num_tokens"], CHINCHILLA_TRUTH)
    expected = float(((pred - df["final_loss"]) ** 2).sum())
    theta = _theta(CHINCHILLA_TRUTH)
    f = batched_objective(theta, data, None, DELTA, objective="least_squares")[0]
    assert f == pytest.approx(expected, rel=1e-10)
    w = np.arange(len(df), dtype=float)
    weighted = float((w * (pred - df["final_loss"]) ** 2).sum())
    assert batched_objective(theta, data, w, DELTA, objective="least_squares")[0] == (
        pytest.approx(weighted, rel=1e-10)
    )
    # per-problem target losses: the residuals are taken against exp(log_l)
    log_l = np.log(np.asarray(pred, float))[None, :]
    assert batched_objective(theta, data, None, DELTA, log_l, "least_squares")[0] < 1e-25
    with pytest.raises(ValueError, match="unknown Approach 3 objective"):
        check_objective("l1")


def test_least_squares_gradient_matches_finite_differences():
    data = _data()
    theta = _theta(CHINCHILLA_TRUTH) + np.array([0.1, -0.1, 0.05, 0.02, -0.01])
    f, g = objective_and_gradient(theta, data, None, DELTA, None, "least_squares")
    for i in range(5):
        h = np.zeros(5)
        h[i] = 1e-6
        fd = (
            objective_and_gradient(theta + h, data, None, DELTA, None, "least_squares")[0]
            - objective_and_gradient(theta - h, data, None, DELTA, None, "least_squares")[0]
        ) / 2e-6
        assert g[i] == pytest.approx(fd, rel=1e-5, abs=1e-9), i
