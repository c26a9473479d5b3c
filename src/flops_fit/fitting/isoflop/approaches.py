"""Approaches 1 and 2 on the analysis runs table: per-budget optima and the power laws through
them; Approach 2's laws with paired bootstrap draws and percentile intervals.

The estimators themselves (a budget's lowest-loss run, its parabola vertex, a power law in log
space, all vectorised over draws) are `fitting.isoflop.estimators`; this module applies them to every
budget of a study, decides which budgets the laws use (`analysis.budgets.min_runs`, valid
parabolas) and collects what the summary document reports (`fitting.outputs.scaling_laws`).

The bootstrap (`fitting.bootstrap`): Approach 2 refits every budget's parabolas in every draw.
With the residual bootstrap (default) a draw's losses are the budget's parabola fitted values
times exp(a residual resampled from the parabolas of all the budgets the laws use, relative,
leverage-corrected r/sqrt(1-h), centred, and scaled by the small-sample factor t/z of their
sum(m - 3) degrees of freedom). A budget whose parabola fails in a draw (no minimum, vertex
outside the sampled sizes, too few distinct sizes) fails that whole draw: the draw is left out
of the percentiles and counted (`BootstrapReport`), never fitted without the budget. Approach 1
gets no interval (`APPROACH_1_NO_INTERVAL`).
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from flops_fit.fitting.bootstrap import (
    BootstrapReport,
    Resampling,
    bootstrap_warnings,
    interval,
    plan_draws,
    residual_losses,
    small_sample_factor,
    standardised_residuals,
    unreliable_note,
)
from flops_fit.fitting.isoflop.estimators import (
    BudgetRuns,
    PowerLaw,
    approach1_point,
    approach2_draws,
    approach2_point,
    approach2_residuals,
    budget_groups,
    fit_power_law,
    fit_power_law_draws,
)
from flops_fit.fitting.isoflop.lean import lean_warning
from flops_fit.fitting.threads import limit_blas_threads
from flops_fit.parameters.analysis import AnalysisConfig
from flops_fit.schema import ISOFLOP_APPROACHES, LAW_COLUMNS

log = logging.getLogger(__name__)

#: approach 2's parabola fields, as `optimal_points` lists them
PARABOLA_FIELDS = ("parabola_c2", "parabola_c1", "parabola_c0", "log10_n_min", "log10_n_max")
_OPTIMUM_FIELDS = ("model_size", "num_tokens", "loss")
#: why Approach 1 has no interval (the document and the report say so)
APPROACH_1_NO_INTERVAL = (
    "no interval: Approach 1's optimum is the sampled size with the lowest loss, so its error "
    "is set by the spacing of the sampled sizes more than by the noise, and a bootstrap of "
    "that choice does not measure it (resampling runs gave intervals 0.18 wide in the exponent "
    "and a decade wide in N_opt with noise-free runs, whose optimum was exact); use Approach 2 "
    "or 3 for intervals"
)


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
    #: what the interval says about itself: why there is none, or that it is unreliable
    interval_note: str | None = None

    @classmethod
    def from_power_law(
        cls,
        law: PowerLaw | None,
        coefficient_draws: np.ndarray | None,
        exponent_draws: np.ndarray | None,
        level: float,
        interval_note: str | None = None,
    ) -> LawFit:
        if law is None:
            return cls(coefficient=None, exponent=None, interval_note=interval_note)
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
            interval_note=interval_note,
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
        out["interval_note"] = self.interval_note
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
    #: the bootstrap's scheme, draws and failures; None without one (and for Approach 1)
    bootstrap: BootstrapReport | None = None
    #: why the laws have no interval, or that it is unreliable (None: a reliable interval)
    interval_note: str | None = None

    @property
    def excluded(self) -> list[BudgetOptimum]:
        """The budgets the laws leave out, each with its reason."""
        return [p for p in self.points if not p.valid]


def fit_isoflop_approaches(runs: pd.DataFrame, cfg: AnalysisConfig) -> dict[str, IsoflopFit]:
    """Approaches 1 and 2 (keyed by name): per-budget optima, power laws, bootstrap draws."""
    t0 = time.perf_counter()
    groups = budget_groups(runs)
    resampling = plan_draws(runs, cfg.bootstrap)
    out: dict[str, IsoflopFit] = {}
    with limit_blas_threads(cfg.blas_threads):
        for approach in ISOFLOP_APPROACHES:
            out[approach] = fit_isoflop_approach(approach, groups, resampling, cfg)
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
    approach: str, groups: list[BudgetRuns], resampling: Resampling | None, cfg: AnalysisConfig
) -> IsoflopFit:
    """One approach on the budgets `groups`; Approach 2 bootstrapped with `resampling`."""
    points = [budget_optimum(approach, g, cfg.budgets.min_runs) for g in groups]
    for p in points:
        if not p.valid:
            # too few runs is a budget's known shape (a steered study's one-run edge budgets;
            # scaling_laws.json's warnings count them), a failed parabola is news
            level = logging.INFO if p.n_runs < cfg.budgets.min_runs else logging.WARNING
            log.log(level, "%s: %s", approach, left_out_budget(approach, p))
    valid = [p for p in points if p.valid]
    valid_groups = [g for g, p in zip(groups, points, strict=True) if p.valid]
    budgets = np.array([p.compute_budget for p in valid])
    level = cfg.confidence_level
    report, per_budget_draws, bw, note = None, None, None, None
    if approach == "approach_1":
        note = APPROACH_1_NO_INTERVAL
    elif resampling is not None and len(valid_groups) >= 2:
        report, per_budget_draws, bw = approach2_bootstrap(valid_groups, resampling, level)
        note = unreliable_note(report) or (report.note if report.draws == 0 else None)
    laws: dict[str, LawFit] = {}
    for key, col in LAW_COLUMNS.items():
        law = fit_power_law(budgets, [getattr(p, col) for p in valid]) if len(valid) >= 2 else None
        coef_d = exp_d = None
        if law is not None and per_budget_draws is not None:
            coef_d, exp_d = fit_power_law_draws(budgets, per_budget_draws[col], bw)
        laws[key] = LawFit.from_power_law(law, coef_d, exp_d, level, note)
    fit = IsoflopFit(
        approach=approach, points=points, laws=laws, bootstrap=report, interval_note=note
    )
    fit.warnings.extend(isoflop_warnings(fit))
    if approach == "approach_2":
        vertices = [p.model_size if p.valid else None for p in points]
        leaning = lean_warning(groups, vertices, cfg.outliers.min_scale)
        if leaning is not None:
            fit.warnings.append(leaning)
    return fit


def approach2_bootstrap(
    groups: list[BudgetRuns], resampling: Resampling, level: float
) -> tuple[BootstrapReport, dict[str, np.ndarray] | None, np.ndarray | None]:
    """Approach 2's optimum of every budget in every draw: (report, draws per optimum field
    (B, k) with NaN in failed draws, budget weights (B, k) for the power laws).

    A budget whose parabola fails in a draw fails the whole draw; in `budgets` mode a budget
    the draw did not pick is simply not in it (weight 0), and a draw with fewer than two
    budgets fails.
    """
    scheme, draws = resampling.mode, resampling.draws
    k = len(groups)
    dof = factor = None
    if resampling.residual:
        parts = [approach2_residuals(g) for g in groups]
        dof = int(sum(g.loss.size - 3 for g in groups))
        if dof < 1:
            report = BootstrapReport(
                scheme=scheme,
                draws=0,
                failed_draws=0,
                note="no interval: every budget has exactly 3 sizes, so its parabola passes "
                "through them and leaves no residuals to resample",
            )
            return report, None, None
        pool = standardised_residuals(
            np.concatenate([p["residuals"] for p in parts]),
            np.concatenate([p["leverage"] for p in parts]),
        )
        factor = small_sample_factor(dof, level)
        results = [
            approach2_draws(
                g, losses=residual_losses(p["fitted"], pool, g.index, resampling, factor)
            )
            for g, p in zip(groups, parts, strict=True)
        ]
        bw = np.ones((draws, k))
    else:
        weights = resampling.weights
        results = [approach2_draws(g, weights=weights) for g in groups]
        if scheme == "budgets":
            bw = np.stack([weights[:, g.index[0]] for g in groups], axis=1)
        else:
            bw = np.ones((draws, k))
    in_draw = bw > 0
    failed_budget = np.stack([r["code"] != "" for r in results], axis=1) & in_draw
    failed = failed_budget.any(axis=1) | (in_draw.sum(axis=1) < 2)
    per_budget = {
        col: np.where(failed[:, None], np.nan, np.stack([r[col] for r in results], axis=1))
        for col in _OPTIMUM_FIELDS
    }
    report = BootstrapReport(
        scheme=scheme,
        draws=draws,
        failed_draws=int(failed.sum()),
        failed_budget_draws=int(failed_budget.sum()),
        budget_draws=int(in_draw.sum()),
        residual_dof=dof,
        small_sample_factor=factor,
        note=FAILED_BUDGET_POLICY,
    )
    return report, per_budget, bw


#: how Approach 2's bootstrap treats a budget whose parabola fails in a draw (the document says)
FAILED_BUDGET_POLICY = (
    "a budget whose parabola fails in a draw (no minimum, vertex outside the sampled sizes, "
    "fewer than 3 distinct sizes) fails the whole draw, which is left out of the percentiles "
    "and counted in failed_draws; a draw is never fitted without one of the budgets the point "
    "estimate uses"
)


# Warnings in the words the report shows; none of them changes a number.
POOR_R2 = 0.9  # a power law through the optima with a lower R^2 is flagged


def left_out_budget(approach: str, point: BudgetOptimum) -> str:
    return (
        f"budget {point.compute_budget:.3g} FLOPs left out of the {approach} fit: {point.reason}"
    )


def isoflop_warnings(fit: IsoflopFit) -> list[str]:
    """Budgets left out, poor power laws, too few budgets, failed bootstrap draws."""
    warnings = [left_out_budget(fit.approach, p) for p in fit.excluded]
    for key, law in fit.laws.items():
        if law.r2 is not None and law.r2 < POOR_R2:
            warnings.append(f"{key} power law fits poorly (R^2 = {law.r2:.3f})")
    n_valid = len(fit.points) - len(fit.excluded)
    if n_valid < 2:
        warnings.append(f"only {n_valid} usable budget(s): no power law can be fitted")
    elif n_valid == 2:
        warnings.append(
            "only 2 usable budgets: the power laws pass exactly through them "
            "(R^2 undefined) and their intervals rest on very little"
        )
    if fit.bootstrap is not None:
        warnings.extend(bootstrap_warnings(fit.approach, fit.bootstrap))
    return warnings
