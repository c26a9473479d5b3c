"""The study report: a summary of the analysis outputs, rendered to HTML and Markdown.

`summarise_study` turns the tables and the fitted laws into one JSON-serialisable dict (raw
numbers, nothing formatted) that both templates read. It states the question and the answer
first: at the headline budget, train N on D tokens, with the interval and how far that is an
extrapolation. Missing or empty inputs never raise; they are listed in `missing` with the reason.

The templates live in `flops_fit/templates/` and are rendered with Jinja2.
"""

from __future__ import annotations

import base64
import io
import math
from collections.abc import Mapping
from typing import Any

import numpy as np
import pandas as pd
from jinja2 import Environment, PackageLoader, StrictUndefined, select_autoescape
from matplotlib.figure import Figure

from flops_fit.reporting import analysis_api
from flops_fit.reporting import inputs as inp
from flops_fit.reporting.figures import FIGURES
from flops_fit.reporting.formatting import (
    as_float,
    format_count,
    format_flops,
    format_interval,
    format_percent,
    format_sci,
    format_sig,
)

QUESTION = ("For a compute budget C, how many parameters N should the model have and on how many "
            "tokens D should it train to reach the lowest loss?")
#: The fallback order when the preferred headline approach could not be fitted.
HEADLINE_ORDER = ("approach_3", "approach_2", "approach_1")


# --------------------------------------------------------------------------------------------
# summary
# --------------------------------------------------------------------------------------------


def summarise_study(
    runs: Any,
    scaling_laws: Any,
    optimal_points: Any = None,
    predictions: Any = None,
    scaling_law_curves: Any = None,
    *,
    headline_budget: float = 1e24,
    headline_approach: str = "approach_3",
    title: str = "Compute-optimal scaling report",
) -> dict[str, Any]:
    """Everything the report says, as plain JSON-ready data (numbers unformatted).

    `runs` is the run table (`analysis_runs`: every run with analysis's canonical columns,
    budget and used_in_fit / reason; a `results`-shaped table works too).
    """
    laws = inp.laws_dict(scaling_laws)
    raw_runs, runs = runs, inp.runs_frame(runs)
    optima = inp.optimal_frame(optimal_points)
    preds = inp.predictions_frame(predictions)
    curves = inp.curves_frame(scaling_law_curves)
    meta = inp.section(laws, "meta")
    confidence = as_float(meta.get("confidence_level")) or 0.95

    missing = _missing_inputs(raw_runs, runs, laws, optima, preds, curves)
    notes: list[str] = []
    summary: dict[str, Any] = {
        "title": title,
        "question": QUESTION,
        "confidence_level": confidence,
        "missing": missing,
        "headline": _headline(laws, preds, curves, optima, headline_budget, headline_approach,
                              confidence, notes),
        "laws": [_law_summary(laws, a) for a in inp.APPROACHES],
        "agreement": _agreement(laws),
        "predictions": _predictions(preds),
        "extrapolation_check": _extrapolation_check(laws),
        "inventory": _inventory(runs, laws, raw_runs is not None),
        "meta": _meta(meta, laws),
        "figures": [{"name": name, **spec} for name, spec in FIGURES.items()],
    }
    summary["warnings"] = _warnings(laws) + notes
    return _json_ready(summary)


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
                        "runs completed with a finite loss (see the run inventory)."})
    if not laws:
        missing.append({"input": "scaling_laws", "why": "no fitted laws were given (missing or "
                        "empty): the analysis pipeline has not run, or had nothing to fit."})
    elif not any(_fitted(laws, a) for a in inp.APPROACHES):
        why = "; ".join(w for a in inp.APPROACHES for w in inp.approach_warnings(laws, a))
        missing.append({"input": "scaling_laws", "why": "no approach could be fitted"
                        + (f": {why}" if why else ".")})
    for name, frame in (("optimal_points", optima), ("predictions", preds),
                        ("scaling_law_curves", curves)):
        if frame.dropna(subset=["compute_budget"]).empty:
            missing.append({"input": name, "why": f"{name} is missing or empty, so the parts of "
                            "the report drawn from it are blank."})
    return missing


def _fitted(laws: Mapping[str, Any], approach: str) -> bool:
    return inp.law(laws, approach, "n_opt") is not None and \
        inp.law(laws, approach, "d_opt") is not None


