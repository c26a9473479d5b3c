"""The whole analysis as plain functions: runs table in, scaling laws with intervals out.

The Kedro nodes in `pipelines/analysis` are thin adapters over these; a notebook can call them
directly:

    cfg = AnalysisConfig.from_params(params["analysis"])
    runs, summary = prepare_runs(results_df, cfg)
    isoflop = fit_isoflop_approaches(runs, cfg)       # Approaches 1 and 2
    surface = fit_surface(runs, cfg)                   # Approach 3
    check = extrapolation_check(runs, cfg)
    predictions, curves = predict(isoflop, surface, runs, cfg)
    laws = summarise(summary, runs, isoflop, surface, check, predictions, cfg)

Output schemas: docs/INTERFACES.md ("Analysis outputs").
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from flops_fit.fitting.bootstrap import (
    RESAMPLE_MODES,
    interval,
    intervals_columns,
    resample_weights,
)
from flops_fit.fitting.budgets import DEFAULT_GAP_DEX, DEFAULT_MAX_WIDTH_DEX, assign_budgets
from flops_fit.fitting.isoflop import (
    BudgetRuns,
    approach1_draws,
    approach1_point,
    approach2_draws,
    approach2_point,
    budget_groups,
    fit_power_law,
    fit_power_law_draws,
)
from flops_fit.fitting.parametric import (
    MIN_RUNS,
    FitSettings,
    ParametricFitError,
    bootstrap_parametric,
    fit_parametric,
    optimal_allocation,
    parametric_loss,
    theta_to_params,
)
from flops_fit.fitting.runs import check_enough_budgets, normalise_runs, select_runs
from flops_fit.fitting.threads import limit_blas_threads

log = logging.getLogger(__name__)

APPROACHES = ("approach_1", "approach_2", "approach_3")
ISOFLOP_APPROACHES = ("approach_1", "approach_2")
#: law key -> the per-budget column it is fitted to
LAW_COLUMNS = {"n_opt": "model_size", "d_opt": "num_tokens", "l_opt": "loss"}
SURFACE_KEYS = ("E", "A", "B", "alpha", "beta", "a", "b", "G")
OPTIMAL_POINT_COLUMNS = (
    "approach",
    "compute_budget",
    "model_size",
    "num_tokens",
    "loss",
    "tokens_per_param",
    "used_in_fit",
    "reason",
    "parabola_c2",
    "parabola_c1",
    "parabola_c0",
    "log10_n_min",
    "log10_n_max",
)
PREDICTION_COLUMNS = (
    "approach",
    "compute_budget",
    "model_size",
    "model_size_lo",
    "model_size_hi",
    "num_tokens",
    "num_tokens_lo",
    "num_tokens_hi",
    "tokens_per_param",
    "tokens_per_param_lo",
    "tokens_per_param_hi",
    "loss",
    "loss_lo",
    "loss_hi",
)
CURVE_COLUMNS = (
    "approach",
    "compute_budget",
    "model_size",
    "model_size_lo",
    "model_size_hi",
    "num_tokens",
    "num_tokens_lo",
    "num_tokens_hi",
    "loss",
    "loss_lo",
    "loss_hi",
)
C_RATIO_WARN = 0.05  # warn when runs' compute differs from 6 N D by more than this (median)


class AnalysisConfigError(ValueError):
    """`params:analysis` is invalid; the message names the key."""


# ---------------------------------------------------------------------------------------------
# Configuration
# ---------------------------------------------------------------------------------------------


def _number(
    params: Mapping[str, Any],
    key: str,
    default: Any,
    *,
    integer: bool = False,
    minimum: float | None = None,
    allow_none: bool = False,
    prefix: str = "analysis",
):
    value = params.get(key, default)
    if value is None and allow_none:
        return None
    ok = (
        isinstance(value, (int, float))
        and not isinstance(value, bool)
        and math.isfinite(float(value))
    )
    if ok and integer:
        ok = float(value).is_integer()
    if ok and minimum is not None:
        ok = float(value) >= minimum
    if not ok:
        kind = "an integer" if integer else "a number"
        bound = f" >= {minimum:g}" if minimum is not None else ""
        raise AnalysisConfigError(f"params:{prefix}.{key} must be {kind}{bound}, got {value!r}")
    return int(value) if integer else float(value)


def _section(params: Mapping[str, Any], key: str) -> dict[str, Any]:
    value = params.get(key) or {}
    if not isinstance(value, Mapping):
        raise AnalysisConfigError(f"params:analysis.{key} must be a mapping, got {value!r}")
    return dict(value)


@dataclass(frozen=True)
class AnalysisConfig:
    columns: dict[str, Any] = field(default_factory=dict)
    filters: dict[str, Any] = field(default_factory=dict)
    min_budgets: int = 3
    gap_dex: float = DEFAULT_GAP_DEX
    max_width_dex: float | None = DEFAULT_MAX_WIDTH_DEX
    min_runs_per_budget: int = 3
    drop_highest_loss: int = 0
    outliers: dict[str, Any] = field(default_factory=dict)
    fit: FitSettings = field(default_factory=FitSettings)
    bootstrap: bool = True
    draws: int = 1000
    seed: int = 0
    resample: str = "runs"
    extra_starts: int = 2
    confidence_level: float = 0.95
    target_budgets: tuple[float, ...] = (1e21, 1e22, 1e23, 1e24, 1e25)
    curve_points: int = 60
    blas_threads: int | None = 1
    source: str | None = None

    @classmethod
    def from_params(cls, params: Mapping[str, Any] | None) -> AnalysisConfig:
        p = dict(params or {})
        budgets = _section(p, "budgets")
        boot = _section(p, "bootstrap")
        a3 = _section(p, "approach_3")
        outliers = _section(p, "outliers")
        resample = boot.get("resample", "runs")
        if resample not in RESAMPLE_MODES:
            raise AnalysisConfigError(
                f"params:analysis.bootstrap.resample must be one of "
                f"{RESAMPLE_MODES}, got {resample!r}"
            )
        targets = p.get("target_budgets", cls.target_budgets)
        if (
            not isinstance(targets, (list, tuple))
            or not targets
            or not all(
                isinstance(t, (int, float)) and not isinstance(t, bool) and t > 0 for t in targets
            )
        ):
            raise AnalysisConfigError(
                f"params:analysis.target_budgets must be a non-empty list "
                f"of positive FLOP counts, got {targets!r}"
            )
        level = _number(p, "confidence_level", 0.95)
        if not 0 < level < 1:
            raise AnalysisConfigError(
                f"params:analysis.confidence_level must be in (0, 1), got {level}"
            )
        columns = _section(p, "columns")
        filters = _section(p, "filter")
        try:
            fit = FitSettings.from_params(
                {
                    "delta": a3.get("huber_delta"),
                    "alpha_grid": a3.get("alpha_grid"),
                    "beta_grid": a3.get("beta_grid"),
                    "n_starts": a3.get("n_starts"),
                    "n_polish": a3.get("n_polish"),
                }
            )
        except (TypeError, ValueError) as exc:
            raise AnalysisConfigError(f"params:analysis.approach_3: {exc}") from exc
        draws = _number(boot, "draws", 1000, integer=True, minimum=0, prefix="analysis.bootstrap")
        return cls(
            columns=columns,
            filters=filters,
            min_budgets=_number(p, "min_budgets", 3, integer=True, minimum=2),
            gap_dex=_number(
                budgets, "gap_dex", DEFAULT_GAP_DEX, minimum=1e-9, prefix="analysis.budgets"
            ),
            max_width_dex=_number(
                budgets,
                "max_width_dex",
                DEFAULT_MAX_WIDTH_DEX,
                minimum=1e-9,
                allow_none=True,
                prefix="analysis.budgets",
            ),
            min_runs_per_budget=_number(
                budgets, "min_runs", 3, integer=True, minimum=1, prefix="analysis.budgets"
            ),
            drop_highest_loss=_number(p, "drop_highest_loss", 0, integer=True, minimum=0),
            outliers=outliers,
            fit=fit,
            bootstrap=bool(boot.get("enabled", True)) and draws > 0,
            draws=draws,
            seed=_number(boot, "seed", 0, integer=True, prefix="analysis.bootstrap"),
            resample=resample,
            extra_starts=_number(
                boot, "extra_starts", 2, integer=True, minimum=0, prefix="analysis.bootstrap"
            ),
            confidence_level=level,
            target_budgets=tuple(float(t) for t in targets),
            curve_points=_number(p, "curve_points", 60, integer=True, minimum=2),
            blas_threads=_number(p, "blas_threads", 1, integer=True, minimum=1, allow_none=True),
            source=p.get("source") or None,
        )

    def bootstrap_meta(self) -> dict[str, Any]:
        return {
            "draws": self.draws if self.bootstrap else 0,
            "seed": self.seed,
            "resample": self.resample,
        }


# ---------------------------------------------------------------------------------------------
# Runs
# ---------------------------------------------------------------------------------------------


def prepare_runs(
    table: Any,
    cfg: AnalysisConfig,
    source: str | None = None,
) -> tuple[pd.DataFrame, dict[str, Any]]:
    """Normalise, group into budgets, select; returns (runs table, summary for the metadata)."""
    attrs = getattr(table, "attrs", {}) or {}
    label = cfg.source or source or attrs.get("source") or "the results dataset"
    runs = normalise_runs(table, cfg.columns, label, cfg.filters)
    columns_used = dict(runs.attrs.get("columns_used", {}))
    runs = assign_budgets(runs, cfg.gap_dex, cfg.max_width_dex)
    runs = select_runs(runs, cfg.drop_highest_loss, cfg.outliers)
    runs.attrs["columns_used"] = columns_used
    check_enough_budgets(runs, cfg.min_budgets, label)
    excluded = runs[~runs["used_in_fit"]]
    for _, row in excluded.iterrows():
        log.info("Run %s left out: %s", row["experiment_id"], row["reason"])
    summary = {
        "source": label,
        "columns_used": columns_used,
        "n_runs": int(len(runs)),
        "n_runs_used": int(runs["used_in_fit"].sum()),
    }
    log.info(
        "Analysis runs: %d of %d used, %d budgets, from %s",
        summary["n_runs_used"],
        summary["n_runs"],
        runs.loc[runs["used_in_fit"], "budget_id"].nunique(),
        label,
    )
    return runs, summary


def coerce_runs(runs: pd.DataFrame) -> pd.DataFrame:
    """The runs table as `prepare_runs` made it, after a CSV round trip (types, empty reasons)."""
    out = runs.copy()
    for col in ("model_size", "num_tokens", "compute", "compute_budget", "final_loss", "budget"):
        if col in out.columns:
            out[col] = pd.to_numeric(out[col], errors="coerce").astype(float)
    out["budget_id"] = pd.to_numeric(out["budget_id"], errors="coerce").astype("Int64")
    used = out["used_in_fit"]
    if used.dtype != bool:
        used = used.astype(str).str.strip().str.lower().isin(["true", "1", "yes"])
    out["used_in_fit"] = used.astype(bool)
    out["reason"] = out["reason"].where(out["reason"].notna(), "").astype(str)
    out["experiment_id"] = out["experiment_id"].astype(str)
    return out.reset_index(drop=True)


def _weights(runs: pd.DataFrame, cfg: AnalysisConfig) -> np.ndarray | None:
    if not cfg.bootstrap:
        return None
    budget_ids = runs["budget_id"].fillna(-1).to_numpy(dtype=int)
    return resample_weights(
        runs["used_in_fit"].to_numpy(bool), budget_ids, cfg.draws, cfg.seed, cfg.resample
    )


def _compute_ratios(runs: pd.DataFrame) -> tuple[dict[int, float], float]:
    """Median of 6 N D / compute per budget and overall (1 when compute is 6 N D)."""
    used = runs[runs["used_in_fit"]]
    ratio = 6.0 * used["model_size"] * used["num_tokens"] / used["compute"]
    ratio = ratio.where(np.isfinite(ratio) & (ratio > 0))
    by_budget = ratio.groupby(used["budget_id"]).median().dropna()
    overall = float(ratio.median()) if ratio.notna().any() else 1.0
    return {int(k): float(v) for k, v in by_budget.items()}, overall


# ---------------------------------------------------------------------------------------------
# Approaches 1 and 2
# ---------------------------------------------------------------------------------------------


def _law_entry(law, coef_draws, exp_draws, level) -> dict[str, Any]:
    if law is None:
        return {
            "coefficient": None,
            "exponent": None,
            "r2": None,
            "interval": {"coefficient": [None, None], "exponent": [None, None]},
        }
    return {
        "coefficient": law.coefficient,
        "exponent": law.exponent,
        "r2": law.r2,
        "n_budgets": law.n_points,
        "interval": {
            "coefficient": interval(coef_draws, level) if coef_draws is not None else [None] * 2,
            "exponent": interval(exp_draws, level) if exp_draws is not None else [None] * 2,
        },
    }


def fit_isoflop_approaches(runs: pd.DataFrame, cfg: AnalysisConfig) -> dict[str, Any]:
    """Approaches 1 and 2: per-budget optima, power laws, bootstrap draws, warnings."""
    t0 = time.perf_counter()
    runs = coerce_runs(runs)
    groups = budget_groups(runs)
    weights = _weights(runs, cfg)
    out: dict[str, Any] = {}
    with limit_blas_threads(cfg.blas_threads):
        for approach in ISOFLOP_APPROACHES:
            out[approach] = _fit_isoflop(approach, groups, weights, cfg)
    log.info(
        "Approaches 1-2 fitted with %s bootstrap draws in %.2f s",
        cfg.draws if cfg.bootstrap else 0,
        time.perf_counter() - t0,
    )
    return out


def _fit_isoflop(
    approach: str, groups: list[BudgetRuns], weights: np.ndarray | None, cfg: AnalysisConfig
) -> dict[str, Any]:
    warnings: list[str] = []
    excluded_budgets: list[dict[str, Any]] = []
    points = []
    for g in groups:
        if approach == "approach_1":
            pt = {**approach1_point(g), "valid": True, "reason": ""}
        else:
            pt = approach2_point(g)
        pt.update(compute_budget=g.budget, budget_id=g.budget_id, n_runs=int(g.loss.size))
        if g.loss.size < cfg.min_runs_per_budget:
            pt["valid"] = False
            pt["reason"] = (
                f"only {g.loss.size} run(s) in this budget (analysis.budgets.min_runs"
                f" = {cfg.min_runs_per_budget})"
            )
        if not pt["valid"]:
            excluded_budgets.append({"compute_budget": g.budget, "reason": pt["reason"]})
            msg = f"budget {g.budget:.3g} FLOPs left out of the {approach} fit: {pt['reason']}"
            warnings.append(msg)
            log.warning("%s: %s", approach, msg)
        points.append(pt)
    valid = [p for p in points if p["valid"]]
    valid_groups = [g for g, p in zip(groups, points, strict=True) if p["valid"]]
    budgets = np.array([p["compute_budget"] for p in valid])
    laws: dict[str, Any] = {}
    law_draws: dict[str, dict[str, np.ndarray]] = {}
    per_budget_draws = None
    if weights is not None and valid_groups:
        fn = approach1_draws if approach == "approach_1" else approach2_draws
        draws = [fn(g, weights) for g in valid_groups]
        per_budget_draws = {
            col: np.stack([d[col] for d in draws], axis=1)
            for col in ("model_size", "num_tokens", "loss")
        }
        if cfg.resample == "budgets":
            bw = np.stack([weights[:, g.index[0]] for g in valid_groups], axis=1)
        else:
            bw = np.ones((weights.shape[0], len(valid_groups)))
    for key, col in LAW_COLUMNS.items():
        law = fit_power_law(budgets, [p[col] for p in valid]) if len(valid) >= 2 else None
        coef_d = exp_d = None
        if law is not None and per_budget_draws is not None:
            coef_d, exp_d = fit_power_law_draws(budgets, per_budget_draws[col], bw)
            law_draws[key] = {"coefficient": coef_d, "exponent": exp_d}
        laws[key] = _law_entry(law, coef_d, exp_d, cfg.confidence_level)
        if law is not None and law.r2 is not None and law.r2 < 0.9:
            warnings.append(f"{key} power law fits poorly (R^2 = {law.r2:.3f})")
    if len(valid) < 2:
        warnings.append(f"only {len(valid)} usable budget(s): no power law can be fitted")
    elif len(valid) == 2:
        warnings.append(
            "only 2 usable budgets: the power laws pass exactly through them "
            "(R^2 undefined) and their intervals rest on very little"
        )
    if per_budget_draws is not None and laws["n_opt"]["exponent"] is not None:
        failed = int(np.sum(~np.isfinite(law_draws["n_opt"]["exponent"])))
        if failed:
            warnings.append(
                f"{failed} of {weights.shape[0]} bootstrap draws could not fit the "
                f"power laws (too few valid budgets in the draw) and were dropped"
            )
    return {
        "points": points,
        "laws": laws,
        "law_draws": law_draws,
        "warnings": warnings,
        "excluded_budgets": excluded_budgets,
    }


# ---------------------------------------------------------------------------------------------
# Approach 3
# ---------------------------------------------------------------------------------------------


def fit_surface(runs: pd.DataFrame, cfg: AnalysisConfig) -> dict[str, Any]:
    """Approach 3: the fit, its bootstrap draws (named arrays) and warnings."""
    runs = coerce_runs(runs)
    used = runs[runs["used_in_fit"]]
    ratios, overall_ratio = _compute_ratios(runs)
    warnings: list[str] = []
    result: dict[str, Any] = {
        "fit": None,
        "draws": None,
        "warnings": warnings,
        "c_ratio_by_budget": ratios,
        "c_ratio": overall_ratio,
        "n_runs": int(len(used)),
    }
    if abs(overall_ratio - 1.0) > C_RATIO_WARN:
        warnings.append(
            f"the runs' compute is {1 / overall_ratio:.3g} x 6 N D (median): Approach 3's "
            f"optimum is defined on C = 6 N D, so its per-budget optima use each budget's "
            f"6 N D and its predictions at target budgets read them as 6 N D; Approaches 1-2 "
            f"use the budgets' own FLOP count"
        )
    if len(used) < MIN_RUNS:
        warnings.append(f"only {len(used)} usable runs: Approach 3 needs at least {MIN_RUNS}")
        return result
    n, d, loss = (used[c].to_numpy(float) for c in ("model_size", "num_tokens", "final_loss"))
    t0 = time.perf_counter()
    with limit_blas_threads(cfg.blas_threads) as threads:
        try:
            fit = fit_parametric(n, d, loss, cfg.fit)
        except ParametricFitError as exc:
            warnings.append(f"Approach 3 could not be fitted: {exc}")
            return result
        t_fit = time.perf_counter() - t0
        result["fit"] = fit.to_dict()
        log.info(
            "Approach 3: E=%.4g A=%.4g B=%.4g alpha=%.4g beta=%.4g objective=%.6g "
            "(%d runs, %.2f s; %s)",
            fit.E,
            fit.A,
            fit.B,
            fit.alpha,
            fit.beta,
            fit.objective,
            fit.n_runs,
            t_fit,
            threads,
        )
        weights = _weights(runs, cfg)
        if weights is not None:
            t1 = time.perf_counter()
            rows = runs.index[runs["used_in_fit"]].to_numpy()
            boot = bootstrap_parametric(
                fit,
                n,
                d,
                loss,
                weights[:, rows],
                extra_starts=cfg.extra_starts,
                seed=cfg.seed,
                delta=cfg.fit.delta,
            )
            draws = theta_to_params(boot["theta"])
            bad = ~np.isfinite(boot["objective"]) | ~np.isfinite(draws["G"])
            for key in draws:
                draws[key] = np.where(bad, np.nan, draws[key])
            result["draws"] = draws
            log.info("Approach 3 bootstrap: %d draws in %.2f s", len(bad), time.perf_counter() - t1)
            moved = float(np.mean(boot["improved_by_extra_start"]))
            if moved > 0.05:
                warnings.append(
                    f"in {moved:.0%} of bootstrap draws a perturbed start found a better "
                    f"minimum than the full-data fit: the surface has several basins for these "
                    f"runs, so its intervals may be wide and its fit fragile"
                )
            if bad.any():
                warnings.append(
                    f"{int(bad.sum())} of {len(bad)} bootstrap draws gave no valid "
                    f"surface (non-finite objective or non-positive exponent) and "
                    f"were dropped"
                )
    for key in ("alpha", "beta"):
        value = getattr(fit, key)
        hi = (cfg.fit.alpha_grid if key == "alpha" else cfg.fit.beta_grid)[1]
        if value <= 0 or value > hi:
            warnings.append(
                f"{key} = {value:.3g} lies outside the start grid (0, {hi:g}]: "
                f"the surface may be degenerate for these runs"
            )
    if 0.2 * float(np.min(loss)) > fit.E or float(np.min(loss)) < fit.E:
        warnings.append(
            f"E = {fit.E:.3g} is implausible next to the lowest loss "
            f"{np.min(loss):.3g}: the runs may not constrain the irreducible loss"
        )
    return result


# ---------------------------------------------------------------------------------------------
# Extrapolation check
# ---------------------------------------------------------------------------------------------


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


def extrapolation_check(runs: pd.DataFrame, cfg: AnalysisConfig) -> dict[str, Any]:
    """Leave the largest budget out, refit every approach, predict its optimum; report errors.

    The held-out budget is the largest with `min_runs_per_budget` runs; every approach is
    refitted on the budgets below it only.

    The held-out budget's "actual" optimum is, for Approach 1, its lowest-loss run; for
    Approaches 2 and 3, its IsoFLOP parabola vertex when valid, else its lowest-loss run
    (`actual_from` says which).
    """
    runs = coerce_runs(runs)
    groups = budget_groups(runs)
    usable = [g for g in groups if g.loss.size >= cfg.min_runs_per_budget]
    out: dict[str, Any] = {"held_out_budget": None, "warnings": []}
    if len(usable) < 3:
        out["warnings"].append(
            f"needs at least 3 budgets with {cfg.min_runs_per_budget}+ runs "
            f"(2 to fit, 1 to hold out); found {len(usable)}"
        )
        for approach in APPROACHES:
            out[approach] = _empty_check("not enough budgets")
        return out
    held = usable[-1]
    # Only budgets BELOW the held-out one: a larger budget with too few runs for Approaches
    # 1-2 must not inform Approach 3, or the check would interpolate, not extrapolate.
    rest = [g for g in groups if g.budget < held.budget]
    out["held_out_budget"] = held.budget
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
                if g.loss.size < cfg.min_runs_per_budget:
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
                out[approach] = _empty_check(
                    f"only {len(pts)} usable budget(s) below the held-out one"
                )
                continue
            c = [p[0] for p in pts]
            n_law = fit_power_law(c, [p[1]["model_size"] for p in pts])
            l_law = fit_power_law(c, [p[1]["loss"] for p in pts])
            out[approach] = _check_entry(
                float(l_law(held.budget)), float(n_law(held.budget)), actual, actual_from, len(pts)
            )
        rest_ids = [g.budget_id for g in rest]
        used_rest = runs[runs["used_in_fit"] & runs["budget_id"].isin(rest_ids).fillna(False)]
        try:
            fit = fit_parametric(
                used_rest["model_size"].to_numpy(float),
                used_rest["num_tokens"].to_numpy(float),
                used_rest["final_loss"].to_numpy(float),
                cfg.fit,
            )
            ratios, overall = _compute_ratios(runs)
            c6 = held.budget * ratios.get(held.budget_id, overall)
            n_pred, d_pred = optimal_allocation(c6, fit.params)
            l_pred = float(parametric_loss(n_pred, d_pred, fit.params))
            out["approach_3"] = _check_entry(
                l_pred, float(n_pred), best_actual, best_from, len(rest)
            )
        except ParametricFitError as exc:
            out["approach_3"] = _empty_check(f"Approach 3 could not be fitted: {exc}")
    for approach in APPROACHES:
        e = out[approach]
        if e.get("loss_rel_error") is not None:
            log.info(
                "Extrapolation to %.3g FLOPs, %s: loss error %+.2f%%, N_opt error %+.1f%%",
                held.budget,
                approach,
                100 * e["loss_rel_error"],
                100 * (e["n_opt_rel_error"] or 0.0),
            )
    return out


def _check_entry(pred_loss, pred_n, actual, actual_from, n_budgets) -> dict[str, Any]:
    actual_loss, actual_n = _num(actual["loss"]), _num(actual["model_size"])
    return {
        "predicted_loss": _num(pred_loss),
        "actual_loss": actual_loss,
        "loss_rel_error": _rel(pred_loss, actual_loss),
        "predicted_n_opt": _num(pred_n),
        "actual_n_opt": actual_n,
        "n_opt_rel_error": _rel(pred_n, actual_n),
        "actual_from": actual_from,
        "budgets_fitted": n_budgets,
        "note": "",
    }


def _empty_check(note: str) -> dict[str, Any]:
    return {
        "predicted_loss": None,
        "actual_loss": None,
        "loss_rel_error": None,
        "predicted_n_opt": None,
        "actual_n_opt": None,
        "n_opt_rel_error": None,
        "actual_from": None,
        "budgets_fitted": 0,
        "note": note,
    }


# ---------------------------------------------------------------------------------------------
# Predictions, curves, optimal points
# ---------------------------------------------------------------------------------------------


def _isoflop_values(entry: dict[str, Any], compute: np.ndarray):
    """Point values and draws (B, m) of N, D, loss for an Approach 1/2 entry at budgets C."""
    laws, draws = entry["laws"], entry["law_draws"]
    point, samples = {}, {}
    for key, col in LAW_COLUMNS.items():
        law = laws[key]
        if law["coefficient"] is None:
            point[col] = np.full(compute.shape, np.nan)
            samples[col] = None
            continue
        point[col] = law["coefficient"] * compute ** law["exponent"]
        if key in draws:
            samples[col] = (
                draws[key]["coefficient"][:, None]
                * compute[None, :] ** draws[key]["exponent"][:, None]
            )
        else:
            samples[col] = None
    return point, samples


def _surface_values(surface: dict[str, Any], compute: np.ndarray):
    fit = surface["fit"]
    if fit is None:
        nan = np.full(compute.shape, np.nan)
        return {"model_size": nan, "num_tokens": nan, "loss": nan}, {
            "model_size": None,
            "num_tokens": None,
            "loss": None,
        }
    n, d = optimal_allocation(compute, fit)
    point = {"model_size": n, "num_tokens": d, "loss": parametric_loss(n, d, fit)}
    draws = surface.get("draws")
    if draws is None:
        return point, {"model_size": None, "num_tokens": None, "loss": None}
    c6 = compute[None, :] / 6.0
    with np.errstate(all="ignore"):
        g = draws["G"][:, None]
        ns = g * c6 ** draws["a"][:, None]
        ds = c6 ** draws["b"][:, None] / g
        ls = (
            draws["E"][:, None]
            + draws["A"][:, None] * ns ** -draws["alpha"][:, None]
            + draws["B"][:, None] * ds ** -draws["beta"][:, None]
        )
    return point, {"model_size": ns, "num_tokens": ds, "loss": ls}


def _table(
    approach: str, compute: np.ndarray, point, samples, level: float, tokens_per_param: bool
) -> pd.DataFrame:
    df = pd.DataFrame({"approach": approach, "compute_budget": compute})
    cols = (
        ["model_size", "num_tokens"] + (["tokens_per_param"] if tokens_per_param else []) + ["loss"]
    )
    point = dict(point)
    samples = dict(samples)
    point["tokens_per_param"] = point["num_tokens"] / point["model_size"]
    if samples["model_size"] is not None and samples["num_tokens"] is not None:
        samples["tokens_per_param"] = samples["num_tokens"] / samples["model_size"]
    else:
        samples["tokens_per_param"] = None
    for col in cols:
        df[col] = point[col]
        if samples[col] is not None:
            df[f"{col}_lo"], df[f"{col}_hi"] = intervals_columns(samples[col], level)
        else:
            df[f"{col}_lo"] = df[f"{col}_hi"] = np.nan
    return df


def predict(
    isoflop: dict[str, Any], surface: dict[str, Any], runs: pd.DataFrame, cfg: AnalysisConfig
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(predictions at the target budgets, scaling-law curves with bands), every approach."""
    runs = coerce_runs(runs)
    targets = np.array(sorted(cfg.target_budgets), dtype=float)
    used_budgets = runs.loc[runs["used_in_fit"], "budget"].dropna()
    lo = float(used_budgets.min()) if len(used_budgets) else float(targets.min())
    hi = max(float(targets.max()), float(used_budgets.max()) if len(used_budgets) else lo)
    grid = np.logspace(np.log10(lo), np.log10(hi), cfg.curve_points)
    preds, curves = [], []
    for approach in APPROACHES:
        for compute, sink, tpp in ((targets, preds, True), (grid, curves, False)):
            if approach == "approach_3":
                point, samples = _surface_values(surface, compute)
            else:
                point, samples = _isoflop_values(isoflop[approach], compute)
            sink.append(_table(approach, compute, point, samples, cfg.confidence_level, tpp))
    predictions = pd.concat(preds, ignore_index=True)[list(PREDICTION_COLUMNS)]
    curves_df = pd.concat(curves, ignore_index=True)[list(CURVE_COLUMNS)]
    top = predictions[np.isclose(predictions["compute_budget"], targets.max())]
    for _, row in top.iterrows():
        if np.isfinite(row["model_size"]):
            log.info(
                "%s at %.3g FLOPs: N_opt %.3g [%.3g, %.3g], D_opt %.3g, loss %.4g",
                row["approach"],
                row["compute_budget"],
                row["model_size"],
                row["model_size_lo"],
                row["model_size_hi"],
                row["num_tokens"],
                row["loss"],
            )
    return predictions, curves_df


