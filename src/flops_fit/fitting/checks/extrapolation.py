"""The extrapolation check: leave the largest budget out, refit, predict its optimum.

How far do the laws carry? Every approach is refitted on the budgets below the held-out one
only, and its predicted loss and N_opt at the held-out budget are compared with that budget's
own optimum.
"""

from __future__ import annotations

import logging
from dataclasses import asdict, dataclass, field, replace
from typing import Any

import numpy as np
import pandas as pd

from flops_fit.fitting.isoflop.estimators import (
    approach1_point,
    approach2_point,
    budget_groups,
    fit_power_law,
)
from flops_fit.fitting.laws.choice import MIN_FIT_BUDGETS
from flops_fit.fitting.laws.families import DEFAULT_LAW
from flops_fit.fitting.laws.study import fit_laws, params_mapping
from flops_fit.fitting.surface.compute_model import ComputeModel, optimal_allocation
from flops_fit.fitting.surface.fit import ParametricFitError, fit_parametric
from flops_fit.fitting.surface.law import parametric_loss
from flops_fit.fitting.surface.study import SurfaceFit
from flops_fit.fitting.threads import limit_blas_threads
from flops_fit.parameters.analysis import AnalysisConfig
from flops_fit.schema import APPROACHES, ISOFLOP_APPROACHES

log = logging.getLogger(__name__)

EXTRAPOLATION_MISS = 0.5  # relative N_opt error at the held-out budget that is flagged
#: relative loss error at the held-out budget that is flagged: on Epoch's Chinchilla runs the
#: optimal loss falls 2-4% from one budget to the next (1.5-3x apart), 11% per decade, so a
#: miss above 10% is a decade of compute's worth of progress
LOSS_MISS = 0.1


@dataclass(frozen=True)
class ExtrapolationEntry:
    """One approach's prediction at the held-out budget against that budget's optimum."""

    predicted_loss: float | None = None
    actual_loss: float | None = None
    loss_rel_error: float | None = None
    predicted_n_opt: float | None = None
    actual_n_opt: float | None = None
    n_opt_rel_error: float | None = None
    actual_from: str | None = None
    budgets_fitted: int = 0
    note: str = ""

    @classmethod
    def compare(cls, pred_loss, pred_n, actual, actual_from, n_budgets) -> ExtrapolationEntry:
        actual_loss, actual_n = _num(actual["loss"]), _num(actual["model_size"])
        return cls(
            predicted_loss=_num(pred_loss),
            actual_loss=actual_loss,
            loss_rel_error=_rel(pred_loss, actual_loss),
            predicted_n_opt=_num(pred_n),
            actual_n_opt=actual_n,
            n_opt_rel_error=_rel(pred_n, actual_n),
            actual_from=actual_from,
            budgets_fitted=n_budgets,
        )

    @classmethod
    def empty(cls, note: str) -> ExtrapolationEntry:
        return cls(note=note)


@dataclass
class ExtrapolationCheck:
    held_out_budget: float | None = None
    warnings: list[str] = field(default_factory=list)
    approaches: dict[str, ExtrapolationEntry] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """As the scaling_laws document holds it: one entry per approach beside the budget."""
        return {
            "held_out_budget": self.held_out_budget,
            "warnings": list(self.warnings),
            **{name: asdict(entry) for name, entry in self.approaches.items()},
        }


def _rel(pred, actual) -> float | None:
    if (
        pred is None
        or actual is None
        or not np.isfinite(pred)
        or not np.isfinite(actual)
        or actual == 0
    ):
        return None
    return float((pred - actual) / actual)


def _num(x) -> float | None:
    return float(x) if x is not None and np.isfinite(x) else None


def _surface_on(runs: pd.DataFrame, cfg: AnalysisConfig, surface: SurfaceFit | None,
                held_out: float) -> tuple[dict[str, Any], str]:
    """Approach 3 refitted on `runs` (the budgets below `held_out`) alone, as a params mapping:
    Chinchilla's form, or the pinned family, or (law: auto) the family chosen on these runs'
    own budgets, or, where they are too few to choose, the study's own family pinned; and a
    note when the family checked is not the study's or was not chosen again. The law
    families start from the study's own fits of these runs and of the budgets below (its
    rollout folds: none saw the held-out budget), else from their grids."""
    n, d, loss = (runs[c].to_numpy(float) for c in ("model_size", "num_tokens", "final_loss"))
    fit = fit_parametric(n, d, loss, cfg.approach_3)
    if cfg.law == DEFAULT_LAW:
        return {"law": DEFAULT_LAW, **fit.params}, ""
    below = surface.choice.below if surface is not None and surface.choice is not None else {}
    starts = {name: fits[held_out].theta for name, fits in below.items()
              if held_out in fits and fits[held_out].ok}
    choice, _ = fit_laws(fit, n, d, loss, runs["budget"].to_numpy(float),
                         np.arange(loss.size), None, cfg, starts=starts or None,
                         below=below or None, log_level=logging.DEBUG)
    study_law = surface.law if surface is not None else choice.chosen
    params = {**fit.params, **params_mapping(choice)}
    if choice.chosen == study_law:
        log.info("Extrapolation check: Approach 3 refitted below %.3g FLOPs with the %s law "
                 "(%s)", held_out, study_law, choice.reason)
        return params, ""
    if choice.unchosen:
        # too few budgets below to repeat the choice: the law that answers the study is the one
        # whose extrapolation the user relies on, so it is the one checked (every family was
        # fitted to these runs for the choice)
        if not choice.fits[study_law].ok:
            raise ParametricFitError(f"the study's {study_law} law could not be fitted to the "
                                     "budgets below the held-out one")
        note = (f"checks the study's {study_law} law, pinned: the budgets below the held-out "
                f"one are fewer than {MIN_FIT_BUDGETS + 1} with {cfg.budgets.min_runs}+ runs, "
                "too few to repeat the choice.")
        log.info("Extrapolation check: Approach 3 %s", note)
        return {**params, "law": study_law}, note
    note = (f"checks the {choice.chosen} law, not the study's {study_law} law; on the budgets "
            f"below the held-out one, {choice.reason}.")
    log.info("Extrapolation check: Approach 3 %s", note)
    return params, note