# ---- headline ------------------------------------------------------------------------------


def _headline(laws, preds, curves, optima, budget, preferred, confidence, notes) -> dict[str, Any]:
    budget = float(budget)
    head: dict[str, Any] = {"budget": budget, "preferred_approach": preferred,
                            "available": False, "fallback_note": None}
    order = [preferred] + [a for a in HEADLINE_ORDER if a != preferred]
    approach = next((a for a in order if _fitted(laws, a)), None)
    if approach is None:
        head["why_missing"] = ("No approach produced a fitted N_opt(C) and D_opt(C), so there "
                               "is no answer to give yet" + (" (scaling_laws is empty)."
                                                              if not laws else "."))
        head["text"] = (f"No compute-optimal allocation for {format_flops(budget)} FLOPs yet. "
                        + head["why_missing"])
        return head
    if approach != preferred:
        why = "; ".join(inp.approach_warnings(laws, preferred)) or "it has no fitted law"
        head["fallback_note"] = (f"{inp.APPROACH_NAMES.get(preferred, preferred)} was not "
                                 f"fitted ({why}); the headline uses "
                                 f"{inp.APPROACH_NAMES[approach]} instead.")
    head.update(approach=approach, approach_name=inp.APPROACH_NAMES[approach],
                approach_method=inp.APPROACH_METHODS[approach], available=True)

    values, source = _prediction_at(preds, approach, budget)
    if values is None:
        values, source = _curve_at(curves, approach, budget)
    if values is None:
        values, source = _law_at(laws, approach, budget), "law"
        notes.append(f"The headline budget {format_flops(budget)} is neither one of the "
                     "predicted target budgets nor inside the fitted curves' range, so it is "
                     "given without an interval.")
    head.update(values)
    head.setdefault("tokens_per_param_interval", None)  # curves and bare laws carry none
    head["source"] = source

    fitted = optima.loc[optima["used_in_fit"] & (optima["approach"] == approach),
                        "compute_budget"].dropna()
    largest = float(fitted.max()) if not fitted.empty else None
    head["largest_fitted_budget"] = largest
    head["extrapolation_factor"] = budget / largest if largest else None
    head["extrapolation_note"] = _extrapolation_note(budget, largest)
    head["text"] = _headline_text(head, confidence)
    return head


def _extrapolation_note(budget: float, largest: float | None) -> str | None:
    if not largest:
        return None
    factor = budget / largest
    if factor <= 1:
        return (f"{format_flops(budget)} FLOPs lies within the budgets of the fit (largest "
                f"{format_flops(largest)} FLOPs).")
    note = (f"{format_flops(budget)} FLOPs is {format_sig(factor, 2)}× the largest budget in the "
            f"fit ({format_flops(largest)} FLOPs)")
    if factor >= 10:
        note += (f": an extrapolation over {format_sig(math.log10(factor), 2)} orders of "
                 "magnitude. The interval covers the bootstrap noise of the fit, not a change of "
                 "behaviour at larger scale")
    return note + "."


def _close(a: pd.Series, b: float) -> pd.Series:
    return np.isclose(a.astype(float), b, rtol=1e-6, atol=0)


def _prediction_at(preds: pd.DataFrame, approach: str, budget: float):
    rows = preds[(preds["approach"] == approach) & _close(preds["compute_budget"], budget)]
    rows = rows.dropna(subset=["model_size", "num_tokens"])
    if rows.empty:
        return None, None
    row = rows.iloc[0]
    return _quantities(row, ("model_size", "num_tokens", "loss", "tokens_per_param")), \
        "predictions"


def _quantities(row, names) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for name in names:
        out[name] = as_float(row.get(name))
        lo, hi = as_float(row.get(f"{name}_lo")), as_float(row.get(f"{name}_hi"))
        out[f"{name}_interval"] = [lo, hi] if lo is not None and hi is not None else None
    if out.get("tokens_per_param") is None and out["model_size"] and out["num_tokens"]:
        out["tokens_per_param"] = out["num_tokens"] / out["model_size"]
    return out


