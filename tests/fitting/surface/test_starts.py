"""Variable projection over (alpha, beta): the profile and the starts it hands the solver."""

from __future__ import annotations

import numpy as np
import pytest

from flops_fit.fitting.runs.simulated import CHINCHILLA_TRUTH, synthetic_results
from flops_fit.fitting.surface.objective import RunData, batched_objective
from flops_fit.fitting.surface.starts import (
    DROPPED_TERM_SHARE,
    grid,
    local_minima,
    profile_surface,
    start_points,
)


def test_grid_includes_its_stop():
    np.testing.assert_allclose(grid((0.02, 0.1, 0.04)), [0.02, 0.06, 0.1])


def test_profile_is_lowest_at_the_true_exponents():
    df = synthetic_results(noise=0.0)
    data = RunData.from_arrays(df["model_size"], df["num_tokens"], df["final_loss"])
    alphas, betas = np.arange(0.1, 0.6, 0.02), np.arange(0.1, 0.6, 0.02)
    obj, theta = profile_surface(data, alphas, betas, 1e-3)
    assert obj.shape == (25, 25) and theta.shape == (25, 25, 5)
    i, j = np.unravel_index(np.argmin(obj), obj.shape)
    assert alphas[i] == pytest.approx(CHINCHILLA_TRUTH["alpha"], abs=0.011)
    assert betas[j] == pytest.approx(CHINCHILLA_TRUTH["beta"], abs=0.011)
    assert np.exp(theta[i, j, 2]) == pytest.approx(CHINCHILLA_TRUTH["E"], rel=0.05)
    starts = start_points(obj, theta, 4)
    assert starts.shape == (4, 5)
    assert np.array_equal(starts[0], theta[i, j])


def test_local_minima_best_first_then_the_best_pairs():
    obj = np.array([[1.0, 2.0, 0.5], [3.0, 4.0, 3.0], [0.2, 5.0, np.inf]])
    assert local_minima(obj).tolist() == [6, 2, 0]
    theta = np.arange(45.0).reshape(3, 3, 5)
    assert start_points(obj, theta, 5)[:, 0].tolist() == [30.0, 10.0, 0.0, 5.0, 15.0]
    assert start_points(np.full((2, 2), np.inf), theta[:2, :2], 3).shape == (0, 5)


def test_least_squares_profile_is_exact_for_raw_residuals():
    df = synthetic_results(noise=0.0)
    data = RunData.from_arrays(df["model_size"], df["num_tokens"], df["final_loss"])
    alphas, betas = np.array([0.3, 0.34, 0.38]), np.array([0.24, 0.28, 0.32])
    obj, theta = profile_surface(data, alphas, betas, 1e-3, "least_squares")
    assert np.argmin(obj) == 4 and obj[1, 1] < 1e-10  # the true pair fits (up to the ridge)
    truth = [CHINCHILLA_TRUTH[k] for k in ("A", "B", "E")]
    np.testing.assert_allclose(np.exp(theta[1, 1, :3]), truth, rtol=1e-4)
    # away from the truth the inner NNLS is the raw least-squares optimum: no better E nearby
    i, j = 0, 2
    base = batched_objective(theta[i, j], data, None, 1e-3, objective="least_squares")[0]
    assert obj[i, j] == pytest.approx(base)
    for k in range(3):
        for step in (-1e-4, 1e-4):
            moved = theta[i, j].copy()
            moved[k] += step
            assert batched_objective(moved, data, None, 1e-3, objective="least_squares")[0] >= base


def test_a_term_the_nnls_drops_is_scored_at_0_and_handed_on_small_but_movable():
    """Runs whose loss has no term in D: the profile drops B (or keeps it at ~1e-9 of the
    loss), scores the pair without it, and starts B where its term is DROPPED_TERM_SHARE of
    the lowest loss at the median run (a log-coefficient near -inf would leave the solver a
    gradient near 0 in it)."""
    df = synthetic_results(noise=0.0)
    t = CHINCHILLA_TRUTH
    df["final_loss"] = t["E"] + t["A"] / df["model_size"] ** t["alpha"]
    data = RunData.from_arrays(df["model_size"], df["num_tokens"], df["final_loss"])
    obj, theta = profile_surface(data, np.array([CHINCHILLA_TRUTH["alpha"]]), np.array([0.3]), 1e-3)
    start = theta[0, 0]
    np.testing.assert_allclose(
        np.exp(start[[0, 2]]), [CHINCHILLA_TRUTH["A"], CHINCHILLA_TRUTH["E"]], rtol=1e-6
    )
    b_term = np.exp(start[1] - 0.3 * np.median(np.log(df["num_tokens"])))
    assert b_term == pytest.approx(DROPPED_TERM_SHARE * df["final_loss"].min())
    assert obj[0, 0] < 1e-10  # scored as the (near-)exact fit it is, without B
    assert batched_objective(start, data, None, 1e-3)[0] > 1e-8  # the start itself moved B
