"""The `scaling_laws` document: what D counts (`data_unit`), every fitted law with intervals,
diagnostics, agreement between the approaches and warnings, as plain JSON (every key:
docs/guides/outputs.md, "scaling_laws").

This is where the typed fit results (`IsoflopFit`, `SurfaceFit`, `ExtrapolationCheck`) become
JSON, once, through `flops_fit.jsonsafe.json_safe`.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from flops_fit.fitting.bootstrap import interval, unreliable_note
from flops_fit.fitting.checks.agreement import MAX_AGREEMENT_SPAN, agreement, study_warnings
from flops_fit.fitting.checks.extrapolation import ExtrapolationCheck
from flops_fit.fitting.checks.recommend import recommend_approach
from flops_fit.fitting.checks.sweep import sweep_diagnostics
from flops_fit.fitting.isoflop.approaches import IsoflopFit, LawFit
from flops_fit.fitting.laws.families import DEFAULT_LAW, FAMILIES
from flops_fit.fitting.runs.table import run_data_unit, run_loss_unit
from flops_fit.fitting.surface.compute_model import (
    ComputeModel,
    allocation_laws,
    compute_model_warnings,
)
from flops_fit.fitting.surface.law import allocation_power_laws_6nd
from flops_fit.fitting.surface.study import SurfaceFit
from flops_fit.jsonsafe import json_safe
from flops_fit.parameters.analysis import MIN_DRAWS_FOR_INTERVAL, AnalysisConfig
from flops_fit.schema import APPROACHES, ISOFLOP_APPROACHES, SURFACE_KEYS


def isoflop_section(fit: IsoflopFit) -> dict[str, Any]:
    """Approach 1 or 2: its laws n_opt, d_opt, l_opt, the bootstrap's draws and failures (null
    for Approach 1, with `interval_note` saying why it has no interval), warnings and the
    budgets left out."""
    return {
        **{key: law.to_dict() for key, law in fit.laws.items()},
        "bootstrap": fit.bootstrap.to_dict() if fit.bootstrap is not None else None,
        "interval_note": fit.interval_note,
        "warnings": list(fit.warnings),
        "excluded_budgets": [
            {"compute_budget": p.compute_budget, "reason": p.reason} for p in fit.excluded
        ],
    }


def surface_section(surface: SurfaceFit, level: float) -> dict[str, Any]:
    """Approach 3: the surface, its allocation laws, intervals, standard errors and the
    bootstrap's draws and failures (`interval_note` says when the intervals are unreliable)."""
    fit = surface.fit
    warnings = list(surface.warnings)
    report = surface.bootstrap
    note = unreliable_note(report) if report is not None else None
    if fit is None:
        return {
            **dict.fromkeys(SURFACE_KEYS),
            "law": surface.law,
            "objective": None,
            "n_runs": surface.n_runs,
            "intervals": {k: [None, None] for k in SURFACE_KEYS},
            "n_opt": LawFit(coefficient=None, exponent=None).to_dict(),
            "d_opt": LawFit(coefficient=None, exponent=None).to_dict(),
            "bootstrap": None,
            "interval_note": None,
            "at_bound": {},
            "law_at_bound": {},
            "warnings": warnings,
        }
    draws = surface.draws
    intervals = {
        k: interval(draws[k], level) if draws is not None else [None, None] for k in SURFACE_KEYS
    }
    laws = allocation_power_laws_6nd(fit)
    draw_laws = allocation_power_laws_6nd(draws) if draws is not None else None

    def law(which: str) -> dict[str, Any]:
        e_key = "a" if which == "n_opt" else "b"
        coefficient_interval = (
            interval(draw_laws[which]["coefficient"], level) if draw_laws is not None
            else [None, None]
        )
        return {
            "coefficient": laws[which]["coefficient"],
            "exponent": laws[which]["exponent"],
            "r2": None,
            "interval": {"coefficient": coefficient_interval, "exponent": intervals[e_key]},
            "interval_note": note,
        }

    answer = surface.params
    return {
        **{k: getattr(fit, k) for k in SURFACE_KEYS},
        # the answering family and every fitted family's parameters (prefixed by family), so
        # that this section is itself a params mapping (`fitting.laws.evaluate`)
        **{k: v for k, v in answer.items() if k not in SURFACE_KEYS},
        "law_formula": FAMILIES[surface.law].formula,
        "law_params": {k: answer[FAMILIES[surface.law].key(k)]
                       for k in FAMILIES[surface.law].param_names},
        "law_intervals": {
            k: (interval(draws[FAMILIES[surface.law].key(k)], level) if draws is not None
                else [None, None]) for k in FAMILIES[surface.law].param_names},
        "law_choice": surface.choice.to_dict() if surface.choice is not None else None,
        # which parameters sit on a bound (a number there means nothing), for the report
        "at_bound": surface.at_bound,
        "law_at_bound": surface.law_at_bound,
        "law_error": surface.law_error.to_dict() if surface.law_error is not None else None,
        "objective": fit.objective,
        "n_runs": fit.n_runs,
        "intervals": intervals,
        "standard_errors": {k: _standard_error(draws[k]) if draws is not None else None
                            for k in SURFACE_KEYS},
        "n_opt": law("n_opt"),
        "d_opt": law("d_opt"),
        "huber_delta": fit.method.get("huber_delta"),
        "fit_method": fit.method,
        "bootstrap": report.to_dict() if report is not None else None,
        "interval_note": note,
        "warnings": warnings,
    }


def _standard_error(samples: np.ndarray) -> float | None:
    """The SD of the finite draws; None with too few for an interval, or where it overflows
    (a coefficient's draws spanning hundreds of orders of magnitude)."""
    x = np.asarray(samples, dtype=float)
    x = x[np.isfinite(x)]
    if x.size < MIN_DRAWS_FOR_INTERVAL:
        return None
    with np.errstate(over="ignore", invalid="ignore"):
        sd = float(np.std(x, ddof=1))
    return sd if np.isfinite(sd) else None


