"""Reading the analysis outputs defensively: every figure and the report accept None, empty
tables, unfitted approaches (nulls) and stray types, and say what is missing instead of failing.

The column and approach names are those of `flops_fit.schema` (DESIGN.md, "Data contracts");
the science (budget grouping) is `flops_fit.fitting`'s, the one place that computes it. What
is reporting's own: how an approach is named, described and coloured.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import pandas as pd

from flops_fit.fitting.runs.budgets import assign_budgets
from flops_fit.fitting.surface.compute_model import ComputeModel
from flops_fit.fitting.surface.law import PARAM_NAMES
from flops_fit.reporting.formatting import DataUnit, LossUnit, as_float
from flops_fit.schema import (
    ANALYSIS_RUN_COLUMNS,
    CURVE_COLUMNS,
    LAW_COLUMNS,
    OPTIMAL_POINT_COLUMNS,
    PREDICTION_COLUMNS,
    loss_problem,
)

APPROACH_NAMES: dict[str, str] = {
    "approach_1": "Approach 1",
    "approach_2": "Approach 2",
    "approach_3": "Approach 3",
}
APPROACH_METHODS: dict[str, str] = {
    "approach_1": "lowest loss per budget",
    "approach_2": "IsoFLOP parabolas",
    "approach_3": "parametric fit of L(N, D)",
}
# Okabe-Ito: distinguishable with the common colour-vision deficiencies, and from viridis.
APPROACH_COLOURS: dict[str, str] = {
    "approach_1": "#0072B2",
    "approach_2": "#E69F00",
    "approach_3": "#CC3311",
}
#: The fitted power laws, in the order the report lists them: n_opt, d_opt, l_opt.
LAW_KEYS: tuple[str, ...] = tuple(LAW_COLUMNS)

_TEXT_COLUMNS = {"experiment_id", "status", "error_message", "approach", "reason", "budget_id"}


def _frame(data: Any, columns: tuple[str, ...]) -> pd.DataFrame:
    """A DataFrame with at least `columns` (missing ones filled with NaN), numbers as floats."""
    if data is None:
        df = pd.DataFrame()
    elif isinstance(data, pd.DataFrame):
        df = data.copy()
    else:
        df = pd.DataFrame(data)
    for col in columns:
        if col not in df.columns:
            df[col] = np.nan
    for col in df.columns:
        if col in columns and col not in _TEXT_COLUMNS and col != "used_in_fit":
            df[col] = pd.to_numeric(df[col], errors="coerce")
    return df.reset_index(drop=True)


def _as_bool(value: Any) -> bool:
    if isinstance(value, (bool, np.bool_)):
        return bool(value)
    if isinstance(value, str):
        return value.strip().lower() in ("true", "1", "yes")
    x = as_float(value)
    return bool(x) if x is not None else False


def _text(series: pd.Series) -> pd.Series:
    return series.astype(object).where(series.notna(), "").astype(str)


def runs_frame(runs: Any) -> pd.DataFrame:
    """A table of runs (`analysis_runs`, or a `results`-shaped table), one row per experiment.

    `completed` marks rows with status completed and a usable loss (`schema.loss_problem`, the
    rule of training and analysis: a loss of -1 is not a result); `budget` is each run's budget
    as analysis groups them (kept when the table already carries it, as `analysis_runs` does).
    """
    df = _frame(runs, ANALYSIS_RUN_COLUMNS)
    df["experiment_id"] = _text(df["experiment_id"])
    df["status"] = _text(df["status"]).str.lower()
    df["error_message"] = _text(df["error_message"])
    usable = pd.Series([loss_problem(v) is None for v in df["final_loss"]], index=df.index,
                       dtype=bool)
    df["completed"] = (df["status"] == "completed") & usable
    if "budget" in df.columns:
        df["budget"] = pd.to_numeric(df["budget"], errors="coerce")
    if not len(df):
        df["budget"] = pd.Series(dtype=float)
    elif "budget" not in df.columns or df["budget"].isna().all():
        df = assign_budgets(df)
    return df


def optimal_frame(optimal_points: Any) -> pd.DataFrame:
    df = _frame(optimal_points, OPTIMAL_POINT_COLUMNS)
    df["approach"] = _text(df["approach"])
    df["reason"] = _text(df["reason"])
    # dtype bool even with no rows: an empty object column would index columns, not rows
    df["used_in_fit"] = pd.Series([_as_bool(v) for v in df["used_in_fit"]], index=df.index,
                                  dtype=bool)
    missing_ratio = df["tokens_per_param"].isna()
    df.loc[missing_ratio, "tokens_per_param"] = (
        df.loc[missing_ratio, "num_tokens"] / df.loc[missing_ratio, "model_size"]
    )
    return df


def fitted_budgets(optima: pd.DataFrame, approach: str) -> pd.Series:
    """The budgets whose optima `approach`'s power laws were fitted to (`optimal_frame`)."""
    if not len(optima):
        return pd.Series(dtype=float)
    return optima.loc[optima["used_in_fit"] & (optima["approach"] == approach),
                      "compute_budget"].dropna()


