"""The analysis runs table: every run as the fits see it, and why some are left out.

`prepare_runs` makes it from the `results` table (or a file trained elsewhere): one table shape
(`fitting.runs.table`), budgets (`fitting.runs.budgets`), which runs are used (`fitting.runs.selection`). It is
saved as `analysis_runs` (CSV); `coerce_runs` restores its types after the CSV round trip and
is called once, by the catalog dataset that loads it
(`pipelines.analysis.datasets.AnalysisRunsDataset`), so every fit receives a typed frame.
"""

from __future__ import annotations

import logging
from typing import Any

import pandas as pd

from flops_fit.fitting.runs.budgets import assign_budgets
from flops_fit.fitting.runs.selection import check_enough_budgets, check_runs_vary, select_runs
from flops_fit.fitting.runs.table import normalise_runs, run_data_unit
from flops_fit.parameters.analysis import AnalysisConfig

log = logging.getLogger(__name__)

#: float columns of the table (the others: experiment_id str, budget_id Int64, used_in_fit bool,
#: reason str; status, error_message and the source's own columns as read)
FLOAT_COLUMNS = ("model_size", "num_tokens", "compute", "compute_budget", "final_loss", "budget")


def prepare_runs(
    table: Any,
    cfg: AnalysisConfig,
    source: str | None = None,
) -> tuple[pd.DataFrame, dict[str, Any]]:
    """Normalise, group into budgets, select; returns (runs table, summary for the metadata)."""
    attrs = getattr(table, "attrs", {}) or {}
    label = cfg.source or source or attrs.get("source") or "the results dataset"
    runs = normalise_runs(table, cfg.columns, label, cfg.filter)
    columns_used = dict(runs.attrs.get("columns_used", {}))
    notes = list(runs.attrs.get("notes", []))
    for note in notes:
        log.info("%s: %s", label, note)
    for warning in runs.attrs.get("warnings", []):  # e.g. a run written twice, counted once
        log.warning("%s: %s", label, warning)
        notes.append(warning)
    runs = assign_budgets(runs, cfg.budgets)
    runs = select_runs(runs, cfg)
    runs.attrs["columns_used"] = columns_used
    check_enough_budgets(runs, cfg.min_budgets, label)
    check_runs_vary(runs, label)
    excluded = runs[~runs["used_in_fit"]]
    for _, row in excluded.iterrows():
        log.info("Run %s left out: %s", row["experiment_id"], row["reason"])
    summary = {
        "source": label,
        "columns_used": columns_used,
        "notes": notes,
        "n_runs": int(len(runs)),
        "n_runs_used": int(runs["used_in_fit"].sum()),
        "data_unit": run_data_unit(runs, label),
    }
    log.info(
        "Analysis runs: %d of %d used, %d budgets, D in %s, from %s",
        summary["n_runs_used"],
        summary["n_runs"],
        runs.loc[runs["used_in_fit"], "budget_id"].nunique(),
        summary["data_unit"],
        label,
    )
    return runs, summary


def coerce_runs(runs: pd.DataFrame) -> pd.DataFrame:
    """The runs table as `prepare_runs` made it, after a CSV round trip (types, empty reasons)."""
    out = runs.copy()
    for col in FLOAT_COLUMNS:
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
