"""The batched Levenberg-Marquardt solver: never worse than its start, one row per problem."""

from __future__ import annotations

import numpy as np
import pytest

from flops_fit.fitting.runs.simulated import CHINCHILLA_TRUTH, synthetic_results
from flops_fit.fitting.surface.objective import RunData, batched_objective
from flops_fit.fitting.surface.solver import minimise_batched

DELTA = 1e-3
TRUTH = np.log([CHINCHILLA_TRUTH[k] for k in ("A", "B", "E")]).tolist() + [0.34, 0.28]


def test_noise_free_runs_are_fitted_from_nearby_starts():
    df = synthetic_results(noise=0.0)
    data = RunData.from_arrays(df["model_size"], df["num_tokens"], df["final_loss"])
    rng = np.random.default_rng(0)
    starts = np.array(TRUTH) + rng.normal(0, [0.3, 0.3, 0.05, 0.03, 0.03], size=(6, 5))
    theta, f, iters = minimise_batched(starts, data, None, DELTA, 1e-14, 2000)
    assert theta.shape == (6, 5) and f.shape == iters.shape == (6,)
    assert np.all(f <= batched_objective(starts, data, None, DELTA))
    best = theta[np.argmin(f)]
    assert best[3] == pytest.approx(0.34, rel=1e-4) and best[4] == pytest.approx(0.28, rel=1e-4)


def test_one_weight_row_per_problem():
    df = synthetic_results(noise=0.01, seed=2)
    data = RunData.from_arrays(df["model_size"], df["num_tokens"], df["final_loss"])
    w = np.ones((2, len(df)))
    w[1, ::2] = 0.0
    starts = np.repeat(np.array(TRUTH)[None, :], 2, axis=0)
    theta, f, _ = minimise_batched(starts, data, w, DELTA, 1e-10, 500)
    alone, f_alone, _ = minimise_batched(starts[1:], data, w[1], DELTA, 1e-10, 500)
    assert f[1] == pytest.approx(f_alone[0], rel=1e-12)
    np.testing.assert_allclose(theta[1], alone[0], rtol=1e-10)
    assert not np.allclose(theta[0], theta[1])


def test_one_target_row_per_problem():
    df = synthetic_results(noise=0.01, seed=2)
    data = RunData.from_arrays(df["model_size"], df["num_tokens"], df["final_loss"])
    rng = np.random.default_rng(3)
    log_l = data.log_l + rng.normal(0, 0.01, size=(3, len(df)))
    starts = np.repeat(np.array(TRUTH)[None, :], 3, axis=0)
    theta, f, _ = minimise_batched(starts, data, None, DELTA, 1e-10, 500, log_l=log_l)
    for k in range(3):
        other = RunData(data.log_n, data.log_d, log_l[k])
        alone, f_alone, _ = minimise_batched(starts[:1], other, None, DELTA, 1e-10, 500)
        assert f[k] == pytest.approx(f_alone[0], rel=1e-12)
        np.testing.assert_allclose(theta[k], alone[0], rtol=1e-10)
        assert f[k] == pytest.approx(batched_objective(theta[k], other, None, DELTA)[0])
    shared, _, _ = minimise_batched(starts, data, None, DELTA, 1e-10, 500, log_l=data.log_l)
    plain, _, _ = minimise_batched(starts, data, None, DELTA, 1e-10, 500)
    np.testing.assert_array_equal(shared, plain)
    with pytest.raises(ValueError, match="log_l must have shape"):
        minimise_batched(starts, data, None, DELTA, 1e-10, 500, log_l=log_l[:2])


def test_least_squares_agrees_with_scipy():
    from scipy.optimize import least_squares

    df = synthetic_results(noise=0.01, seed=5)
    data = RunData.from_arrays(df["model_size"], df["num_tokens"], df["final_loss"])
    start = np.array(TRUTH) + np.array([0.2, -0.2, 0.02, 0.02, -0.02])
    theta, f, _ = minimise_batched(start, data, None, DELTA, 1e-14, 2000, objective="least_squares")

    def resid(t):
        pred = np.exp(t[0] - t[3] * data.log_n) + np.exp(t[1] - t[4] * data.log_d) + np.exp(t[2])
        return pred - data.loss

    ref = least_squares(resid, start, method="lm", xtol=1e-15, ftol=1e-15, gtol=1e-15)
    assert f[0] == pytest.approx(float(ref.fun @ ref.fun), rel=1e-9)
    np.testing.assert_allclose(theta[0], ref.x, rtol=1e-5, atol=1e-6)
    assert f[0] == pytest.approx(
        batched_objective(theta, data, None, DELTA, objective="least_squares")[0], rel=1e-12
    )
