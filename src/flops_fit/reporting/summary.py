"""What the report says, built from the analysis outputs: one JSON-ready dict that both
templates read (`flops_fit.reporting.render`).

`summarise_study` turns the tables and the fitted laws into raw numbers, nothing formatted. It
states the question and the answer first (`headline`): at the headline budget, train N on D
tokens, with the interval and how far that is an extrapolation. D's unit (tokens, examples, or
what the data source names) is scaling_laws' `data_unit`; `unit` carries its words to the
templates; `loss_unit` does the same for what the loss measures (scaling_laws' `loss_unit`).
Missing or empty inputs never raise; they are listed in `missing` with the reason.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import pandas as pd

from flops_fit.fitting.laws.bounded import NOTE as BOUND_NOTE
from flops_fit.fitting.laws.families import DEFAULT_LAW, FAMILIES
from flops_fit.jsonsafe import json_safe
from flops_fit.parameters.reporting import MAX_EXTRAPOLATION
from flops_fit.reporting import inputs as inp
from flops_fit.reporting.figures import figure_specs
from flops_fit.reporting.formatting import DataUnit, as_float
from flops_fit.reporting.headline import headline, no_floor_note
from flops_fit.reporting.inventory import inventory
from flops_fit.reporting.study_summary import (
    earlier_validation,
    study_section,
    validation_section,
)
from flops_fit.schema import APPROACHES, SURFACE_KEYS


def question(unit: DataUnit | None = None) -> str:
    """What the report answers, for the unit of D."""
    return ("For a compute budget C, how many parameters N should the model have and on how many "
            f"{(unit or DataUnit.of()).plural} D should it train to reach the lowest loss?")


def summarise_study(
    runs: Any,
    scaling_laws: Any,
    optimal_points: Any = None,
    predictions: Any = None,
    scaling_law_curves: Any = None,
    *,
    headline_budget: float = 1e24,
    headline_approach: str = "approach_3",
    max_headline_extrapolation: float = MAX_EXTRAPOLATION,
    title: str = "Compute-optimal scaling report",
    validation: Any = None,
    study_rounds: Any = None,
    settings_check: Any = None,
    loss_curves: Any = None,
) -> dict[str, Any]:
    """Everything the report says, as plain JSON-ready data (numbers unformatted).

    `runs` is the run table (`analysis_runs`: every run with analysis's canonical columns,
    budget and used_in_fit / reason; a `results`-shaped table works too). `validation` and
    `study_rounds`: a steered study's verdict and rounds (`reporting.study_summary`), if any;
    a verdict on another fit than `scaling_laws` is `earlier_validation`, a note, instead.
    `settings_check`: training's comparison of the completed runs with the configuration; runs
    kept although their settings changed (`on_changed_settings: reuse`) are said at the top.
    `loss_curves`: the runs' loss curves; the figure of them is listed only when there are some.
    """
    laws = inp.laws_dict(scaling_laws)
    raw_runs, runs = runs, inp.runs_frame(runs)
    optima = inp.optimal_frame(optimal_points)
    preds = inp.predictions_frame(predictions)
    curves = inp.curves_frame(scaling_law_curves)
    meta = inp.section(laws, "meta")
    confidence = as_float(meta.get("confidence_level")) or 0.95
    unit = inp.data_unit(laws, runs)
    loss_unit = inp.loss_unit(laws, runs)

    missing = _missing_inputs(raw_runs, runs, laws, optima, preds, curves)
    notes: list[str] = []
    summary: dict[str, Any] = {
        "title": title,
        "question": question(unit),
        "unit": unit.to_dict(),
        "loss_unit": loss_unit.to_dict(unit),
        "confidence_level": confidence,
        "missing": missing,
        "validation": validation_section(validation, laws),
        "earlier_validation": earlier_validation(validation, laws),
        "study": study_section(study_rounds),
        "settings_reused": settings_reused(settings_check),
        "headline": headline(laws, preds, curves, optima, headline_budget, headline_approach,
                             confidence, notes, unit, max_headline_extrapolation),
        "laws": [_law_summary(laws, a) for a in APPROACHES],
        "agreement": _agreement(laws),
        "predictions": _predictions(preds),
        "predictions_note": _predictions_note(preds, optima),
        "extrapolation_check": _extrapolation_check(laws),
        "inventory": inventory(runs, laws, raw_runs is not None),
        "meta": _meta(meta, laws),
        "figures": [{"name": name, **spec} for name, spec in figure_specs(unit).items()
                    if name != "loss_curves"
                    or inp.analysed_curves(loss_curves, raw_runs) is not None],
    }
    reused = summary["settings_reused"]
    summary["warnings"] = _warnings(laws) + notes + ([reused["text"]] if reused else [])
    return json_safe(summary)


def settings_reused(check: Any) -> dict[str, Any] | None:
    """The runs kept although they were trained under other settings than the configuration
    gives now (`params:training.on_changed_settings: reuse`), and what differs; else None."""
    if not isinstance(check, Mapping) or not check.get("reused"):
        return None
    runs = list(check.get("changed_runs") or [])
    differences = [str(d) for d in check.get("differences") or []]
    text = (f"{len(runs)} of {check.get('completed_runs', len(runs))} completed runs were "
            "trained under other settings than the configuration gives now and were kept "
            "(params:training.on_changed_settings: reuse): " + "; ".join(differences))
    return {"runs": runs, "differences": differences, "text": text}


def _missing_inputs(raw_runs, runs, laws, optima, preds, curves) -> list[dict[str, str]]:
    missing = []
    if raw_runs is None:
        missing.append({"input": "analysis_runs", "why": "no run table was given: no run has "
                        "been recorded and analysed yet."})
    elif runs.empty:
        missing.append({"input": "analysis_runs", "why": "the run table is empty: no run has "
                        "finished yet."})
    elif not runs["completed"].any():
        missing.append({"input": "analysis_runs", "why": f"none of the {len(runs)} recorded "
                        "runs completed with a finite positive loss (see the run inventory)."})
    if not laws:
        missing.append({"input": "scaling_laws", "why": "no fitted laws were given (missing or "
                        "empty): the analysis pipeline has not run, or had nothing to fit."})
    elif not any(inp.is_fitted(laws, a) for a in APPROACHES):
        why = "; ".join(w for a in APPROACHES for w in inp.approach_warnings(laws, a))
        missing.append({"input": "scaling_laws", "why": "no approach could be fitted"
                        + (f": {why}" if why else ".")})
    for name, frame in (("optimal_points", optima), ("predictions", preds),
                        ("scaling_law_curves", curves)):
        if frame.dropna(subset=["compute_budget"]).empty:
            missing.append({"input": name, "why": f"{name} is missing or empty, so the parts of "
                            "the report drawn from it are blank."})
    return missing


def _law_entry(a3: Mapping[str, Any]) -> dict[str, Any]:
    """The answering law family: its formula, its parameters (instead of Chinchilla's when
    another family answers) and the table of every family's held-out error."""
    out: dict[str, Any] = {"law": str(a3.get("law") or DEFAULT_LAW),
                           "law_formula": str(a3.get("law_formula")
                                              or FAMILIES[DEFAULT_LAW].formula),
                           "law_reason": None, "law_table": None, "law_chosen": False,
                           "law_error": _law_error_text(a3.get("law_error"))}
    law_params = a3.get("law_params") if isinstance(a3.get("law_params"), Mapping) else {}
    law_iv = a3.get("law_intervals") if isinstance(a3.get("law_intervals"), Mapping) else {}
    if out["law"] != DEFAULT_LAW and law_params:
        out["surface"] = [_param_row(k, v, law_iv.get(k), a3.get("law_at_bound"))
                          for k, v in law_params.items() if as_float(v) is not None]
    choice = a3.get("law_choice") if isinstance(a3.get("law_choice"), Mapping) else None
    if choice:
        shares = choice.get("draw_shares") or {}
        out["law_reason"] = str(choice.get("reason") or "")
        # chosen by rollout (auto with held-out budgets), not pinned or defaulted
        out["law_chosen"] = choice.get("mode") == "auto" and bool(choice.get("held_out_budgets"))
        out["law_table"] = [
            {"family": name, "formula": str(f.get("formula", "")), "n_params": f.get("n_params"),
             "held_out": as_float(f.get("held_out_rms_log_error")),
             "share": as_float(shares.get(name)), "chosen": name == choice.get("chosen")}
            for name, f in (choice.get("families") or {}).items() if isinstance(f, Mapping)]
    return out