def optimal_points_table(
    isoflop: dict[str, Any], surface: dict[str, Any], runs: pd.DataFrame
) -> pd.DataFrame:
    """Per budget per approach: the optimum (N, D, loss), whether the fit used it and why not."""
    runs = coerce_runs(runs)
    rows = []
    for approach in ISOFLOP_APPROACHES:
        for pt in isoflop[approach]["points"]:
            rows.append(
                {
                    "approach": approach,
                    "compute_budget": pt["compute_budget"],
                    "model_size": pt["model_size"],
                    "num_tokens": pt["num_tokens"],
                    "loss": pt["loss"],
                    "used_in_fit": bool(pt["valid"]),
                    "reason": pt["reason"],
                    **(
                        {
                            k: pt[k]
                            for k in (
                                "parabola_c2",
                                "parabola_c1",
                                "parabola_c0",
                                "log10_n_min",
                                "log10_n_max",
                            )
                        }
                        if approach == "approach_2"
                        else {}
                    ),
                }
            )
    fit = surface.get("fit")
    if fit is not None:
        ratios = surface.get("c_ratio_by_budget", {})
        overall = surface.get("c_ratio", 1.0)
        for g in budget_groups(runs):
            c6 = g.budget * ratios.get(g.budget_id, overall)
            n, d = optimal_allocation(c6, fit)
            rows.append(
                {
                    "approach": "approach_3",
                    "compute_budget": g.budget,
                    "model_size": float(n),
                    "num_tokens": float(d),
                    "loss": float(parametric_loss(n, d, fit)),
                    "used_in_fit": True,
                    "reason": "",
                }
            )
    df = pd.DataFrame(rows, columns=list(OPTIMAL_POINT_COLUMNS))
    df["tokens_per_param"] = df["num_tokens"] / df["model_size"]
    df["used_in_fit"] = df["used_in_fit"].astype(bool)
    df["reason"] = df["reason"].fillna("")
    return df


