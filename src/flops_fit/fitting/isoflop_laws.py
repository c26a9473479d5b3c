"""Approaches 1 and 2 on the analysis runs table: per-budget optima and the power laws through
them, each with paired bootstrap draws and percentile intervals.

The estimators themselves (a budget's lowest-loss run, its parabola vertex, a power law in log
space, all vectorised over draws) are `fitting.isoflop`; this module applies them to every
budget of a study, decides which budgets the laws use (`analysis.budgets.min_runs`, valid
parabolas) and collects what the summary document reports (`fitting.summary`).
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from flops_fit.fitting.bootstrap import interval, run_weights
from flops_fit.fitting.diagnostics import isoflop_warnings, left_out_budget
from flops_fit.fitting.isoflop import (
    BudgetRuns,
    PowerLaw,
    approach1_draws,
    approach1_point,
    approach2_draws,
    approach2_point,
    budget_groups,
    fit_power_law,
    fit_power_law_draws,
)
from flops_fit.fitting.threads import limit_blas_threads
from flops_fit.parameters.analysis import AnalysisConfig
from flops_fit.schema import ISOFLOP_APPROACHES, LAW_COLUMNS

log = logging.getLogger(__name__)

#: approach 2's parabola fields, as `optimal_points` lists them
PARABOLA_FIELDS = ("parabola_c2", "parabola_c1", "parabola_c0", "log10_n_min", "log10_n_max")
_OPTIMUM_FIELDS = ("model_size", "num_tokens", "loss")


@dataclass(frozen=True)
class BudgetOptimum:
    """One budget's optimum by one approach, and whether the power laws use it (and why not)."""

    compute_budget: float
    budget_id: int
    n_runs: int
    model_size: float
    num_tokens: float
    loss: float
    valid: bool
    reason: str
    #: approach 2 only: the loss-vs-log10 N parabola and the sampled range (PARABOLA_FIELDS)
    parabola: dict[str, float] | None = None


@dataclass(frozen=True)
class LawFit:
    """A power law y = k C^e of compute, its bootstrap draws and percentile intervals."""

    coefficient: float | None
    exponent: float | None
    r2: float | None = None
    n_budgets: int | None = None
    interval: dict[str, list[float | None]] = field(
        default_factory=lambda: {"coefficient": [None, None], "exponent": [None, None]}
    )
    coefficient_draws: np.ndarray | None = None
    exponent_draws: np.ndarray | None = None

    @classmethod
    def from_power_law(
        cls,
        law: PowerLaw | None,
        coefficient_draws: np.ndarray | None,
        exponent_draws: np.ndarray | None,
        level: float,
    ) -> LawFit:
        if law is None:
            return cls(coefficient=None, exponent=None)
        return cls(
            coefficient=law.coefficient,
            exponent=law.exponent,
            r2=law.r2,
            n_budgets=law.n_points,
            interval={
                "coefficient": _interval_or_none(coefficient_draws, level),
                "exponent": _interval_or_none(exponent_draws, level),
            },
            coefficient_draws=coefficient_draws,
            exponent_draws=exponent_draws,
        )

    def to_dict(self) -> dict[str, Any]:
        """The law as the scaling_laws document holds it (no draws)."""
        out: dict[str, Any] = {
            "coefficient": self.coefficient,
            "exponent": self.exponent,
            "r2": self.r2,
        }
        if self.n_budgets is not None:
            out["n_budgets"] = self.n_budgets
        out["interval"] = {k: list(v) for k, v in self.interval.items()}
        return out


def _interval_or_none(draws: np.ndarray | None, level: float) -> list[float | None]:
    return interval(draws, level) if draws is not None else [None, None]


