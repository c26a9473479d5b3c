"""Budget grouping: planned budgets when given, log-scale clustering otherwise."""

from __future__ import annotations

import numpy as np
import pandas as pd
from hypothesis import given, settings
from hypothesis import strategies as st

from flops_fit.fitting.runs.budgets import assign_budgets, cluster_log_budgets
from flops_fit.parameters.analysis import BudgetGrouping


def _runs(budgets, per_budget=5, jitter=0.0, seed=0, planned=True):
    rng = np.random.default_rng(seed)
    rows = []
    for c in budgets:
        for i in range(per_budget):
            n = 1e6 * (i + 1)
            actual = c * (1 + rng.uniform(-jitter, jitter))
            rows.append(
                {
                    "model_size": n,
                    "num_tokens": actual / (6 * n),
                    "compute": actual,
                    "true_budget": c,
                    **({"compute_budget": c} if planned else {}),
                }
            )
    return pd.DataFrame(rows)


def test_planned_budgets_are_used_as_given():
    df = assign_budgets(_runs([1e17, 1e18, 1e19], jitter=0.02))
    assert list(df["budget"].unique()) == [1e17, 1e18, 1e19]
    assert list(df["budget_id"].unique()) == [0, 1, 2]


def test_clustering_without_a_plan_groups_by_log_gap():
    df = assign_budgets(_runs([1e17, 1e18, 1e19], jitter=0.02, planned=False))
    assert df["budget_id"].nunique() == 3
    for _, g in df.groupby("budget_id"):
        assert g["true_budget"].nunique() == 1
        # geometric mean of the runs' C, within the jitter of the true budget
        assert abs(g["budget"].iloc[0] / g["true_budget"].iloc[0] - 1) < 0.02


def test_budgets_straddling_a_rounding_boundary_stay_together():
    # 0.96e19 and 1.04e19 round to different 1-decimal mantissas in log10 (18.98 vs 19.02
    # round to 19.0 and 19.0, but 9.6e18 and 1.04e19 round apart as mantissas): clustering
    # keeps them in one budget.
    values = np.array([9.6e18, 9.9e18, 1.0e19, 1.04e19, 3.0e19, 3.1e19])
    labels = cluster_log_budgets(values)
    assert list(labels) == [0, 0, 0, 0, 1, 1]


def test_wide_chain_is_cut_by_max_width():
    values = np.geomspace(1e18, 1e19, 40)  # gaps of 0.026 dex chain across a decade
    labels = cluster_log_budgets(values, BudgetGrouping(gap_dex=0.05, max_width_dex=0.2))
    assert labels.max() >= 4
    spans = [np.ptp(np.log10(values[labels == k])) for k in np.unique(labels)]
    assert max(spans) <= 0.2 + 1e-12


def test_missing_compute_gets_no_budget():
    df = pd.DataFrame({"model_size": [1e6, np.nan, 2e6], "num_tokens": [1e9, 1e9, np.nan]})
    out = assign_budgets(df)
    assert out["budget_id"].isna().tolist() == [False, True, True]
    assert np.isnan(out["budget"].iloc[1])


@settings(max_examples=60, deadline=None)
@given(
    n_budgets=st.integers(2, 8),
    ratio_dex=st.floats(0.1, 1.0),
    start=st.floats(15.0, 22.0),
    per_budget=st.integers(1, 9),
    seed=st.integers(0, 10_000),
    planned=st.booleans(),
)
def test_grouping_is_invariant_to_two_percent_jitter(
    n_budgets, ratio_dex, start, per_budget, seed, planned
):
    """Budgets >= 0.1 dex (x1.26) apart, every run's C off by up to +-2 %: grouped as planned."""
    budgets = 10 ** (start + ratio_dex * np.arange(n_budgets))
    exact = assign_budgets(_runs(budgets, per_budget, 0.0, seed, planned))
    jittered = assign_budgets(_runs(budgets, per_budget, 0.02, seed, planned))
    assert exact["budget_id"].tolist() == jittered["budget_id"].tolist()
    assert jittered.groupby("budget_id")["true_budget"].nunique().eq(1).all()
    assert jittered["budget_id"].nunique() == n_budgets


def test_no_max_width_chains_close_budgets():
    values = np.geomspace(1e18, 1e19, 40)
    assert cluster_log_budgets(values, BudgetGrouping(max_width_dex=None)).max() == 0
    close = _runs([1e17, 1.1e17], planned=False)  # 0.04 dex apart
    assert assign_budgets(close)["budget_id"].nunique() == 1
    assert assign_budgets(close, BudgetGrouping(gap_dex=0.03))["budget_id"].nunique() == 2
