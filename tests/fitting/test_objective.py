"""Approach 3's Huber objective on log-loss: values, analytic derivatives, theta <-> parameters."""

from __future__ import annotations

import numpy as np
import pytest

from flops_fit.fitting.objective import (
    ParametricFitError,
    RunData,
    batched_objective,
    huber,
    objective_and_gradient,
    theta_to_params,
)
from flops_fit.fitting.surface import allocation_constants, parametric_loss
from flops_fit.fitting.synthetic import CHINCHILLA_TRUTH, synthetic_results

DELTA = 1e-3


def _data(noise=0.01):
    df = synthetic_results(noise=noise, seed=1, sizes_per_budget=5)
    return RunData.from_arrays(df["model_size"], df["num_tokens"], df["final_loss"])


def _theta(p):
    return np.array([np.log(p["A"]), np.log(p["B"]), np.log(p["E"]), p["alpha"], p["beta"]])


def test_huber_is_quadratic_then_linear():
    r = np.array([-0.01, -1e-4, 0.0, 5e-4, 0.02])
    np.testing.assert_allclose(
        huber(r, DELTA), [DELTA * (0.01 - DELTA / 2), 5e-9, 0.0, 1.25e-7, DELTA * (0.02 - DELTA / 2)]
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