def _param_row(name: str, value: Any, interval: Any, at_bound: Any) -> dict[str, Any]:
    """One row of a parameter table: its value, interval, and where it sits on a bound
    (`at_bound`: scaling_laws' `at_bound` or `law_at_bound`; None when it does not)."""
    entry = at_bound.get(name) if isinstance(at_bound, Mapping) else None
    return {"name": name, "value": as_float(value), "interval": inp.interval_pair(interval),
            "at_bound": dict(entry) if isinstance(entry, Mapping) else None}


def _law_error_text(err: Any) -> str | None:
    """One sentence on the law's own error beyond the fit (None when rollout did not measure
    it: Approach 3's warnings then say so, and what the intervals carry instead)."""
    if not isinstance(err, Mapping) or as_float(err.get("centre_budget")) is None:
        return None
    folds = err.get("folds") or []
    loss, n_opt = as_float(err.get("loss_error_per_ln_c")), as_float(err.get("n_opt_error_per_ln_c"))
    floor = as_float(err.get("loss_error_floor_per_ln_c")) or 0.0
    if not folds or loss is None or n_opt is None:
        return None
    if loss == 0 and n_opt == 0 and floor <= 0:
        return (f"Rollout over {len(folds)} held-out budget(s) found no error of the law beyond "
                "the noise of its parameters, so its intervals are the bootstrap's alone.")
    centre = as_float(err["centre_budget"])
    loss_text = (f"{100 * floor:.2f}% in L (analysis.law_error_floor; rollout measured "
                 f"{100 * loss:.2f}%)" if floor > loss else f"{100 * loss:.2f}% in L")
    return (f"Above the centre of the fitted budgets ({centre:.3g} FLOPs) its intervals also "
            f"carry the law's own error per unit of ln C (each factor e of compute), by rollout "
            f"over {len(folds)} held-out budget(s): {loss_text} and {100 * n_opt:.1f}% in "
            "N_opt.")