def curves_frame(curves: Any) -> pd.DataFrame:
    df = _frame(curves, CURVE_COLUMNS)
    df["approach"] = _text(df["approach"])
    return df.sort_values(["approach", "compute_budget"]).reset_index(drop=True)


def predictions_frame(predictions: Any) -> pd.DataFrame:
    df = _frame(predictions, PREDICTION_COLUMNS)
    df["approach"] = _text(df["approach"])
    return df.sort_values(["compute_budget", "approach"]).reset_index(drop=True)


def laws_dict(scaling_laws: Any) -> dict[str, Any]:
    return dict(scaling_laws) if isinstance(scaling_laws, Mapping) else {}


def section(laws: Mapping[str, Any], key: str) -> dict[str, Any]:
    value = laws.get(key)
    return dict(value) if isinstance(value, Mapping) else {}


def not_a_loss_warning(laws: Mapping[str, Any]) -> str | None:
    """Analysis's warning that the analysed values may not be a loss (`fitting.checks.sweep`)."""
    return section(laws, "diagnostics").get("not_a_loss_warning") or None


def law(laws: Mapping[str, Any], approach: str, key: str) -> dict[str, Any] | None:
    """A fitted power law y = coefficient · C^exponent, or None when it was not fitted."""
    entry = section(laws, approach).get(key)
    if not isinstance(entry, Mapping):
        return None
    coefficient, exponent = as_float(entry.get("coefficient")), as_float(entry.get("exponent"))
    if coefficient is None or exponent is None or coefficient <= 0:
        return None
    interval = entry.get("interval") if isinstance(entry.get("interval"), Mapping) else {}
    return {
        "coefficient": coefficient,
        "exponent": exponent,
        "r2": as_float(entry.get("r2")),
        "coefficient_interval": interval_pair(interval.get("coefficient")),
        "exponent_interval": interval_pair(interval.get("exponent")),
    }


def interval_pair(value: Any) -> list[float] | None:
    """[lo, hi] as floats when `value` is a pair of finite numbers, else None."""
    if isinstance(value, (list, tuple)) and len(value) == 2:
        lo, hi = as_float(value[0]), as_float(value[1])
        if lo is not None and hi is not None:
            return [lo, hi]
    return None


def is_fitted(laws: Mapping[str, Any], approach: str) -> bool:
    """Whether `approach` has fitted N_opt(C) and D_opt(C) laws (what an answer needs)."""
    return law(laws, approach, "n_opt") is not None and law(laws, approach, "d_opt") is not None


def row_quantities(row: Any, names: tuple[str, ...]) -> dict[str, Any]:
    """From a predictions- or curves-shaped row: each of `names` as a float (or None) and
    `<name>_interval` as [lo, hi] from `<name>_lo` / `<name>_hi` (or None). D/N is derived from
    N and D when the row does not carry it."""
    out: dict[str, Any] = {}
    for name in names:
        out[name] = as_float(row.get(name))
        lo, hi = as_float(row.get(f"{name}_lo")), as_float(row.get(f"{name}_hi"))
        out[f"{name}_interval"] = [lo, hi] if lo is not None and hi is not None else None
    if out.get("tokens_per_param") is None and out["model_size"] and out["num_tokens"]:
        out["tokens_per_param"] = out["num_tokens"] / out["model_size"]
    return out


def evaluate_law(fitted: Mapping[str, Any], budget: float) -> float:
    return float(fitted["coefficient"] * budget ** fitted["exponent"])


