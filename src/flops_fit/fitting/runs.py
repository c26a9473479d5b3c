"""One table shape for analysis, whoever trained the runs.

`normalise_runs` turns the training pipeline's `results` table, or a CSV / JSON list of runs
trained elsewhere, into the analysis runs table: the `results` column names
(`experiment_id`, `compute_budget`, `model_size`, `num_tokens`, `final_loss`, `status`,
`error_message`) plus `compute` (each run's C). Columns are found through a mapping
(`analysis.columns`): canonical name -> the source's column name, or a list of candidate names
(the first present wins). N and the loss are required, and D or C; the missing one of D and C
comes from C = 6 N D. Problems raise `RunsTableError` naming the column, the rows and the file.

`select_runs` then decides which runs the fits use and says why the others are left out.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd

log = logging.getLogger(__name__)

#: canonical name -> where it comes from when `analysis.columns` does not say
DEFAULT_COLUMNS: dict[str, list[str]] = {
    "experiment_id": ["experiment_id"],
    "model_size": ["model_size"],
    "num_tokens": ["num_tokens"],
    "compute": ["planned_flops", "compute"],
    "compute_budget": ["compute_budget"],
    "loss": ["final_loss", "loss"],
    "status": ["status"],
    "error_message": ["error_message"],
}
REQUIRED = ("model_size", "loss")
RUN_COLUMNS = (
    "experiment_id",
    "compute_budget",
    "model_size",
    "num_tokens",
    "compute",
    "final_loss",
    "status",
    "error_message",
)
FLOPS_PER_PARAM_TOKEN = 6.0
MAX_LISTED = 5


class RunsTableError(ValueError):
    """A runs table cannot be analysed; the message names the column, the rows and the file."""


def _candidates(spec: Any) -> list[str]:
    if spec is None:
        return []
    if isinstance(spec, str):
        return [spec]
    if isinstance(spec, Sequence):
        return [str(s) for s in spec if s is not None]
    raise RunsTableError(
        f"analysis.columns: expected a column name or a list of names, got {spec!r}"
    )


def _rows(index: Sequence[int], source_kind: str) -> str:
    shown = ", ".join(str(i + 1) for i in index[:MAX_LISTED])
    more = f" and {len(index) - MAX_LISTED} more" if len(index) > MAX_LISTED else ""
    where = (
        " (data rows counted from 1, after the header)"
        if source_kind == "csv"
        else " (records counted from 1)"
    )
    return f"row{'s' if len(index) > 1 else ''} {shown}{more}{where}"


def _shown(value: Any) -> str:
    """A cell as the user wrote it: 'big', -1.5 (not numpy's np.float64(-1.5))."""
    return repr(value.item() if isinstance(value, np.generic) else value)


def _to_frame(table: Any, source: str) -> pd.DataFrame:
    if isinstance(table, pd.DataFrame):
        return table.reset_index(drop=True)
    if isinstance(table, Mapping):
        for key in ("runs", "results", "records", "data"):
            if isinstance(table.get(key), list):
                return pd.DataFrame.from_records(table[key])
        raise RunsTableError(f"{source}: a JSON object must hold a list of runs under 'runs'")
    if isinstance(table, Sequence) and not isinstance(table, (str, bytes)):
        bad = [i for i, r in enumerate(table) if not isinstance(r, Mapping)]
        if bad:
            raise RunsTableError(f"{source}: {_rows(bad, 'json')} are not JSON objects")
        return pd.DataFrame.from_records(list(table))
    raise RunsTableError(f"{source}: expected a table of runs, got {type(table).__name__}")


def _numeric(
    df: pd.DataFrame, column: str, canonical: str, source: str, kind: str, allow_missing: bool
) -> pd.Series:
    raw = df[column]
    values = pd.to_numeric(raw, errors="coerce").astype(float)
    present = raw.notna() & (raw.astype(str).str.strip() != "")
    not_number = np.flatnonzero((present & values.isna()).to_numpy())
    if len(not_number):
        examples = ", ".join(_shown(raw.iloc[i]) for i in not_number[:3])
        raise RunsTableError(
            f"{source}: column '{column}' ({canonical}) has non-numeric values at "
            f"{_rows(not_number, kind)}: {examples}"
        )
    negative = np.flatnonzero((values <= 0).to_numpy())
    if len(negative):
        examples = ", ".join(_shown(raw.iloc[i]) for i in negative[:3])
        raise RunsTableError(
            f"{source}: column '{column}' ({canonical}) must be positive; "
            f"{_rows(negative, kind)} {'hold' if len(negative) > 1 else 'holds'} {examples}"
        )
    if not allow_missing:
        missing = np.flatnonzero((~present).to_numpy())
        if len(missing):
            raise RunsTableError(
                f"{source}: column '{column}' ({canonical}) is empty at {_rows(missing, kind)}"
            )
    return values


def normalise_runs(
    table: Any,
    columns: Mapping[str, Any] | None = None,
    source: str = "results",
    filters: Mapping[str, Any] | None = None,
) -> pd.DataFrame:
    """The analysis runs table (RUN_COLUMNS + any other source columns, kept as they are).

    `filters` keeps only rows whose column equals the value (or one of a list of values), e.g.
    {"condition": "raw_loss"} for a file that lists every point twice.
    """
    kind = "json" if str(source).lower().endswith(".json") else "csv"
    df = _to_frame(table, source)
    for column, wanted in (filters or {}).items():
        if column not in df.columns:
            raise RunsTableError(
                f"{source}: analysis.filter names column '{column}', which the "
                f"table does not have; columns are {list(df.columns)}"
            )
        allowed = wanted if isinstance(wanted, (list, tuple)) else [wanted]
        keep = df[column].astype(str).isin([str(v) for v in allowed])
        df = df[keep.to_numpy()].reset_index(drop=True)
        if df.empty:
            raise RunsTableError(f"{source}: no row has {column} in {allowed} (analysis.filter)")
    mapping = {**DEFAULT_COLUMNS}
    for key, spec in (columns or {}).items():
        if key not in DEFAULT_COLUMNS:
            raise RunsTableError(
                f"analysis.columns.{key}: unknown column role; known roles are "
                f"{sorted(DEFAULT_COLUMNS)}"
            )
        if spec is not None:
            mapping[key] = _candidates(spec)
    found: dict[str, str | None] = {}
    for key, names in mapping.items():
        found[key] = next((n for n in names if n in df.columns), None)
    for key in REQUIRED:
        if found[key] is None:
            raise RunsTableError(
                f"{source}: no column for {key} (looked for {mapping[key]}); the table has "
                f"columns {list(df.columns)}. Map it with --params "
                f"analysis.columns.{key}=<column name>"
            )
    if found["num_tokens"] is None and found["compute"] is None:
        raise RunsTableError(
            f"{source}: neither a token count D (looked for {mapping['num_tokens']}) nor a "
            f"compute C (looked for {mapping['compute']}); one of them is required, the other "
            f"follows from C = 6 N D. The table has columns {list(df.columns)}"
        )
    if df.empty:
        raise RunsTableError(f"{source}: the table has no runs")

    out = pd.DataFrame(index=df.index)
    n = _numeric(df, found["model_size"], "model_size", source, kind, allow_missing=False)
    out["model_size"] = n
    loss = _numeric(df, found["loss"], "loss", source, kind, allow_missing=True)
    d = (
        _numeric(df, found["num_tokens"], "num_tokens", source, kind, allow_missing=False)
        if found["num_tokens"]
        else None
    )
    c = (
        _numeric(df, found["compute"], "compute", source, kind, allow_missing=d is not None)
        if found["compute"]
        else None
    )
    if d is None:
        d = c / (FLOPS_PER_PARAM_TOKEN * n)
    if c is None:
        c = FLOPS_PER_PARAM_TOKEN * n * d
    else:
        c = c.where(c.notna(), FLOPS_PER_PARAM_TOKEN * n * d)
    out["num_tokens"] = d
    out["compute"] = c
    out["compute_budget"] = (
        _numeric(df, found["compute_budget"], "compute_budget", source, kind, allow_missing=True)
        if found["compute_budget"]
        else np.nan
    )
    out["final_loss"] = loss
    if found["experiment_id"]:
        ids = df[found["experiment_id"]].astype(str)
        dup = np.flatnonzero(ids.duplicated(keep=False).to_numpy())
        if len(dup):
            raise RunsTableError(
                f"{source}: column '{found['experiment_id']}' (experiment_id) "
                f"repeats ids at {_rows(dup, kind)}"
            )
        out["experiment_id"] = ids
    else:
        width = max(4, len(str(len(df))))
        out["experiment_id"] = [f"run-{i + 1:0{width}d}" for i in range(len(df))]
    if found["status"]:
        out["status"] = df[found["status"]].fillna("").astype(str).str.strip().str.lower()
    else:
        out["status"] = "completed"
    out["error_message"] = (
        df[found["error_message"]].where(df[found["error_message"]].notna(), "").astype(str)
        if found["error_message"]
        else ""
    )
    extra = [col for col in df.columns if col not in set(found.values()) | set(RUN_COLUMNS)]
    for col in extra:
        out[col] = df[col]
    ordered = list(RUN_COLUMNS) + extra
    out = out[ordered].reset_index(drop=True)
    out.attrs["source"] = source
    out.attrs["columns_used"] = {k: v for k, v in found.items() if v is not None}
    return out


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


def select_runs(
    runs: pd.DataFrame, drop_highest_loss: int = 0, outliers: Mapping[str, Any] | None = None
) -> pd.DataFrame:
    """Add `used_in_fit` and `reason` (why a run is left out; empty when used).

    In order: failed runs, runs without a finite positive loss, runs with no budget, the
    `drop_highest_loss` highest losses (Epoch AI dropped Chinchilla's 5 highest), then outliers
    by the robust per-budget curve rule of `find_outliers`.
    """
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
    bad_loss = (reason == "") & ~(np.isfinite(loss) & (loss > 0))
    reason[bad_loss] = [f"no finite positive loss ({v})" for v in loss[bad_loss]]
    if "budget_id" in out.columns:
        no_budget = (reason == "") & out["budget_id"].isna()
        reason[no_budget] = "no compute budget (C, D or compute_budget missing)"
    k = int(drop_highest_loss or 0)
    if k > 0:
        candidates = loss[reason == ""].sort_values(ascending=False)
        top = candidates.index[:k]
        reason[top] = f"among the {k} highest losses (analysis.drop_highest_loss = {k})"
    out["reason"] = reason
    out["used_in_fit"] = reason == ""
    cfg = dict(outliers or {})
    if cfg.get("enabled", True) and "budget_id" in out.columns:
        flagged = find_outliers(
            out,
            k=float(cfg.get("k", 10.0)),
            min_points=int(cfg.get("min_points", 7)),
            min_scale=float(cfg.get("min_scale", 0.005)),
            max_fraction=float(cfg.get("max_fraction", 0.2)),
        )
        for idx, why in flagged.items():
            out.loc[idx, "reason"] = why
            out.loc[idx, "used_in_fit"] = False
    out["used_in_fit"] = out["used_in_fit"].astype(bool)
    return out


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


def find_outliers(
    runs: pd.DataFrame,
    k: float = 10.0,
    min_points: int = 7,
    min_scale: float = 0.005,
    max_fraction: float = 0.2,
) -> dict[Any, str]:
    """Runs whose log-loss lies more than k robust SDs off their budget's IsoFLOP curve
    (index -> reason).

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
        max_flag = int(math.floor(max_fraction * len(idx)))
        budget = float(group["budget"].iloc[0])
        for j in order[:max_flag]:
            if score[j] <= k:
                break
            flagged[idx[j]] = (
                f"outlier: log-loss {resid[j] - med:+.3f} off the budget {budget:.3g} IsoFLOP "
                f"curve, {score[j]:.1f} robust SDs (limit {k:g}; analysis.outliers)"
            )
    return flagged
