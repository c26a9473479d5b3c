"""Approach 2 says when its budgets' profiles lean one way, and how far a cubic's minimum lies
from each parabola's vertex; on profiles that do not lean it says nothing."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from flops_fit import analyse
from flops_fit.fitting.isoflop.estimators import BudgetRuns
from flops_fit.fitting.isoflop.lean import cubic_minimum, lean_warning
from tests.fitting.test_api import STUDIES, analysis_params


def _approach_2_warnings(name: str, env: str) -> list[str]:
    result = analyse(pd.read_csv(STUDIES / name),
                     {**analysis_params(env), "bootstrap": {"enabled": False}},
                     compute_model="auto")
    return [w for w in result.scaling_laws["approach_2"]["warnings"] if "lean one way" in w]


def test_mnist1ds_profiles_that_lean_are_said_beside_approach_2():
    """Budgets 2x apart, 7 sizes each: every profile rises steeply on the small-model side."""
    (said,) = _approach_2_warnings("mnist1d_7_budgets_results.csv", "mnist1d")
    assert said.startswith("the IsoFLOP profiles lean one way (skew score -")
    assert "more steeply on the small-model side" in said
    assert "Approach 2's N_opt may be too large at every budget" in said
    assert said.endswith("at the 7 budgets with 6+ sizes")


@pytest.mark.parametrize(("name", "env"), [("mnist1d_measured_results.csv", "mnist1d"),
                                           ("mock_6nd_results.csv", "mock"),
                                           ("default_gpt_full_results.csv", "base")])
def test_profiles_that_do_not_lean_say_nothing(name, env):
    assert _approach_2_warnings(name, env) == []


def test_a_cubics_minimum_inside_the_sizes():
    x = np.linspace(3.0, 5.0, 7)
    y = (x - 4.2) ** 2 - 0.3 * (x - 4.2) ** 3  # minimum at 4.2
    assert cubic_minimum(x, y) == pytest.approx(4.2)
    assert cubic_minimum(x[:5], y[:5]) is None  # fewer than 6 sizes
    assert cubic_minimum(x, -(x**3)) is None  # no minimum


def test_profiles_leaning_the_other_way_say_the_vertex_is_too_small():
    """Each budget's profile steeper on the large-model side (a mirrored wall)."""
    rng = np.random.default_rng(0)
    groups, vertices = [], []
    for i, centre in enumerate(np.linspace(4.0, 5.5, 6)):
        x = np.linspace(centre - 0.6, centre + 0.6, 7)
        y = 0.5 * (x - centre) ** 2 + 0.6 * np.clip(x - centre, 0, None) ** 3
        loss = np.exp(y + 0.002 * rng.standard_normal(x.size))
        groups.append(BudgetRuns(i, 10.0 ** (17 + i), np.arange(x.size), 10.0**x,
                                 np.ones(x.size), loss))
        vertices.append(10.0 ** (centre - 0.05))
    said = lean_warning(groups, vertices, min_scale=0.005)
    assert said is not None and "more steeply on the large-model side" in said
    assert "may be too small at every budget" in said
