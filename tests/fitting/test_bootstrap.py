"""Bootstrap draws shared by every approach, failure accounting and percentile intervals."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from flops_fit.fitting.bootstrap import (
    UNRELIABLE_SHARE,
    BootstrapReport,
    interval,
    intervals_columns,
    plan_draws,
    resample_weights,
    residual_losses,
    run_weights,
    small_sample_factor,
    standardised_residuals,
    unreliable_note,
)
from flops_fit.parameters.analysis import BootstrapParams


def test_resampling_budgets_keeps_budgets_whole():
    budget_ids = np.repeat(np.arange(4), 5)
    w = resample_weights(np.ones(20, bool), budget_ids, draws=50, seed=3, mode="budgets")
    for row in w:
        for b in range(4):
            assert np.unique(row[budget_ids == b]).size == 1
    assert np.all(w.reshape(50, 4, 5).sum(axis=(1, 2)) == 20)
    same = resample_weights(np.ones(20, bool), budget_ids, draws=50, seed=3, mode="budgets")
    assert np.array_equal(w, same)


def test_resampling_runs_stays_within_each_budget():
    used = np.array([True] * 8 + [False] * 2)
    budget_ids = np.array([0, 0, 0, 1, 1, 1, 1, 1, 0, 1])
    w = resample_weights(used, budget_ids, draws=30, seed=0, mode="runs")
    assert w.shape == (30, 10)
    assert np.all(w[:, 8:] == 0)
    assert np.all(w[:, :3].sum(axis=1) == 3) and np.all(w[:, 3:8].sum(axis=1) == 5)
    assert not np.array_equal(w, resample_weights(used, budget_ids, 30, 1, "runs"))


def test_draws_follow_the_bootstrap_parameters():
    runs = pd.DataFrame(
        {"used_in_fit": [True, True, False, True], "budget_id": pd.array([0, 0, pd.NA, 1])}
    )
    assert plan_draws(runs, BootstrapParams(enabled=False)) is None
    assert plan_draws(runs, BootstrapParams(draws=0)) is None
    assert run_weights(runs, BootstrapParams()) is None  # the default resamples residuals
    w = run_weights(runs, BootstrapParams(draws=20, seed=4, resample="budgets"))
    assert w.shape == (20, 4) and np.all(w[:, 2] == 0)
    assert np.all(w[:, 0] == w[:, 1])  # one budget, one count
    plan = plan_draws(runs, BootstrapParams(draws=20, seed=4))
    assert plan.residual and plan.weights is None and plan.uniforms.shape == (20, 4)
    again = plan_draws(runs, BootstrapParams(draws=20, seed=4))
    assert np.array_equal(plan.uniforms, again.uniforms)
    other = plan_draws(runs, BootstrapParams(draws=20, seed=5))
    assert not np.array_equal(plan.uniforms, other.uniforms)


def test_small_sample_factor_is_t_over_z():
    assert small_sample_factor(6, 0.95) == pytest.approx(2.4469 / 1.95996, rel=1e-4)
    assert small_sample_factor(40, 0.95) == pytest.approx(2.0211 / 1.95996, rel=1e-4)
    assert small_sample_factor(10_000, 0.95) == pytest.approx(1.0, abs=1e-3)


def test_residuals_are_leverage_corrected_and_centred():
    z = standardised_residuals(np.array([0.1, -0.2, 0.4]), np.array([0.5, 0.0, 0.75]))
    raw = np.array([0.1 / np.sqrt(0.5), -0.2, 0.4 / 0.5])
    assert z == pytest.approx(raw - raw.mean())
    assert standardised_residuals(np.array([1.0, 3.0]), None) == pytest.approx([-1.0, 1.0])


def test_runs_a_fit_passes_through_stay_out_of_the_pool():
    """A 3-size budget's parabola passes through its runs (h = 1, residual 0 at any noise):
    pooled with the rest, its zeros would shrink every draw's noise."""
    z = standardised_residuals(np.array([1e-17, -1e-17, 1e-17, 0.3, -0.1]),
                               np.array([1.0, 1.0, 1.0 - 1e-12, 0.5, 0.2]))
    raw = np.array([0.3 / np.sqrt(0.5), -0.1 / np.sqrt(0.8)])
    assert z == pytest.approx(raw - raw.mean())


def _plan(draws=400, n=6, seed=0):
    runs = pd.DataFrame({"used_in_fit": [True] * n, "budget_id": pd.array([0] * n)})
    return plan_draws(runs, BootstrapParams(draws=draws, seed=seed))


def test_residual_draws_keep_every_run_and_resample_the_pool():
    plan = _plan()
    fitted = np.array([2.0, 2.5, 3.0, 3.5, 4.0, 4.5])
    pool = np.array([-0.02, -0.01, 0.0, 0.01, 0.02, 0.0])
    losses = residual_losses(fitted, pool, np.arange(6), plan)
    assert losses.shape == (400, 6)
    ratios = np.log(losses / fitted)
    assert set(np.round(ratios.ravel(), 12)) <= set(np.round(pool, 12))
    twice = residual_losses(fitted, pool * 2, np.arange(6), plan, factor=1.0)
    assert np.allclose(np.log(twice / fitted), 2 * ratios)  # the same picks, paired
    scaled = residual_losses(fitted, pool, np.arange(6), plan, factor=1.5)
    assert np.allclose(np.log(scaled / fitted), 1.5 * ratios)


def test_zero_residuals_give_the_fit_itself():
    plan = _plan()
    fitted = np.array([2.0, 2.5, 3.0, 3.5, 4.0, 4.5])
    exact = residual_losses(fitted, np.zeros(6), np.arange(6), plan, factor=1.3)
    assert np.array_equal(exact, np.broadcast_to(fitted, exact.shape))


def test_report_shares_and_the_unreliable_flag():
    ok = BootstrapReport("residuals", draws=1000, failed_draws=150, failed_budget_draws=60,
                         budget_draws=5000)
    assert ok.failed_draw_share == 0.15 and ok.failed_budget_draw_share == 0.012
    assert not ok.unreliable and unreliable_note(ok) is None
    bad = BootstrapReport("residuals", draws=1000, failed_draws=151)
    assert bad.unreliable and bad.failed_budget_draw_share is None
    assert "151 of 1000 bootstrap draws (15%) failed" in unreliable_note(bad)
    doc = bad.to_dict()
    assert doc["unreliable"] is True and doc["unreliable_above_share"] == UNRELIABLE_SHARE
    assert {"failed_draws", "failed_draw_share", "failed_budget_draws",
            "failed_budget_draw_share", "scheme", "draws"} <= set(doc)


def test_intervals_need_ten_finite_samples():
    x = np.arange(100.0)
    assert interval(x, 0.9) == pytest.approx([4.95, 94.05])
    assert interval(np.r_[np.arange(9.0), np.nan, np.inf], 0.95) == [None, None]
    samples = np.stack([x, np.full(100, np.nan)], axis=1)
    lo, hi = intervals_columns(samples, 0.9)
    assert lo[0] == pytest.approx(4.95) and hi[0] == pytest.approx(94.05)
    assert np.isnan(lo[1]) and np.isnan(hi[1])
