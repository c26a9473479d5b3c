"""Which runs the fits use, and why the others are left out.

`select_runs` marks failed runs, runs without a finite positive loss (`schema.loss_problem`, the
rule training applies too; one WARNING counts and names them) or a budget, runs whose D
contradicts their compute (`consistency.contradictions`; one WARNING names them), the
`analysis.drop_highest_loss` highest losses and outliers (`outliers.find_outliers`, configured by
`params:analysis.outliers`), each with its reason; `check_enough_budgets` refuses a table whose
usable runs span too few budgets, saying which runs were left out and why.
"""

from __future__ import annotations

import logging
import math

import numpy as np
import pandas as pd

from flops_fit.fitting.runs.consistency import contradictions
from flops_fit.fitting.runs.outliers import find_outliers
from flops_fit.fitting.runs.table import RunsTableError, run_label
from flops_fit.parameters.analysis import AnalysisConfig
from flops_fit.schema import loss_problem

log = logging.getLogger(__name__)

#: how many left-out runs a WARNING names before "and k more"
MAX_NAMED = 20


def check_enough_budgets(runs: pd.DataFrame, minimum: int, source: str) -> None:
    """Raise RunsTableError if the usable runs span fewer than `minimum` budgets."""
    used = runs[runs["used_in_fit"]] if "used_in_fit" in runs.columns else runs
    count = int(used["budget_id"].dropna().nunique())
    if count < minimum:
        column = (
            runs.attrs.get("columns_used", {}).get("compute_budget")
            or runs.attrs.get("columns_used", {}).get("compute")
            or "C = 6 N D"
        )
        budgets = ", ".join(f"{b:.3g}" for b in sorted(used["budget"].dropna().unique()))
        raise RunsTableError(
            f"{source}: the usable runs span {count} compute budget(s) ({budgets or 'none'}), "
            f"grouped from column '{column}'; at least {minimum} are needed to fit a scaling "
            f"law (analysis.min_budgets). Add runs at more budgets, or check "
            f"analysis.budgets.gap_dex"
            + _left_out_summary(runs)
        )


#: the fewest distinct model sizes among the usable runs: with one, nothing says how the loss
#: moves with N (a budget's parabola needs three; `analysis.budgets` and the fits say so)
MIN_MODEL_SIZES = 2


def check_runs_vary(runs: pd.DataFrame, source: str) -> None:
    """Raise RunsTableError if the usable runs cannot show how the loss moves with N: one
    model size, or one loss, for every run."""
    used = runs[runs["used_in_fit"]] if "used_in_fit" in runs.columns else runs
    sizes = np.unique(used["model_size"].to_numpy(float))
    if sizes.size < MIN_MODEL_SIZES:
        column = runs.attrs.get("columns_used", {}).get("model_size", "model_size")
        shown = ", ".join(f"{n:.4g}" for n in sizes) or "none"
        raise RunsTableError(
            f"{source}: every usable run has the same model size ({shown}, column "
            f"'{column}'): nothing says how the loss moves with N. An IsoFLOP analysis needs "
            f"several sizes per budget (check analysis.columns.model_size)"
            + _left_out_summary(runs)
        )
    losses = np.unique(used["final_loss"].to_numpy(float))
    if losses.size == 1:
        column = runs.attrs.get("columns_used", {}).get("loss", "final_loss")
        raise RunsTableError(
            f"{source}: every usable run has the same loss ({losses[0]:.6g}, column "
            f"'{column}'): nothing moves with N or D, so there is no scaling law to fit. "
            f"Check analysis.columns.loss" + _left_out_summary(runs)
        )


def _left_out_summary(runs: pd.DataFrame) -> str:
    """'. 57 of 57 runs are left out: 57 status failed (e.g. ...)' -- empty when none are."""
    if "reason" not in runs.columns or "used_in_fit" not in runs.columns:
        return ""
    reasons = runs.loc[~runs["used_in_fit"].astype(bool), "reason"].astype(str)
    if reasons.empty:
        return ""
    kinds = reasons.str.split(":", n=1).str[0].str.split("(", n=1).str[0].str.strip()
    parts = []
    for kind, count in kinds.value_counts().items():
        example = reasons[kinds == kind].iloc[0]
        parts.append(f"{count} {kind} (e.g. {example[:160]!r})" if example != kind
                     else f"{count} {kind}")
    return f". {len(reasons)} of {len(runs)} runs are left out: " + "; ".join(parts)


