"""Parameters on a bound: which ones, in the fit and at each end of their intervals, and the
words that show them."""

from __future__ import annotations

import numpy as np
import pytest

from flops_fit.fitting.laws.bounded import (
    end_text,
    floor_entry,
    law_bounds,
    named_text,
    value_text,
)
from flops_fit.fitting.laws.families import FAMILIES, PLATEAU_CEILING, at_bound, bound_sides

LOSS = np.array([0.5, 1.0, 2.0])  # the plateau's ceiling is PLATEAU_CEILING x 2.0
CEILING = PLATEAU_CEILING * 2.0
SATURATING = FAMILIES["saturating"]
L_MAX = SATURATING.param_names.index("L_max")


def _saturating(l_max: float) -> np.ndarray:
    """theta = (ln A, ln B, alpha, beta, ln L_max, ln k)."""
    return np.array([np.log(3000.0), np.log(1000.0), 0.4, 0.3, np.log(l_max), np.log(2.0)])


def _draws(n: int, on_ceiling: int):
    """n draws of the saturating law, the first `on_ceiling` on their own ceilings: each draw's
    highest loss differs, so their L_max are spread around the fit's ceiling, some below it."""
    l_max = np.linspace(CEILING * 0.97, CEILING * 1.02, n)
    l_max[on_ceiling:] = np.linspace(5.0, 50.0, n - on_ceiling)
    sides = np.zeros((n, SATURATING.n_params), dtype=int)
    sides[:on_ceiling, L_MAX] = 1
    return {SATURATING.key(k): np.full(n, 1.0) for k in SATURATING.param_names} | {
        SATURATING.key("L_max"): l_max}, sides


def test_an_interval_end_among_draws_on_their_own_moving_ceiling_is_the_bound():
    draws, sides = _draws(100, 30)
    just_below = _saturating(CEILING * (1 - 1e-4))  # as a fit that stopped short of it
    entry = law_bounds("saturating", just_below, draws, sides, LOSS, 0.95)["L_max"]
    assert entry == {"side": "upper", "bound": pytest.approx(CEILING), "fit": False,
                     "interval": [False, True]}
    # the fit itself on its ceiling, as the warning's test (`at_bound`) finds it
    on_it = _saturating(CEILING)
    assert at_bound("saturating", on_it, float(np.log(LOSS.max()))) == ["L_max"]
    assert law_bounds("saturating", on_it, draws, sides, LOSS, 0.95)["L_max"]["fit"]
    # a tail's worth or fewer on it says nothing; all of them: both ends
    assert "L_max" not in law_bounds("saturating", just_below, *_draws(100, 2), LOSS, 0.95)
    assert law_bounds("saturating", just_below, *_draws(100, 100), LOSS, 0.95)["L_max"][
        "interval"] == [True, True]
    # without draws, or with fewer than an interval needs, only the fit is judged
    assert law_bounds("saturating", on_it, None, None, LOSS, 0.95)["L_max"]["interval"] == [
        False, False]
    assert "L_max" not in law_bounds("saturating", just_below, *_draws(9, 9), LOSS, 0.95)


def test_bound_sides_says_which_side():
    theta = np.stack([_saturating(CEILING), _saturating(10.0)])
    theta[1, SATURATING.theta_names.index("alpha")] = 0.01  # the exponents' floor
    sides = bound_sides("saturating", theta, np.log([2.0, 2.0]))
    assert sides[0].tolist() == [0, 0, 0, 0, 1, 0]
    assert sides[1].tolist() == [0, 0, -1, 0, 0, 0]


def test_an_irreducible_loss_whose_term_vanished_sits_on_its_bound_0():
    draws = np.r_[np.full(30, 1e-157), np.linspace(0.01, 0.3, 69), np.nan]
    assert floor_entry(1.364e-157, draws, LOSS, 0.95) == {
        "side": "lower", "bound": 0.0, "fit": True, "interval": [True, False]}
    assert floor_entry(0.3, None, LOSS, 0.95) is None  # small, yet a term of the loss
    theta = np.array([np.log(600.0), np.log(12000.0), np.log(1.364e-157), 0.9, 0.9])
    assert law_bounds("chinchilla", theta, None, None, LOSS, 0.95) == {
        "E": {"side": "lower", "bound": 0.0, "fit": True, "interval": [False, False]}}


def test_the_words_for_a_value_on_its_bound():
    zero = {"side": "lower", "bound": 0.0, "fit": True, "interval": [True, True]}
    ceiling = {"side": "upper", "bound": 50.0, "fit": True, "interval": [False, True]}
    assert value_text("1.364e-157", zero) == "≈ 0 (at its bound)"
    assert value_text("50", ceiling) == "50 (at its bound)"
    assert value_text("16.1", {**ceiling, "fit": False}) == value_text("16.1", None) == "16.1"
    assert named_text("E", "1.364e-157", zero, "=") == "E ≈ 0 (at its bound)"
    assert named_text("E", "1.69", None, "=") == "E=1.69"
    assert [end_text(ceiling, end) for end in (0, 1)] == [None, "its bound"]
    assert [end_text(zero, end) for end in (0, 1)] == ["≈ 0", "≈ 0"]