def _curve_at(curves: pd.DataFrame, approach: str, budget: float):
    c = curves[(curves["approach"] == approach)].dropna(subset=["compute_budget", "model_size",
                                                                "num_tokens"])
    c = c[c["compute_budget"] > 0]
    if c.empty or not (c["compute_budget"].min() <= budget <= c["compute_budget"].max()):
        return None, None
    x = np.log(c["compute_budget"].to_numpy(float))
    row: dict[str, float] = {}
    for col in ("model_size", "model_size_lo", "model_size_hi", "num_tokens", "num_tokens_lo",
                "num_tokens_hi", "loss", "loss_lo", "loss_hi"):
        y = c[col].to_numpy(float)
        ok = np.isfinite(y) & (y > 0)
        if ok.sum() >= 2:
            row[col] = float(np.exp(np.interp(math.log(budget), x[ok], np.log(y[ok]))))
    return _quantities(row, ("model_size", "num_tokens", "loss")), "scaling_law_curves"


def _law_at(laws, approach: str, budget: float) -> dict[str, Any]:
    n = inp.evaluate_law(inp.law(laws, approach, "n_opt"), budget)
    d = inp.evaluate_law(inp.law(laws, approach, "d_opt"), budget)
    loss = None
    l_law = inp.law(laws, approach, "l_opt")
    if l_law is not None:
        loss = inp.evaluate_law(l_law, budget)
    elif approach == "approach_3" and inp.surface(laws) is not None:
        try:
            loss = float(analysis_api.parametric_loss(n, d, inp.surface(laws)))
        except analysis_api.AnalysisUnavailable:
            loss = None
    return {"model_size": n, "model_size_interval": None, "num_tokens": d,
            "num_tokens_interval": None, "loss": loss, "loss_interval": None,
            "tokens_per_param": d / n}


def _headline_text(head: dict[str, Any], confidence: float) -> str:
    text = (f"At {format_flops(head['budget'])} FLOPs, train N ≈ {format_count(head['model_size'])}"
            f" parameters on D ≈ {format_count(head['num_tokens'])} tokens")
    level = f"{format_sig(100 * confidence, 3)}%"
    if head.get("model_size_interval") and head.get("num_tokens_interval"):
        text += (f" ({level} interval: N {format_interval(head['model_size_interval'], format_count)}"
                 f", D {format_interval(head['num_tokens_interval'], format_count)})")
    else:
        text += " (no interval available)"
    return text + "."


# ---- laws, agreement, predictions, extrapolation ---------------------------------------------


