"""Approaches 1 and 2, per budget: the optimum estimators, their per-draw versions, power laws."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from flops_fit.fitting.isoflop.estimators import (
    approach2_draws,
    approach2_point,
    approach2_residuals,
    budget_groups,
    fit_power_law,
    fit_power_law_draws,
)
from flops_fit.fitting.runs.prepare import prepare_runs
from flops_fit.fitting.runs.simulated import synthetic_results
from flops_fit.parameters.analysis import AnalysisConfig


def _cfg(**overrides):
    return AnalysisConfig.from_params({"bootstrap": {"draws": 200, "seed": 1}, **overrides})


def test_parabola_opening_downward_is_flagged():
    x = np.array([8.0, 8.5, 9.0, 9.5])
    group = budget_groups(
        pd.DataFrame(
            {
                "model_size": 10**x,
                "num_tokens": 1e19 / (6 * 10**x),
                "final_loss": [2.0, 2.3, 2.35, 2.1],
                "budget_id": 0,
                "budget": 1e19,
                "used_in_fit": True,
            }
        )
    )[0]
    pt = approach2_point(group)
    assert not pt["valid"] and "opens downward" in pt["reason"]


@pytest.mark.filterwarnings("error::RuntimeWarning")
def test_a_vertex_hundreds_of_decades_away_is_named_without_overflow():
    """A nearly straight curve (loss rising with N) puts the vertex beyond a float's range."""
    x = np.array([8.0, 8.5, 9.0, 9.5, 10.0])
    group = budget_groups(pd.DataFrame({
        "model_size": 10**x, "num_tokens": 1e19 / (6 * 10**x),
        "final_loss": 2.0 + 0.1 * x + 1e-6 * (x - 9.0) ** 2,
        "budget_id": 0, "budget": 1e19, "used_in_fit": True,
    }))[0]
    pt = approach2_point(group)
    assert not pt["valid"] and "vertex at 1e-" in pt["reason"]
    assert "lies outside the sampled range" in pt["reason"]


def test_per_draw_optima_match_the_full_data_optima_when_every_run_is_drawn():
    runs, _ = prepare_runs(synthetic_results(noise=0.01), _cfg())
    groups = budget_groups(runs)
    ones = np.ones((3, len(runs)))
    for g in groups:
        a2 = approach2_draws(g, ones)
        assert np.allclose(a2["model_size"], approach2_point(g)["model_size"])
        same = approach2_draws(g, losses=np.tile(g.loss, (3, 1)))
        assert np.allclose(same["model_size"], a2["model_size"])
        assert list(same["code"]) == ["", "", ""]


def test_per_draw_losses_are_refitted_and_failures_say_why():
    runs, _ = prepare_runs(synthetic_results(noise=0.0), _cfg())
    g = budget_groups(runs)[2]
    x = np.log10(g.model_size)
    beyond = 3.0 + 0.5 * (x - x.max() - 0.5) ** 2  # the vertex lies beyond the largest size
    bowl = 3.0 - (x - x.mean()) ** 2  # opens downward
    draws = approach2_draws(g, losses=np.stack([g.loss, beyond, bowl]))
    assert list(draws["code"]) == ["", "outside", "down"]
    assert np.isfinite(draws["model_size"][0]) and np.isnan(draws["model_size"][1:]).all()
    few = np.zeros((1, len(runs)))
    few[0, g.index[:2]] = 1.0
    assert approach2_draws(g, few)["code"][0] == "few"


def test_parabola_residuals_of_an_exact_parabola_are_zero():
    x = np.linspace(8.0, 9.0, 5)
    loss = 2.0 + 0.3 * (x - 8.4) ** 2
    group = budget_groups(
        pd.DataFrame(
            {
                "model_size": 10**x,
                "num_tokens": 1e19 / (6 * 10**x),
                "final_loss": loss,
                "budget_id": 0,
                "budget": 1e19,
                "used_in_fit": True,
            }
        )
    )[0]
    res = approach2_residuals(group)
    assert np.allclose(res["fitted"], loss) and np.allclose(res["residuals"], 0, atol=1e-12)
    assert res["leverage"].sum() == pytest.approx(3.0)  # three coefficients
    assert np.all((res["leverage"] > 0) & (res["leverage"] < 1))


def test_weighted_power_law_draws_match_the_plain_fit():
    c = np.array([1e17, 1e18, 1e19, 1e20])
    y = 3.0 * c**0.45 * np.array([1.1, 0.9, 1.05, 0.97])
    law = fit_power_law(c, y)
    coef, exp = fit_power_law_draws(c, np.tile(y, (2, 1)), np.ones((2, 4)))
    assert np.allclose(exp, law.exponent) and np.allclose(coef, law.coefficient)
    coef, exp = fit_power_law_draws(c, np.tile(y, (1, 1)), np.array([[1, 0, 0, 0.0]]))
    assert np.isnan(exp[0])  # one budget left: no law