def surface(laws: Mapping[str, Any]) -> dict[str, Any] | None:
    """The Approach 3 section when its fitted parameters (E, A, B, alpha, beta) are all finite,
    else None."""
    a3 = section(laws, "approach_3")
    if all(as_float(a3.get(k)) is not None for k in PARAM_NAMES):
        return a3
    return None


def compute_model(laws: Mapping[str, Any]) -> ComputeModel:
    """The study's compute model C = f(N) D (scaling_laws["compute_model"]; absent: 6 N D)."""
    return ComputeModel.from_dict(laws.get("compute_model") if isinstance(laws, Mapping) else None)


def approach_warnings(laws: Mapping[str, Any], approach: str) -> list[str]:
    return [str(w) for w in section(laws, approach).get("warnings") or []]


def excluded_runs(laws: Mapping[str, Any], runs: pd.DataFrame | None = None) -> dict[str, str]:
    """experiment_id -> why analysis left a run out of the fits: the `excluded_runs` of
    scaling_laws (which lists failed runs too: a caller that wants the completed runs left out
    filters by `completed`), plus completed runs whose `used_in_fit` is false in the run table."""
    out: dict[str, str] = {}
    for item in laws.get("excluded_runs") or []:
        if isinstance(item, Mapping) and item.get("experiment_id") is not None:
            out[str(item["experiment_id"])] = str(item.get("reason") or "no reason given")
    if runs is not None and "used_in_fit" in runs.columns and len(runs):
        left_out = runs["completed"] & ~runs["used_in_fit"].map(_as_bool)
        reasons = runs["reason"] if "reason" in runs.columns else pd.Series("", index=runs.index)
        for eid, why in zip(runs.loc[left_out, "experiment_id"], reasons[left_out], strict=True):
            text = str(why) if isinstance(why, str) and why.strip() else "left out by analysis"
            out.setdefault(str(eid), text)
    return out


def analysed_curves(curves: Any, runs: Any) -> pd.DataFrame | None:
    """The loss-curve points of the runs in `runs` (a curves file left by another study in the
    same data folder is not this analysis's); None when there are none."""
    if not isinstance(curves, pd.DataFrame) or curves.empty or "experiment_id" not in curves:
        return None
    if isinstance(runs, pd.DataFrame) and "experiment_id" in runs.columns:
        ids = set(runs["experiment_id"].astype(str))
        curves = curves[curves["experiment_id"].astype(str).isin(ids)]
    return curves if len(curves) else None


def data_unit(laws: Mapping[str, Any], runs: Any = None) -> DataUnit:
    """What D counts: scaling_laws' `data_unit`, else the one unit of the runs' `data_unit`
    column, else tokens (a table from before units, or one that mixes them: analysis refuses
    those)."""
    unit = laws.get("data_unit") if isinstance(laws, Mapping) else None
    if not (isinstance(unit, str) and unit.strip()) and isinstance(runs, pd.DataFrame) \
            and "data_unit" in runs.columns:
        values = {str(v).strip().lower() for v in runs["data_unit"].dropna()} - {""}
        unit = values.pop() if len(values) == 1 else None
    return DataUnit.of(unit)


def loss_unit(laws: Mapping[str, Any], runs: Any = None) -> LossUnit:
    """What the loss measures: scaling_laws' `loss_unit`, else the one unit of the runs'
    `loss_unit` column, else "loss" (a loss that declares nothing, runs from elsewhere)."""
    unit = laws.get("loss_unit") if isinstance(laws, Mapping) else None
    if not (isinstance(unit, str) and unit.strip()) and isinstance(runs, pd.DataFrame) \
            and "loss_unit" in runs.columns:
        values = {str(v).strip() for v in runs["loss_unit"].dropna()} - {""}
        unit = values.pop() if len(values) == 1 else None
    return LossUnit.of(unit)


def held_out_budget(laws: Mapping[str, Any]) -> float | None:
    return as_float(section(laws, "extrapolation_check").get("held_out_budget"))


def target_budgets(laws: Mapping[str, Any]) -> list[float]:
    values = section(laws, "meta").get("target_budgets") or []
    return sorted(x for x in (as_float(v) for v in values) if x is not None)