def extrapolation_check(
    runs: pd.DataFrame, cfg: AnalysisConfig, model: ComputeModel,
    surface: SurfaceFit | None = None,
) -> ExtrapolationCheck:
    """Leave the largest budget out, refit every approach, predict its optimum; report errors.

    The held-out budget is the largest with `analysis.budgets.min_runs` runs; every approach is
    refitted on the budgets below it only.

    The held-out budget's "actual" optimum is, for Approach 1, its lowest-loss run; for
    Approaches 2 and 3, its IsoFLOP parabola vertex when valid, else its lowest-loss run
    (`actual_from` says which).
    """
    min_runs = cfg.budgets.min_runs
    groups = budget_groups(runs)
    usable = [g for g in groups if g.loss.size >= min_runs]
    out = ExtrapolationCheck()
    if len(usable) < 3:
        out.warnings.append(
            f"needs at least 3 budgets with {min_runs}+ runs "
            f"(2 to fit, 1 to hold out); found {len(usable)}"
        )
        for approach in APPROACHES:
            out.approaches[approach] = ExtrapolationEntry.empty("not enough budgets")
        return out
    held = usable[-1]
    # Only budgets BELOW the held-out one: a larger budget with too few runs for Approaches
    # 1-2 must not inform Approach 3, or the check would interpolate, not extrapolate.
    rest = [g for g in groups if g.budget < held.budget]
    out.held_out_budget = held.budget
    a1_actual = approach1_point(held)
    a2_actual = approach2_point(held)
    vertex_ok = bool(a2_actual["valid"])
    best_actual, best_from = (
        (a2_actual, "approach_2 parabola vertex")
        if vertex_ok
        else (
            a1_actual,
            f"lowest-loss run (the parabola vertex is not valid: {a2_actual['reason']})",
        )
    )
    with limit_blas_threads(cfg.blas_threads):
        for approach in ISOFLOP_APPROACHES:
            pts = []
            for g in rest:
                if g.loss.size < min_runs:
                    continue
                pt = approach1_point(g) if approach == "approach_1" else approach2_point(g)
                if approach == "approach_1" or pt["valid"]:
                    pts.append((g.budget, pt))
            actual, actual_from = (
                (a1_actual, "lowest-loss run")
                if approach == "approach_1"
                else (best_actual, best_from)
            )
            if len(pts) < 2:
                out.approaches[approach] = ExtrapolationEntry.empty(
                    f"only {len(pts)} usable budget(s) below the held-out one"
                )
                continue
            c = [p[0] for p in pts]
            n_law = fit_power_law(c, [p[1]["model_size"] for p in pts])
            l_law = fit_power_law(c, [p[1]["loss"] for p in pts])
            out.approaches[approach] = ExtrapolationEntry.compare(
                float(l_law(held.budget)), float(n_law(held.budget)), actual, actual_from, len(pts)
            )
        rest_ids = [g.budget_id for g in rest]
        used_rest = runs[runs["used_in_fit"] & runs["budget_id"].isin(rest_ids).fillna(False)]
        try:
            params, note = _surface_on(used_rest, cfg, surface, held.budget)
            n_pred, d_pred = optimal_allocation(held.budget, params, model)
            l_pred = float(parametric_loss(n_pred, d_pred, params))
            out.approaches["approach_3"] = replace(ExtrapolationEntry.compare(
                l_pred, float(n_pred), best_actual, best_from, len(rest)), note=note)
        except ParametricFitError as exc:
            out.approaches["approach_3"] = ExtrapolationEntry.empty(
                f"Approach 3 could not be fitted: {exc}"
            )
    for approach in APPROACHES:
        e = out.approaches[approach]
        if e.loss_rel_error is not None:
            log.info(
                "Extrapolation to %.3g FLOPs, %s: loss error %+.2f%%, N_opt error %+.1f%%",
                held.budget,
                approach,
                100 * e.loss_rel_error,
                100 * (e.n_opt_rel_error or 0.0),
            )
    return out
