"""Approaches 1 and 2, per budget: the optimum estimators, their per-draw versions, power laws."""

from __future__ import annotations

import numpy as np
import pandas as pd

from flops_fit.fitting.analysis_runs import prepare_runs
from flops_fit.fitting.isoflop import (
    approach1_draws,
    approach2_draws,
    approach2_point,
    budget_groups,
    fit_power_law,
    fit_power_law_draws,
)
from flops_fit.fitting.synthetic import synthetic_results
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


def test_per_draw_optima_match_the_full_data_optima_when_every_run_is_drawn():
    runs, _ = prepare_runs(synthetic_results(noise=0.01), _cfg())
    groups = budget_groups(runs)
    ones = np.ones((3, len(runs)))
    for g in groups:
        a1 = approach1_draws(g, ones)
        assert np.all(a1["loss"] == g.loss.min())
        a2 = approach2_draws(g, ones)
        assert np.allclose(a2["model_size"], approach2_point(g)["model_size"])


def test_weighted_power_law_draws_match_the_plain_fit():
    c = np.array([1e17, 1e18, 1e19, 1e20])
    y = 3.0 * c**0.45 * np.array([1.1, 0.9, 1.05, 0.97])
    law = fit_power_law(c, y)
    coef, exp = fit_power_law_draws(c, np.tile(y, (2, 1)), np.ones((2, 4)))
    assert np.allclose(exp, law.exponent) and np.allclose(coef, law.coefficient)
    coef, exp = fit_power_law_draws(c, np.tile(y, (1, 1)), np.array([[1, 0, 0, 0.0]]))
    assert np.isnan(exp[0])  # one budget left: no law