# ---------------------------------------------------------------------------------------------
# The scaling_laws document
# ---------------------------------------------------------------------------------------------


def json_clean(value: Any) -> Any:
    """Plain JSON: numpy scalars to Python, NaN/inf to None, tuples to lists."""
    if isinstance(value, Mapping):
        return {str(k): json_clean(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [json_clean(v) for v in value]
    if isinstance(value, np.ndarray):
        return [json_clean(v) for v in value.tolist()]
    if isinstance(value, (np.bool_, bool)):
        return bool(value)
    if isinstance(value, (np.integer,)):
        return int(value)
    if isinstance(value, (float, np.floating)):
        return float(value) if math.isfinite(float(value)) else None
    return value


def _surface_section(surface: dict[str, Any], level: float) -> dict[str, Any]:
    fit = surface.get("fit")
    warnings = list(surface.get("warnings", []))
    if fit is None:
        nulls = {k: None for k in SURFACE_KEYS}
        return {
            **nulls,
            "objective": None,
            "n_runs": surface.get("n_runs", 0),
            "intervals": {k: [None, None] for k in SURFACE_KEYS},
            "n_opt": _law_entry(None, None, None, level),
            "d_opt": _law_entry(None, None, None, level),
            "warnings": warnings,
        }
    draws = surface.get("draws")
    intervals = {
        k: interval(draws[k], level) if draws is not None else [None, None] for k in SURFACE_KEYS
    }

    def law(which: str) -> dict[str, Any]:
        # N_opt = G (C/6)^a = (G 6^-a) C^a ;  D_opt = G^-1 (C/6)^b = (G^-1 6^-b) C^b
        g_pow = 1.0 if which == "n_opt" else -1.0
        e_key = "a" if which == "n_opt" else "b"
        coef = fit["G"] ** g_pow * 6.0 ** -fit[e_key]
        entry = {
            "coefficient": coef,
            "exponent": fit[e_key],
            "r2": None,
            "interval": {"coefficient": [None, None], "exponent": intervals[e_key]},
        }
        if draws is not None:
            with np.errstate(all="ignore"):
                coefs = draws["G"] ** g_pow * 6.0 ** -draws[e_key]
            entry["interval"]["coefficient"] = interval(coefs, level)
        return entry

    return {
        **{k: fit[k] for k in SURFACE_KEYS},
        "objective": fit["objective"],
        "n_runs": fit["n_runs"],
        "intervals": intervals,
        "standard_errors": {
            k: (float(np.nanstd(draws[k], ddof=1)) if draws is not None else None)
            for k in SURFACE_KEYS
        },
        "n_opt": law("n_opt"),
        "d_opt": law("d_opt"),
        "huber_delta": fit["method"].get("huber_delta"),
        "fit_method": fit["method"],
        "warnings": warnings,
    }


def _agreement(
    name: str, values: dict[str, Any], intervals: dict[str, Any], level: float = 0.95
) -> dict[str, Any]:
    have = {
        k: iv
        for k, iv in intervals.items()
        if iv is not None and iv[0] is not None and iv[1] is not None
    }
    if len(have) < 2:
        return {
            "agree": None,
            "values": values,
            "intervals": intervals,
            "message": f"{name}: fewer than two approaches have an interval to compare",
        }
    lo = max(iv[0] for iv in have.values())
    hi = min(iv[1] for iv in have.values())
    agree = bool(lo <= hi)
    names = ", ".join(sorted(have))
    if agree:
        message = (
            f"{name}: {names} agree (their {100 * level:.3g}% intervals overlap on "
            f"[{lo:.4g}, {hi:.4g}])"
        )
    else:
        parts = "; ".join(f"{k} [{iv[0]:.4g}, {iv[1]:.4g}]" for k, iv in sorted(have.items()))
        message = f"{name}: the approaches DISAGREE, intervals do not all overlap: {parts}"
    return {"agree": agree, "values": values, "intervals": intervals, "message": message}


def summarise(
    summary: dict[str, Any],
    runs: pd.DataFrame,
    isoflop: dict[str, Any],
    surface: dict[str, Any],
    check: dict[str, Any],
    predictions: pd.DataFrame,
    cfg: AnalysisConfig,
) -> dict[str, Any]:
    """The scaling_laws document (docs/INTERFACES.md), plain JSON."""
    runs = coerce_runs(runs)
    used = runs[runs["used_in_fit"]]
    budgets = sorted(float(b) for b in used["budget"].dropna().unique())
    level = cfg.confidence_level
    doc: dict[str, Any] = {
        "meta": {
            "n_runs": int(len(runs)),
            "n_runs_used": int(len(used)),
            "n_budgets": len(budgets),
            "budgets": budgets,
            "bootstrap": cfg.bootstrap_meta(),
            "confidence_level": level,
            "target_budgets": sorted(cfg.target_budgets),
            "source": summary.get("source"),
            "columns_used": summary.get("columns_used", {}),
            "budget_grouping": {"gap_dex": cfg.gap_dex, "max_width_dex": cfg.max_width_dex},
            "drop_highest_loss": cfg.drop_highest_loss,
        },
        "excluded_runs": [
            {"experiment_id": str(r.experiment_id), "reason": str(r.reason)}
            for r in runs[~runs["used_in_fit"]].itertuples()
        ],
    }
    for approach in ISOFLOP_APPROACHES:
        entry = isoflop[approach]
        doc[approach] = {
            **entry["laws"],
            "warnings": list(entry["warnings"]),
            "excluded_budgets": entry["excluded_budgets"],
        }
    doc["approach_3"] = _surface_section(surface, level)
    doc["extrapolation_check"] = check

    agreement = {}
    for name, law_key, surf_key in (("exponent_a", "n_opt", "a"), ("exponent_b", "d_opt", "b")):
        values, ivs = {}, {}
        for approach in ISOFLOP_APPROACHES:
            values[approach] = doc[approach][law_key]["exponent"]
            ivs[approach] = doc[approach][law_key]["interval"]["exponent"]
        values["approach_3"] = doc["approach_3"][surf_key]
        ivs["approach_3"] = doc["approach_3"]["intervals"][surf_key]
        agreement[name] = _agreement(name, values, ivs, level)
    top = max(cfg.target_budgets)
    rows = predictions[np.isclose(predictions["compute_budget"], top)]
    values = {r.approach: r.model_size for r in rows.itertuples()}
    ivs = {r.approach: [r.model_size_lo, r.model_size_hi] for r in rows.itertuples()}
    ivs = {k: (v if all(np.isfinite(x) for x in v) else None) for k, v in ivs.items()}
    agreement["n_opt_at_largest_target"] = {
        **_agreement(f"N_opt at {top:.3g} FLOPs", values, ivs, level),
        "compute_budget": top,
    }
    doc["agreement"] = agreement

    warnings = []
    n_excluded = len(doc["excluded_runs"])
    if n_excluded:
        warnings.append(
            f"{n_excluded} of {len(runs)} runs left out of every fit (see excluded_runs)"
        )
    per_budget = used.groupby("budget_id").size()
    small = per_budget[per_budget < cfg.min_runs_per_budget]
    if len(small):
        warnings.append(
            f"{len(small)} budget(s) have fewer than {cfg.min_runs_per_budget} "
            f"usable runs and only inform Approach 3"
        )
    for a in agreement.values():
        if a["agree"] is False:
            warnings.append(a["message"])
    ho = check.get("held_out_budget")
    for approach in APPROACHES:
        err = (check.get(approach) or {}).get("n_opt_rel_error")
        if err is not None and abs(err) > 0.5:
            warnings.append(
                f"{approach} misses the held-out budget {ho:.3g}'s N_opt by "
                f"{100 * err:+.0f}%: treat its extrapolations with care"
            )
    if max(cfg.target_budgets) > 100 * (budgets[-1] if budgets else 1):
        warnings.append(
            f"target budgets reach {max(cfg.target_budgets):.3g} FLOPs, "
            f"{max(cfg.target_budgets) / budgets[-1]:.3g}x the largest budget "
            f"measured ({budgets[-1]:.3g}): intervals assume the laws hold that far"
        )
    doc["warnings"] = warnings
    return json_clean(doc)
