"""The analysis domain functions that reporting uses, in one place.

Reporting never recomputes the science: budget grouping, the Approach 3 surface L(N, D) and its
compute-optimal allocation come from `flops_fit.fitting` (docs/INTERFACES.md, "Domain functions
reporting may import"). They are imported lazily so that reporting still renders a report (with
the missing pieces named) in a checkout whose analysis package is absent or broken.
"""

from __future__ import annotations

import importlib
from types import ModuleType
from typing import Any

import numpy as np
import pandas as pd


class AnalysisUnavailable(RuntimeError):
    """A domain function of `flops_fit.fitting` that reporting needs cannot be imported."""


def _module(name: str) -> ModuleType:
    try:
        return importlib.import_module(f"flops_fit.fitting.{name}")
    except ModuleNotFoundError as exc:
        if exc.name and exc.name.startswith("flops_fit.fitting"):
            raise AnalysisUnavailable(
                f"flops_fit.fitting.{name} is not available ({exc}); the analysis package "
                "provides it"
            ) from exc
        raise


def assign_budgets(results: pd.DataFrame) -> pd.DataFrame:
    """Add `budget` (each run's representative compute budget) using analysis's grouping.

    Falls back to the planned `compute_budget` only while `flops_fit.fitting.budgets` is absent;
    planned sweeps put every run exactly on its budget, so the two agree for them.
    """
    try:
        grouped = _module("budgets").assign_budgets(results.copy())
    except AnalysisUnavailable:
        grouped = results.copy()
        grouped["budget"] = pd.to_numeric(grouped["compute_budget"], errors="coerce")
        return grouped
    if "budget" not in grouped.columns:
        raise AnalysisUnavailable("fitting.budgets.assign_budgets returned no 'budget' column")
    return grouped


def parametric_loss(model_size: Any, num_tokens: Any, params: dict[str, Any]) -> np.ndarray:
    """L(N, D) of the fitted Approach 3 surface, from `fitting.parametric.parametric_loss`."""
    fn = _module("parametric").parametric_loss
    return np.asarray(fn(np.asarray(model_size, float), np.asarray(num_tokens, float), params),
                      dtype=float)


def optimal_allocation(budget: Any, params: dict[str, Any]) -> tuple[np.ndarray, np.ndarray]:
    """(N_opt, D_opt) on the fitted surface for compute budget(s) C."""
    fn = _module("parametric").optimal_allocation
    n_opt, d_opt = fn(np.asarray(budget, float), params)
    return np.asarray(n_opt, dtype=float), np.asarray(d_opt, dtype=float)