def allocation_under(
    surface: SurfaceFit, model: ComputeModel, budgets: list[float], level: float
) -> dict[str, Any]:
    """Approach 3's n_opt and d_opt laws under a compute model other than 6 N: fitted through
    its optima at the study's budgets (`compute_model.allocation_laws`), with intervals."""
    laws = allocation_laws(surface.params, model, budgets)
    draws = allocation_laws(surface.draws, model, budgets) if surface.draws is not None else None
    out: dict[str, Any] = {}
    for key in ("n_opt", "d_opt"):
        iv = {
            part: (interval(draws[key][part], level) if draws is not None else [None, None])
            for part in ("coefficient", "exponent")
        }
        out[key] = {**laws[key], "r2": None, "interval": iv,
                    "fitted_through": f"the optima at the study's {len(budgets)} budgets"}
    return out


def _agreements(
    doc: dict[str, Any], predictions: pd.DataFrame, cfg: AnalysisConfig
) -> dict[str, Any]:
    """Do the approaches agree on the exponents a, b and on N_opt at the largest target?"""
    level = cfg.confidence_level
    unreliable = [a for a in APPROACHES if ((doc.get(a) or {}).get("bootstrap") or {})
                  .get("unreliable")]
    out = {}
    for name, law_key in (("exponent_a", "n_opt"), ("exponent_b", "d_opt")):
        values, ivs = {}, {}
        for approach in ISOFLOP_APPROACHES:
            values[approach] = doc[approach][law_key]["exponent"]
            ivs[approach] = doc[approach][law_key]["interval"]["exponent"]
        # the law through Approach 3's optima: a and b themselves under 6 N, the fitted law
        # over the study's budgets under any other compute model (as Approaches 1-2's are)
        values["approach_3"] = doc["approach_3"][law_key]["exponent"]
        ivs["approach_3"] = doc["approach_3"][law_key]["interval"]["exponent"]
        out[name] = agreement(name, values, ivs, level, unreliable)
    top = max(cfg.target_budgets)
    rows = predictions[np.isclose(predictions["compute_budget"], top)]
    values = {r.approach: r.model_size for r in rows.itertuples()}
    ivs = {r.approach: [r.model_size_lo, r.model_size_hi] for r in rows.itertuples()}
    ivs = {k: (v if all(np.isfinite(x) for x in v) else None) for k, v in ivs.items()}
    out["n_opt_at_largest_target"] = {
        **agreement(f"N_opt at {top:.3g} FLOPs", values, ivs, level, unreliable,
                    max_span=MAX_AGREEMENT_SPAN),
        "compute_budget": top,
    }
    return out


def summarise(
    summary: dict[str, Any],
    runs: pd.DataFrame,
    isoflop: dict[str, IsoflopFit],
    surface: SurfaceFit,
    check: ExtrapolationCheck,
    predictions: pd.DataFrame,
    cfg: AnalysisConfig,
    model: ComputeModel,
) -> dict[str, Any]:
    """The scaling_laws document, plain JSON, under the study's compute model `model`."""
    used = runs[runs["used_in_fit"]]
    budgets = sorted(float(b) for b in used["budget"].dropna().unique())
    level = cfg.confidence_level
    doc: dict[str, Any] = {
        "data_unit": run_data_unit(runs, summary.get("source") or "analysis_runs"),
        "loss_unit": run_loss_unit(runs, summary.get("source") or "analysis_runs"),
        "compute_model": {**model.to_dict(), "warnings": compute_model_warnings(runs, model)},
        "meta": {
            "n_runs": int(len(runs)),
            "n_runs_used": int(len(used)),
            "n_budgets": len(budgets),
            "budgets": budgets,
            "bootstrap": cfg.bootstrap.meta(),
            "confidence_level": level,
            "target_budgets": sorted(cfg.target_budgets),
            "source": summary.get("source"),
            "columns_used": summary.get("columns_used", {}),
            "notes": list(summary.get("notes", [])),
            "budget_grouping": {
                "gap_dex": cfg.budgets.gap_dex,
                "max_width_dex": cfg.budgets.max_width_dex,
            },
            "drop_highest_loss": cfg.drop_highest_loss,
        },
        "excluded_runs": [
            {"experiment_id": str(r.experiment_id), "reason": str(r.reason)}
            for r in runs[~runs["used_in_fit"]].itertuples()
        ],
    }
    for approach in ISOFLOP_APPROACHES:
        doc[approach] = isoflop_section(isoflop[approach])
    doc["approach_3"] = surface_section(surface, level)
    if surface.fit is not None and (not model.is_6nd or surface.law != DEFAULT_LAW):
        doc["approach_3"].update(allocation_under(surface, model, budgets, level))
    doc["extrapolation_check"] = check.to_dict()
    doc["diagnostics"] = sweep_diagnostics(
        runs, isoflop, surface, model, level,
        (summary.get("columns_used") or {}).get("loss") or "final_loss")
    doc["agreement"] = _agreements(doc, predictions, cfg)
    doc["warnings"] = study_warnings(
        n_runs=len(runs),
        n_excluded=len(doc["excluded_runs"]),
        runs_per_budget=used.groupby("budget_id").size().tolist(),
        min_runs=cfg.budgets.min_runs,
        agreements=doc["agreement"],
        check=check,
        budgets=budgets,
        target_budgets=cfg.target_budgets,
    )
    doc["warnings"] += doc["compute_model"]["warnings"] + doc["diagnostics"]["warnings"]
    doc["recommended_approach"] = recommend_approach(doc)
    return json_safe(doc)
