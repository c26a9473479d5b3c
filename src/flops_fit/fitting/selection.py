"""Which runs the fits use, and why the others are left out.

`select_runs` marks failed runs, runs without a finite positive loss (`schema.loss_problem`, the
rule training applies too; one WARNING counts and names them) or a budget, the
`analysis.drop_highest_loss` highest losses and outliers (`find_outliers`, configured by
`params:analysis.outliers`), each with its reason; `check_enough_budgets` refuses a table whose
usable runs span too few budgets, saying which runs were left out and why.
"""

from __future__ import annotations

import logging
import math
from typing import Any

import numpy as np
import pandas as pd

from flops_fit.fitting.runs import RunsTableError
from flops_fit.parameters.analysis import AnalysisConfig, OutlierRule
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
            f"law. Add runs at more budgets, or check analysis.budgets.gap_dex"
            + _left_out_summary(runs)
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

    In order: failed runs, runs without a finite positive loss, runs with no budget, the
    `cfg.drop_highest_loss` highest losses (Epoch AI dropped Chinchilla's 5 highest), then
    outliers by the robust per-budget curve rule of `find_outliers` (`cfg.outliers`).
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


def _shown_loss(value: float) -> str:
    if math.isnan(value):
        return "NaN"
    return f"{value:g}"


def _robust_curve_residuals(
    x: np.ndarray, y: np.ndarray, degree: int = 3, iterations: int = 50
) -> np.ndarray:
    """Residuals of y from a polynomial in x fitted by Tukey-bisquare IRLS (c = 4.685)."""
    design = np.stack([x**p for p in range(degree, -1, -1)], axis=1)
    w = np.ones_like(y)
    resid = y
    for _ in range(iterations):
        sw = np.sqrt(w)
        coef = np.linalg.lstsq(design * sw[:, None], y * sw, rcond=None)[0]
        new = y - design @ coef
        done = np.allclose(new, resid, rtol=0.0, atol=1e-12)
        resid = new
        scale = 1.4826 * np.median(np.abs(resid - np.median(resid)))
        if done or scale <= 0:
            break
        u = resid / (4.685 * scale)
        w_new = np.where(np.abs(u) < 1, (1 - u * u) ** 2, 0.0)
        if (w_new > 0).sum() < degree + 2:  # too few points would keep any weight: stop here
            break
        w = w_new
    return resid


def find_outliers(runs: pd.DataFrame, rule: OutlierRule | None = None) -> dict[Any, str]:
    """Runs whose log-loss lies more than k robust SDs off their budget's IsoFLOP curve
    (index -> reason); k, min_points, min_scale and max_fraction are `rule`'s
    (`params:analysis.outliers`).

    Per budget with at least `min_points` used runs: fit log(loss) as a cubic in log10 N by
    Tukey-bisquare IRLS, so that a spike does not drag the curve towards itself (a least-squares
    parabola hides an interior 15 % spike at ~4 SDs; the robust fit shows it at ~28) and the
    asymmetric walls of real IsoFLOP profiles are followed (a parabola flags the steep
    large-model wall of Chinchilla's 1e19 budget as outliers; the cubic does not). The scale is
    max(1.4826 * MAD of the residuals, `min_scale`); runs with |residual - median| > k * scale
    are flagged, worst first, at most `max_fraction` of the budget. The floor keeps a
    near-noiseless budget (MAD ~ 0) from flagging ordinary scatter: 0.005 is half a percent of
    loss. Calibration (tests/fitting/test_runs.py): with 1 % log-normal noise, 7-12 sizes per
    budget, no score reached 10 in 3,000 simulated budgets, while a 10 % loss spike scores ~19.
    On the digitised Chinchilla runs it flags one run, the second-highest loss of all (Epoch
    AI's manual rule drops it too). A run at either end of a budget's range bends the curve
    with it and cannot be told from curvature: the rule is for loss spikes and
    diverged-but-finite runs, not for every doubt.
    """
    rule = rule or OutlierRule()
    k, min_points, min_scale = rule.k, rule.min_points, rule.min_scale
    flagged: dict[Any, str] = {}
    used = runs[runs["used_in_fit"]]
    for _, group in used.groupby("budget_id"):
        if len(group) < max(min_points, 6):
            continue
        idx = np.asarray(group.index)
        x = np.log10(group["model_size"].to_numpy(float))
        y = np.log(group["final_loss"].to_numpy(float))
        resid = _robust_curve_residuals(x, y)
        med = np.median(resid)
        scale = max(1.4826 * np.median(np.abs(resid - med)), min_scale)
        score = np.abs(resid - med) / scale
        order = np.argsort(-score)
        max_flag = int(math.floor(rule.max_fraction * len(idx)))
        budget = float(group["budget"].iloc[0])
        for j in order[:max_flag]:
            if score[j] <= k:
                break
            flagged[idx[j]] = (
                f"outlier: log-loss {resid[j] - med:+.3f} off the budget {budget:.3g} IsoFLOP "
                f"curve, {score[j]:.1f} robust SDs (limit {k:g}; analysis.outliers)"
            )
    return flagged
