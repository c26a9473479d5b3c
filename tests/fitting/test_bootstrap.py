"""Bootstrap resampling shared by every approach, and percentile intervals."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from flops_fit.fitting.bootstrap import interval, intervals_columns, resample_weights, run_weights
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



def test_resampling_runs_draws_n_of_the_used_runs():
    used = np.array([True] * 8 + [False] * 2)
    w = resample_weights(used, np.zeros(10), draws=30, seed=0, mode="runs")
    assert w.shape == (30, 10)
    assert np.all(w.sum(axis=1) == 8) and np.all(w[:, 8:] == 0)
    assert not np.array_equal(w, resample_weights(used, np.zeros(10), 30, 1, "runs"))


def test_run_weights_follow_the_bootstrap_parameters():
    runs = pd.DataFrame(
        {"used_in_fit": [True, True, False, True], "budget_id": pd.array([0, 0, pd.NA, 1])}
    )
    assert run_weights(runs, BootstrapParams(enabled=False)) is None
    assert run_weights(runs, BootstrapParams(draws=0)) is None
    w = run_weights(runs, BootstrapParams(draws=20, seed=4, resample="budgets"))
    assert w.shape == (20, 4) and np.all(w[:, 2] == 0)
    assert np.all(w[:, 0] == w[:, 1])  # one budget, one count


def test_intervals_need_ten_finite_samples():
    x = np.arange(100.0)
    assert interval(x, 0.9) == pytest.approx([4.95, 94.05])
    assert interval(np.r_[np.arange(9.0), np.nan, np.inf], 0.95) == [None, None]
    samples = np.stack([x, np.full(100, np.nan)], axis=1)
    lo, hi = intervals_columns(samples, 0.9)
    assert lo[0] == pytest.approx(4.95) and hi[0] == pytest.approx(94.05)
    assert np.isnan(lo[1]) and np.isnan(hi[1])
