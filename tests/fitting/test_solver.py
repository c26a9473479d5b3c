"""The batched Levenberg-Marquardt solver: never worse than its start, one row per problem."""

from __future__ import annotations

import numpy as np
import pytest

from flops_fit.fitting.objective import RunData, batched_objective
from flops_fit.fitting.solver import minimise_batched
from flops_fit.fitting.synthetic import CHINCHILLA_TRUTH, synthetic_results

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