@dataclass
class IsoflopFit:
    """Approach 1 or 2 on a study: per-budget optima, the laws n_opt, d_opt, l_opt, warnings."""

    approach: str
    points: list[BudgetOptimum]
    laws: dict[str, LawFit]  # keys of schema.LAW_COLUMNS
    warnings: list[str] = field(default_factory=list)

    @property
    def excluded(self) -> list[BudgetOptimum]:
        """The budgets the laws leave out, each with its reason."""
        return [p for p in self.points if not p.valid]


def fit_isoflop_approaches(runs: pd.DataFrame, cfg: AnalysisConfig) -> dict[str, IsoflopFit]:
    """Approaches 1 and 2 (keyed by name): per-budget optima, power laws, bootstrap draws."""
    t0 = time.perf_counter()
    groups = budget_groups(runs)
    weights = run_weights(runs, cfg.bootstrap)
    out: dict[str, IsoflopFit] = {}
    with limit_blas_threads(cfg.blas_threads):
        for approach in ISOFLOP_APPROACHES:
            out[approach] = fit_isoflop_approach(approach, groups, weights, cfg)
    log.info(
        "Approaches 1-2 fitted with %s bootstrap draws in %.2f s",
        cfg.bootstrap.draws if cfg.bootstrap.active else 0,
        time.perf_counter() - t0,
    )
    return out


def budget_optimum(approach: str, group: BudgetRuns, min_runs: int) -> BudgetOptimum:
    """`group`'s optimum by `approach`; invalid with fewer than `min_runs` runs."""
    if approach == "approach_1":
        pt = {**approach1_point(group), "valid": True, "reason": ""}
    else:
        pt = approach2_point(group)
    valid, reason = bool(pt["valid"]), str(pt["reason"])
    if group.loss.size < min_runs:
        valid = False
        reason = (
            f"only {group.loss.size} run(s) in this budget (analysis.budgets.min_runs"
            f" = {min_runs})"
        )
    return BudgetOptimum(
        compute_budget=group.budget,
        budget_id=group.budget_id,
        n_runs=int(group.loss.size),
        **{k: pt[k] for k in _OPTIMUM_FIELDS},
        valid=valid,
        reason=reason,
        parabola={k: pt[k] for k in PARABOLA_FIELDS} if approach == "approach_2" else None,
    )


def fit_isoflop_approach(
    approach: str, groups: list[BudgetRuns], weights: np.ndarray | None, cfg: AnalysisConfig
) -> IsoflopFit:
    """One approach on the budgets `groups`, bootstrapped over the rows of `weights`."""
    points = [budget_optimum(approach, g, cfg.budgets.min_runs) for g in groups]
    for p in points:
        if not p.valid:
            log.warning("%s: %s", approach, left_out_budget(approach, p))
    valid = [p for p in points if p.valid]
    valid_groups = [g for g, p in zip(groups, points, strict=True) if p.valid]
    budgets = np.array([p.compute_budget for p in valid])
    per_budget_draws = None
    if weights is not None and valid_groups:
        fn = approach1_draws if approach == "approach_1" else approach2_draws
        draws = [fn(g, weights) for g in valid_groups]
        per_budget_draws = {
            col: np.stack([d[col] for d in draws], axis=1) for col in _OPTIMUM_FIELDS
        }
        if cfg.bootstrap.resample == "budgets":
            bw = np.stack([weights[:, g.index[0]] for g in valid_groups], axis=1)
        else:
            bw = np.ones((weights.shape[0], len(valid_groups)))
    laws: dict[str, LawFit] = {}
    for key, col in LAW_COLUMNS.items():
        law = fit_power_law(budgets, [getattr(p, col) for p in valid]) if len(valid) >= 2 else None
        coef_d = exp_d = None
        if law is not None and per_budget_draws is not None:
            coef_d, exp_d = fit_power_law_draws(budgets, per_budget_draws[col], bw)
        laws[key] = LawFit.from_power_law(law, coef_d, exp_d, cfg.confidence_level)
    fit = IsoflopFit(approach=approach, points=points, laws=laws)
    fit.warnings.extend(isoflop_warnings(fit))
    return fit