def select_runs(runs: pd.DataFrame, cfg: AnalysisConfig | None = None) -> pd.DataFrame:
    """Add `used_in_fit` and `reason` (why a run is left out; empty when used).

    In order: failed runs, runs without a finite positive loss, runs with no budget, runs
    whose D contradicts their C or budget (`contradictions`), the
    `cfg.drop_highest_loss` highest losses (Epoch AI dropped Chinchilla's 5 highest), then
    outliers: runs too far off their budget's IsoFLOP curve for the study's pooled noise
    (`find_outliers`, `cfg.outliers`).
    """
    cfg = cfg or AnalysisConfig()
    out = runs.copy()
    reason = pd.Series("", index=out.index, dtype=object)
    status = out["status"].astype(str).str.lower()
    failed = status != "completed"
    msgs = out["error_message"] if "error_message" in out else pd.Series("", index=out.index)
    reason[failed] = [
        f"status {s}: {m}" if isinstance(m, str) and m.strip() else f"status {s}"
        for s, m in zip(status[failed], msgs[failed], strict=True)
    ]
    loss = pd.to_numeric(out["final_loss"], errors="coerce").astype(float)
    problems = pd.Series([loss_problem(v) for v in loss], index=out.index, dtype=object)
    bad_loss = (reason == "") & problems.notna()
    reason[bad_loss] = [f"no finite positive loss ({p})" for p in problems[bad_loss]]
    _warn_bad_losses(out, loss, bad_loss)
    if "budget_id" in out.columns:
        no_budget = (reason == "") & out["budget_id"].isna()
        reason[no_budget] = "no compute budget (C, D or compute_budget missing)"
    contradicting = {i: why for i, why in contradictions(out).items() if reason[i] == ""}
    for i, why in contradicting.items():
        reason[i] = why
    _warn_contradictions(out, contradicting)
    k = cfg.drop_highest_loss
    if k > 0:
        candidates = loss[reason == ""].sort_values(ascending=False)
        top = candidates.index[:k]
        reason[top] = f"among the {k} highest losses (analysis.drop_highest_loss = {k})"
    out["reason"] = reason
    out["used_in_fit"] = reason == ""
    if cfg.outliers.enabled and "budget_id" in out.columns:
        flagged = find_outliers(out, cfg.outliers)
        for idx, why in flagged.items():
            out.loc[idx, "reason"] = why
            out.loc[idx, "used_in_fit"] = False
    out["used_in_fit"] = out["used_in_fit"].astype(bool)
    return out


def _warn_bad_losses(runs: pd.DataFrame, loss: pd.Series, bad: pd.Series) -> None:
    """One WARNING that counts and names the runs left out for their loss (schema.loss_problem)."""
    if not bad.any():
        return
    ids = runs.loc[bad, "experiment_id"].astype(str) if "experiment_id" in runs else None
    named = [
        f"{ids[i] if ids is not None else f'row {i + 1}'} ({_shown_loss(loss[i])})"
        for i in runs.index[bad.to_numpy()]
    ]
    shown = ", ".join(named[:MAX_NAMED])
    if len(named) > MAX_NAMED:
        shown += f" and {len(named) - MAX_NAMED} more"
    source = runs.attrs.get("source", "the runs table")
    log.warning(
        "%s: %d of %d runs left out, their final_loss is not a positive finite number: %s",
        source, len(named), len(runs), shown,
    )


def _warn_contradictions(runs: pd.DataFrame, why: dict) -> None:
    """One WARNING that names the runs left out because their D contradicts their compute."""
    if not why:
        return
    named = [f"{run_label(runs, i)}: {reason}" for i, reason in why.items()]
    shown = "; ".join(named[:MAX_NAMED])
    if len(named) > MAX_NAMED:
        shown += f"; and {len(named) - MAX_NAMED} more"
    log.warning(
        "%s: %d of %d runs left out, their D contradicts their compute: %s",
        runs.attrs.get("source", "the runs table"), len(named), len(runs), shown,
    )


def _shown_loss(value: float) -> str:
    if math.isnan(value):
        return "NaN"
    return f"{value:g}"