def _law_summary(laws, approach: str) -> dict[str, Any]:
    entry: dict[str, Any] = {
        "approach": approach,
        "name": inp.APPROACH_NAMES[approach],
        "method": inp.APPROACH_METHODS[approach],
        "fitted": inp.is_fitted(laws, approach),
        "warnings": inp.approach_warnings(laws, approach),
        "laws": {},
    }
    for key in inp.LAW_KEYS:
        fitted = inp.law(laws, approach, key)
        if fitted is not None:
            entry["laws"][key] = fitted
    if approach == "approach_3":
        params = inp.surface(laws)
        if params is not None:
            intervals = params.get("intervals") if isinstance(params.get("intervals"),
                                                              Mapping) else {}
            entry["surface"] = [
                _param_row(name, params.get(name), intervals.get(name), params.get("at_bound"))
                for name in SURFACE_KEYS
                if as_float(params.get(name)) is not None
            ]
            entry.update(_law_entry(params))
            entry["bound_note"] = (BOUND_NOTE if any(r["at_bound"] for r in entry["surface"])
                                   else None)
            entry["objective"] = as_float(params.get("objective"))
            method = params.get("fit_method") if isinstance(params.get("fit_method"),
                                                            Mapping) else {}
            entry["objective_name"] = str(method.get("objective_description")
                                          or "Huber loss of log-loss residuals")
            compute = inp.compute_model(laws)
            entry["compute_model"] = compute.describe()
            entry["compute_is_6nd"] = compute.is_6nd
            entry["n_runs"] = params.get("n_runs")
    excluded = inp.section(laws, approach).get("excluded_budgets") or []
    entry["excluded_budgets"] = [
        {"compute_budget": as_float(e.get("compute_budget")), "reason": str(e.get("reason", ""))}
        for e in excluded if isinstance(e, Mapping)
    ]
    return entry