def _law_summary(laws, approach: str) -> dict[str, Any]:
    entry: dict[str, Any] = {
        "approach": approach,
        "name": inp.APPROACH_NAMES[approach],
        "method": inp.APPROACH_METHODS[approach],
        "fitted": _fitted(laws, approach),
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
                {"name": name, "value": as_float(params.get(name)),
                 "interval": inp._pair(intervals.get(name))}
                for name in ("E", "A", "B", "alpha", "beta", "a", "b", "G")
                if as_float(params.get(name)) is not None
            ]
            entry["objective"] = as_float(params.get("objective"))
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
        out.append({
            "name": name.replace("_", " "),
            "agree": item.get("agree") if isinstance(item.get("agree"), bool) else None,
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
        entry.update(_quantities(row, ("model_size", "num_tokens", "tokens_per_param", "loss")))
        rows.append(entry)
    return rows


def _extrapolation_check(laws) -> dict[str, Any]:
    check = inp.section(laws, "extrapolation_check")
    rows = []
    for approach in inp.APPROACHES:
        item = check.get(approach)
        if not isinstance(item, Mapping):
            continue
        rows.append({"approach": approach, "name": inp.APPROACH_NAMES[approach],
                     **{k: as_float(item.get(k)) for k in (
                         "predicted_loss", "actual_loss", "loss_rel_error", "predicted_n_opt",
                         "actual_n_opt", "n_opt_rel_error")}})
    return {"held_out_budget": as_float(check.get("held_out_budget")), "rows": rows}


def _warnings(laws) -> list[str]:
    out = [str(w) for w in laws.get("warnings") or []]
    for approach in inp.APPROACHES:
        out += [f"{inp.APPROACH_NAMES[approach]}: {w}" for w in inp.approach_warnings(laws,
                                                                                      approach)]
    return out


# ---- run inventory -------------------------------------------------------------------------


def _inventory(runs: pd.DataFrame, laws, have_runs: bool) -> dict[str, Any]:
    excluded = inp.excluded_runs(laws, runs)
    completed = runs[runs["completed"]]
    failed = runs[~runs["completed"]]
    is_excluded = completed["experiment_id"].isin(excluded)
    inventory: dict[str, Any] = {
        "have_runs": have_runs,
        "total": int(len(runs)),
        "completed": int(len(completed)),
        "failed": int(len(failed)),
        "excluded": int(is_excluded.sum()),
        "used": int((~is_excluded).sum()),
        "failed_runs": [
            {"experiment_id": r.experiment_id, "compute_budget": as_float(r.budget),
             "model_size": as_float(r.model_size),
             "status": r.status or "unknown",
             "error": r.error_message or "no error message recorded"}
            for r in failed.itertuples(index=False)
        ],
        "excluded_runs": [],
        "per_budget": [],
    }
    by_id = runs.set_index("experiment_id") if len(runs) else None
    for eid, reason in excluded.items():
        row = by_id.loc[eid] if by_id is not None and eid in by_id.index else None
        if isinstance(row, pd.DataFrame):
            row = row.iloc[0]
        inventory["excluded_runs"].append({
            "experiment_id": eid, "reason": reason,
            "compute_budget": as_float(row["budget"]) if row is not None else None,
            "model_size": as_float(row["model_size"]) if row is not None else None,
            "final_loss": as_float(row["final_loss"]) if row is not None else None,
        })
    for budget, group in runs.groupby("budget"):
        done = group[group["completed"]]
        inventory["per_budget"].append({
            "compute_budget": as_float(budget), "runs": int(len(group)),
            "completed": int(len(done)), "failed": int(len(group) - len(done)),
            "excluded": int(done["experiment_id"].isin(excluded).sum()),
            "best_loss": as_float(done["final_loss"].min()) if len(done) else None,
        })
    if {"num_replicas", "num_replicas_completed"} <= set(runs.columns) and len(runs):
        total = pd.to_numeric(runs["num_replicas"], errors="coerce").sum()
        done = pd.to_numeric(runs["num_replicas_completed"], errors="coerce").sum()
        inventory["replicas"] = {"total": int(total), "completed": int(done),
                                 "failed": int(total - done)}
    return inventory


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
    }


def _json_ready(value: Any) -> Any:
    """Plain Python types only, NaN/inf as None: the summary is saved as strict JSON."""
    if isinstance(value, Mapping):
        return {str(k): _json_ready(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_json_ready(v) for v in value]
    if isinstance(value, (bool, np.bool_)):
        return bool(value)
    if isinstance(value, (int, np.integer)):
        return int(value)
    if isinstance(value, (float, np.floating)):
        return float(value) if math.isfinite(value) else None
    if value is None or isinstance(value, str):
        return value
    return str(value)


# --------------------------------------------------------------------------------------------
# rendering
# --------------------------------------------------------------------------------------------


def figure_to_data_uri(fig: Figure, dpi: float = 110) -> str:
    """The figure as an inline `data:image/png;base64,...` URI (in memory; no file is written)."""
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=dpi)
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")


def _md_cell(value: Any) -> str:
    return str(value).replace("|", "\\|").replace("\n", " ")


def template_environment() -> Environment:
    env = Environment(
        loader=PackageLoader("flops_fit", "templates"),
        autoescape=select_autoescape(enabled_extensions=("html", "html.j2"),
                                     default_for_string=False),
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
    )
    env.filters.update(
        count=format_count,
        flops=format_flops,
        sig=format_sig,
        sci=format_sci,
        pct=format_percent,
        md=_md_cell,
        interval=lambda pair, kind="sig": format_interval(
            pair, {"count": format_count, "flops": format_flops, "sig": format_sig}[kind]),
    )
    return env


def render_html(summary: Mapping[str, Any], figures: Mapping[str, Figure | None] | None = None,
                embed_dpi: float = 110) -> str:
    """The self-contained HTML report: inline CSS, figures embedded as base64 PNG."""
    images = {}
    for name, fig in (figures or {}).items():
        if fig is not None:
            images[name] = figure_to_data_uri(fig, embed_dpi)
    return template_environment().get_template("report.html.j2").render(s=summary, images=images)


def render_markdown(summary: Mapping[str, Any]) -> str:
    """The Markdown report; figures are linked by file name (they sit next to report.md)."""
    return template_environment().get_template("report.md.j2").render(s=summary)
