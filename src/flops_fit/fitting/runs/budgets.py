"""Group runs into IsoFLOP budgets: the ONE grouping used by analysis and reporting alike.

A run's budget key is its planned `compute_budget` when the plan supplies one, else its compute
C (a `compute` column, else `planned_flops`, else 6·N·D). Keys are clustered on log10 scale:
sorted, a new budget starts wherever the next key is more than `gap_dex` decades above the
previous one, or more than `max_width_dex` above the first key of the current budget (so a
continuous spread of digitised runs is cut into budgets instead of chained into one). Never by
rounding to a number of decimals: rounding cuts straight through a budget whose runs scatter
around a boundary (1.04e19 and 0.96e19 round apart), clustering does not. With the defaults,
planned budgets a factor of 1.26 or more apart and runs within +-2 % of them are grouped
exactly as planned, whatever the jitter. The thresholds are `params:analysis.budgets`
(`BudgetGrouping`; its defaults are conf/base's).

Each budget's representative C (`budget`) is the planned value when all its runs share one,
else the geometric mean of its runs' keys.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from flops_fit.parameters.analysis import BudgetGrouping
from flops_fit.planning.flops import compute_6nd

BUDGET_KEY_COLUMNS = ("compute_budget", "compute", "planned_flops", "flops_6nd")


def cluster_log_budgets(values: np.ndarray, grouping: BudgetGrouping | None = None) -> np.ndarray:
    """Cluster labels 0..k-1 (in increasing C) for positive finite `values`; -1 for the rest."""
    grouping = grouping or BudgetGrouping()
    gap_dex, max_width_dex = grouping.gap_dex, grouping.max_width_dex
    values = np.asarray(values, dtype=float)
    labels = np.full(values.shape, -1, dtype=int)
    ok = np.isfinite(values) & (values > 0)
    if not ok.any():
        return labels
    idx = np.flatnonzero(ok)
    logs = np.log10(values[idx])
    order = np.argsort(logs, kind="stable")
    sorted_logs = logs[order]
    cluster = np.zeros(len(sorted_logs), dtype=int)
    current, first = 0, sorted_logs[0]
    for i in range(1, len(sorted_logs)):
        gap = sorted_logs[i] - sorted_logs[i - 1]
        too_wide = max_width_dex is not None and sorted_logs[i] - first > max_width_dex
        if gap > gap_dex or too_wide:
            current += 1
            first = sorted_logs[i]
        cluster[i] = current
    labels[idx[order]] = cluster
    return labels


def budget_keys(df: pd.DataFrame) -> pd.Series:
    """Per run: the planned compute_budget where given, else its compute (see module doc)."""
    key = pd.Series(np.nan, index=df.index, dtype=float)
    for col in BUDGET_KEY_COLUMNS:
        if col in df.columns:
            vals = pd.to_numeric(df[col], errors="coerce").astype(float)
            fill = key.isna() & np.isfinite(vals) & (vals > 0)
            key[fill] = vals[fill]
    if {"model_size", "num_tokens"} <= set(df.columns):
        c6 = compute_6nd(
            pd.to_numeric(df["model_size"], errors="coerce").astype(float),
            pd.to_numeric(df["num_tokens"], errors="coerce").astype(float),
        )
        fill = key.isna() & np.isfinite(c6) & (c6 > 0)
        key[fill] = c6[fill]
    return key


def assign_budgets(df: pd.DataFrame, grouping: BudgetGrouping | None = None) -> pd.DataFrame:
    """A copy of `df` with `budget_id` (0 = smallest budget; <NA> where no C is known) and
    `budget` (the group's representative C, NaN where unknown)."""
    out = df.copy()
    keys = budget_keys(out)
    labels = cluster_log_budgets(keys.to_numpy(), grouping)
    rep = np.full(len(out), np.nan)
    planned = (
        pd.to_numeric(out["compute_budget"], errors="coerce").astype(float).to_numpy()
        if "compute_budget" in out.columns
        else np.full(len(out), np.nan)
    )
    keys_np = keys.to_numpy()
    for label in np.unique(labels[labels >= 0]):
        members = labels == label
        plan_vals = planned[members]
        if np.all(np.isfinite(plan_vals)) and np.ptp(plan_vals) <= 1e-9 * abs(plan_vals[0]):
            rep[members] = plan_vals[0]
        else:
            rep[members] = 10 ** np.mean(np.log10(keys_np[members]))
    out["budget_id"] = pd.array(np.where(labels >= 0, labels, 0), dtype="Int64")
    out.loc[labels < 0, "budget_id"] = pd.NA
    out["budget"] = rep
    return out
