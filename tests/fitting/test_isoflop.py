"""Approaches 1 and 2: per-budget optima, flags, and power laws that recover known exponents."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from flops_fit.fitting.analysis import AnalysisConfig, fit_isoflop_approaches, prepare_runs
from flops_fit.fitting.bootstrap import resample_weights
from flops_fit.fitting.isoflop import (
    approach1_draws,
    approach2_draws,
    approach2_point,
    budget_groups,
    fit_power_law,
    fit_power_law_draws,
)
from flops_fit.fitting.synthetic import CHINCHILLA_TRUTH, synthetic_results

BUDGETS = (1e17, 1e18, 1e19, 1e20, 1e21)


def parabolic_results(
    a: float, k: float, curvature: float, loss_exp: float, sizes: int = 7, step_dex: float = 0.2
) -> pd.DataFrame:
    """IsoFLOP profiles that are exact parabolas in log10 N around N* = k C^a, with a grid point
    on N* itself: both approaches must return exactly the known exponents."""
    rows = []
    for c in BUDGETS:
        n_star = k * c**a
        l_star = 10.0 * c**loss_exp
        for j in range(-(sizes // 2), sizes // 2 + 1):
            n = n_star * 10 ** (j * step_dex)
            rows.append(
                {
                    "experiment_id": f"{c:.0e}-{j}",
                    "compute_budget": c,
                    "model_size": n,
                    "num_tokens": c / (6 * n),
                    "final_loss": l_star + curvature * (j * step_dex) ** 2,
                    "status": "completed",
                }
            )
    return pd.DataFrame(rows)


def _cfg(**overrides):
    return AnalysisConfig.from_params({"bootstrap": {"draws": 200, "seed": 1}, **overrides})


@settings(max_examples=25, deadline=None)
@given(
    a=st.floats(0.3, 0.7),
    k=st.floats(0.01, 10.0),
    curvature=st.floats(0.01, 1.0),
    loss_exp=st.floats(-0.1, -0.02),
)
def test_approaches_1_and_2_recover_a_known_exponent(a, k, curvature, loss_exp):
    cfg = _cfg(outliers={"enabled": False})
    runs, _ = prepare_runs(parabolic_results(a, k, curvature, loss_exp), cfg)
    fits = fit_isoflop_approaches(runs, cfg)
    for approach in ("approach_1", "approach_2"):
        laws = fits[approach]["laws"]
        assert laws["n_opt"]["exponent"] == pytest.approx(a, abs=1e-7)
        assert laws["d_opt"]["exponent"] == pytest.approx(1 - a, abs=1e-7)
        assert laws["l_opt"]["exponent"] == pytest.approx(loss_exp, abs=1e-7)
        assert laws["n_opt"]["coefficient"] == pytest.approx(k, rel=1e-5)
        assert laws["n_opt"]["r2"] == pytest.approx(1.0)
        lo, hi = laws["n_opt"]["interval"]["exponent"]
        assert lo <= a + 1e-9 and a - 1e-9 <= hi


def test_approach_2_on_the_chinchilla_surface_is_close_to_the_truth():
    """Noisy synthetic runs around the true optimum: the parabola bias stays small and the
    bootstrap interval covers the truth a = beta / (alpha + beta)."""
    truth_a = CHINCHILLA_TRUTH["beta"] / (CHINCHILLA_TRUTH["alpha"] + CHINCHILLA_TRUTH["beta"])
    cfg = _cfg()
    for seed in range(3):
        runs, _ = prepare_runs(synthetic_results(noise=0.005, seed=seed, span=4.0), cfg)
        law = fit_isoflop_approaches(runs, cfg)["approach_2"]["laws"]["n_opt"]
        assert abs(law["exponent"] - truth_a) < 0.02
        lo, hi = law["interval"]["exponent"]
        assert lo - 0.005 <= truth_a <= hi + 0.005


def test_vertex_outside_the_sampled_range_is_flagged_and_left_out(caplog):
    df = parabolic_results(0.5, 1.0, 0.2, -0.05)
    # budget 1e19: keep only the 3 sizes above its optimum, so the vertex lies below the range
    n_star = 1.0 * 1e19**0.5
    drop = (df["compute_budget"] == 1e19) & (df["model_size"] < 1.01 * n_star)
    df = df[~drop].reset_index(drop=True)
    cfg = _cfg(outliers={"enabled": False})
    runs, _ = prepare_runs(df, cfg)
    with caplog.at_level("WARNING"):
        fits = fit_isoflop_approaches(runs, cfg)
    excluded = fits["approach_2"]["excluded_budgets"]
    assert [e["compute_budget"] for e in excluded] == [1e19]
    assert "outside the sampled range" in excluded[0]["reason"]
    assert any(
        "budget 1e+19 FLOPs left out of the approach_2 fit" in w
        for w in fits["approach_2"]["warnings"]
    )
    assert "budget 1e+19" in caplog.text
    assert fits["approach_2"]["laws"]["n_opt"]["n_budgets"] == 4


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


def test_resampling_budgets_keeps_budgets_whole():
    budget_ids = np.repeat(np.arange(4), 5)
    w = resample_weights(np.ones(20, bool), budget_ids, draws=50, seed=3, mode="budgets")
    for row in w:
        for b in range(4):
            assert np.unique(row[budget_ids == b]).size == 1
    assert np.all(w.reshape(50, 4, 5).sum(axis=(1, 2)) == 20)
    same = resample_weights(np.ones(20, bool), budget_ids, draws=50, seed=3, mode="budgets")
    assert np.array_equal(w, same)