def _agreement(laws) -> list[dict[str, Any]]:
    out = []
    for name, item in inp.section(laws, "agreement").items():
        if not isinstance(item, Mapping):
            continue
        values = item.get("values") if isinstance(item.get("values"), Mapping) else {}
        agree = item.get("agree") if isinstance(item.get("agree"), bool) else None
        # None: fewer than two intervals (n/a), or intervals too wide to judge by (cannot tell)
        verdict = ("yes" if agree else "no") if agree is not None else (
            "cannot tell" if item.get("too_wide") else "n/a")
        out.append({
            "name": name.replace("_", " "),
            "agree": agree,
            "verdict": verdict,
            "message": str(item.get("message") or ""),
            "by_approach": {inp.APPROACH_NAMES.get(k, k): as_float(v) for k, v in values.items()},
        })
    return out


def _predictions(preds: pd.DataFrame) -> list[dict[str, Any]]:
    rows = []
    for _, row in preds.dropna(subset=["compute_budget"]).iterrows():
        entry = {"approach": row["approach"],
                 "approach_name": inp.APPROACH_NAMES.get(row["approach"], row["approach"]),
                 "compute_budget": as_float(row["compute_budget"])}
        entry.update(inp.row_quantities(row, ("model_size", "num_tokens", "tokens_per_param",
                                              "loss")))
        rows.append(entry)
    return rows


def _predictions_note(preds: pd.DataFrame, optima: pd.DataFrame) -> str | None:
    """Under the predictions table, where Approaches 1-2 predict a loss beyond their fit."""
    beyond = []
    for approach in ("approach_1", "approach_2"):
        fitted = inp.fitted_budgets(optima, approach)
        rows = preds[(preds["approach"] == approach)] if len(preds) else preds
        if len(fitted) and len(rows) and rows.loc[rows["compute_budget"] > fitted.max(),
                                                  "loss"].notna().any():
            beyond.append(inp.APPROACH_NAMES[approach])
    if not beyond:
        return None
    note = no_floor_note(beyond)
    return note[0].upper() + note[1:] + "."


def _extrapolation_check(laws) -> dict[str, Any]:
    check = inp.section(laws, "extrapolation_check")
    rows, notes = [], []
    for approach in APPROACHES:
        item = check.get(approach)
        if not isinstance(item, Mapping):
            continue
        rows.append({"approach": approach, "name": inp.APPROACH_NAMES[approach],
                     **{k: as_float(item.get(k)) for k in (
                         "predicted_loss", "actual_loss", "loss_rel_error", "predicted_n_opt",
                         "actual_n_opt", "n_opt_rel_error")}})
        if item.get("note") and as_float(item.get("predicted_n_opt")) is not None:
            notes.append(f"{inp.APPROACH_NAMES[approach]} {item['note']}")
    held_out = as_float(check.get("held_out_budget"))
    why = "; ".join(str(w) for w in check.get("warnings") or [])
    return {"held_out_budget": held_out, "rows": rows if held_out is not None else [],
            "notes": notes, "why": why or None}


def _warnings(laws) -> list[str]:
    out = [str(w) for w in laws.get("warnings") or []]
    for approach in APPROACHES:
        # an approach's own warnings may already begin with its key ("approach_2: ...")
        out += [f"{inp.APPROACH_NAMES[approach]}: {str(w).removeprefix(f'{approach}: ')}"
                for w in inp.approach_warnings(laws, approach)]
    return out


def _meta(meta, laws) -> dict[str, Any]:
    boot = meta.get("bootstrap") if isinstance(meta.get("bootstrap"), Mapping) else {}
    return {
        "source": meta.get("source"),
        "n_runs": meta.get("n_runs"),
        "n_runs_used": meta.get("n_runs_used"),
        "n_budgets": meta.get("n_budgets"),
        "budgets": [as_float(b) for b in meta.get("budgets") or []],
        "target_budgets": inp.target_budgets(laws),
        "bootstrap_draws": boot.get("draws"),
        "bootstrap_seed": boot.get("seed"),
        "bootstrap_resample": boot.get("resample"),
        "compute_model": inp.compute_model(laws).describe(),
        "notes": [str(n) for n in meta.get("notes") or []],
    }

