"""The surface algebra: the closed-form optimum, and one allocation vectorised over draws."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.optimize import minimize_scalar

from flops_fit.fitting.runs.simulated import CHINCHILLA_TRUTH
from flops_fit.fitting.surface.law import (
    CHINCHILLA_APPROACH_3,
    allocation_constants,
    allocation_power_laws_6nd,
    optimal_allocation_6nd,
    parametric_loss,
)
from flops_fit.planning.flops import compute_6nd


def test_optimal_allocation_is_the_minimum_along_the_isoflop_line():
    for c in (1e19, 1e22, 1e25):
        n_opt, d_opt = optimal_allocation_6nd(c, CHINCHILLA_TRUTH)
        assert 6 * n_opt * d_opt == pytest.approx(c)
        res = minimize_scalar(
            lambda x, c=c: parametric_loss(10**x, c / (6 * 10**x), CHINCHILLA_TRUTH),
            bounds=(5, 14),
            method="bounded",
            options={"xatol": 1e-10},
        )
        assert np.log10(n_opt) == pytest.approx(res.x, abs=1e-6)



def _draws(n: int = 5) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(0)
    return {k: v * np.exp(rng.normal(0, 0.05, n)) for k, v in CHINCHILLA_APPROACH_3.items()}


def test_scalar_parameters_keep_the_budgets_shape():
    n, d = optimal_allocation_6nd(1e21, CHINCHILLA_TRUTH)
    assert np.ndim(n) == np.ndim(d) == 0
    grid = np.array([[1e19, 1e20], [1e21, 1e22]])
    n, d = optimal_allocation_6nd(grid, CHINCHILLA_TRUTH)
    assert n.shape == d.shape == grid.shape
    np.testing.assert_allclose(compute_6nd(n, d), grid)


def test_allocation_over_draws_equals_one_call_per_draw():
    """Per-draw parameters (B,) and budgets (m,) give (B, m), row b equal to draw b alone."""
    draws = _draws()
    budgets = np.array([1e19, 1e21, 1e24])
    n, d = optimal_allocation_6nd(budgets, draws)
    loss = parametric_loss(n, d, draws)
    assert n.shape == d.shape == loss.shape == (5, 3)
    for b in range(5):
        one = {k: float(v[b]) for k, v in draws.items()}
        n_b, d_b = optimal_allocation_6nd(budgets, one)
        assert np.array_equal(n[b], n_b) and np.array_equal(d[b], d_b)
        assert np.array_equal(loss[b], parametric_loss(n_b, d_b, one))
        for key, value in allocation_constants(one).items():
            assert allocation_constants(draws)[key][b] == value


def test_invalid_draws_have_no_allocation():
    draws = _draws(3)
    draws["alpha"][1] = -0.1
    n, _ = optimal_allocation_6nd(np.array([1e20]), draws)
    assert np.isnan(n[1]).all() and np.isfinite(n[[0, 2]]).all()
    assert np.isnan(allocation_constants({**CHINCHILLA_TRUTH, "beta": 0.0})["G"])


def test_allocation_power_laws_are_the_allocation_in_c():
    laws = allocation_power_laws_6nd(CHINCHILLA_TRUTH)
    for c in (1e19, 1e23):
        n, d = optimal_allocation_6nd(c, CHINCHILLA_TRUTH)
        assert laws["n_opt"]["coefficient"] * c ** laws["n_opt"]["exponent"] == pytest.approx(n)
        assert laws["d_opt"]["coefficient"] * c ** laws["d_opt"]["exponent"] == pytest.approx(d)
    per_draw = allocation_power_laws_6nd(_draws())
    assert per_draw["n_opt"]["coefficient"].shape == (5,)
