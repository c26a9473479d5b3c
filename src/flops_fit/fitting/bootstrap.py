"""Bootstrap resampling shared by every approach, and percentile intervals.

A draw is a row of resampling counts, one per run of the analysis runs table
(`params:analysis.bootstrap`):

- `resample: runs` (default): n runs drawn with replacement from the n used runs;
- `resample: budgets`: whole budgets drawn with replacement; each run counts as often as its
  budget was drawn. Use it when runs within a budget share errors (same code, same data order).

All approaches use the same draws (same seed), so their intervals are paired. Runs that are
not used in the fits always get count 0.
"""

from __future__ import annotations

from typing import Literal

import numpy as np
import pandas as pd

from flops_fit.parameters.analysis import BootstrapParams


def resample_weights(
    used: np.ndarray,
    budget_ids: np.ndarray,
    draws: int,
    seed: int,
    mode: Literal["runs", "budgets"],
) -> np.ndarray:
    """Counts (draws, n_rows) for the rows of the runs table; unused rows get 0."""
    used = np.asarray(used, dtype=bool)
    rng = np.random.default_rng(np.random.SeedSequence([int(seed), 1]))
    n_rows = used.size
    weights = np.zeros((int(draws), n_rows))
    rows = np.flatnonzero(used)
    if rows.size == 0 or draws <= 0:
        return weights
    if mode == "runs":
        picks = rng.integers(0, rows.size, size=(int(draws), rows.size))
        for d in range(int(draws)):
            weights[d, rows] = np.bincount(picks[d], minlength=rows.size)
        return weights
    ids = np.asarray(budget_ids)[rows]
    unique, inverse = np.unique(ids, return_inverse=True)
    picks = rng.integers(0, unique.size, size=(int(draws), unique.size))
    for d in range(int(draws)):
        counts = np.bincount(picks[d], minlength=unique.size)
        weights[d, rows] = counts[inverse]
    return weights


def run_weights(runs: pd.DataFrame, bootstrap: BootstrapParams) -> np.ndarray | None:
    """The draws (draws, len(runs)) for an analysis runs table; None when the bootstrap is off."""
    if not bootstrap.active:
        return None
    budget_ids = runs["budget_id"].fillna(-1).to_numpy(dtype=int)
    return resample_weights(
        runs["used_in_fit"].to_numpy(bool),
        budget_ids,
        bootstrap.draws,
        bootstrap.seed,
        bootstrap.resample,
    )


def interval(samples, level: float) -> list[float | None]:
    """Central percentile interval of the finite samples; [None, None] if fewer than 10."""
    x = np.asarray(samples, dtype=float)
    x = x[np.isfinite(x)]
    if x.size < 10:
        return [None, None]
    tail = 50.0 * (1.0 - level)
    lo, hi = np.percentile(x, [tail, 100.0 - tail])
    return [float(lo), float(hi)]


def intervals_columns(samples: np.ndarray, level: float) -> tuple[np.ndarray, np.ndarray]:
    """Percentile interval of each column of samples (B, m), NaN-aware; NaN with < 10 finite."""
    x = np.asarray(samples, dtype=float)
    tail = 50.0 * (1.0 - level)
    enough = np.isfinite(x).sum(axis=0) >= 10
    lo = np.full(x.shape[1], np.nan)
    hi = np.full(x.shape[1], np.nan)
    if enough.any():
        with np.errstate(all="ignore"):
            q = np.nanpercentile(x[:, enough], [tail, 100.0 - tail], axis=0)
        lo[enough], hi[enough] = q[0], q[1]
    return lo, hi
