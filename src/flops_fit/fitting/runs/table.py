"""One table shape for analysis, whoever trained the runs.

`normalise_runs` turns the training pipeline's `results` table, or a CSV / JSON list of runs
trained elsewhere, into the analysis runs table: the `results` column names
(`experiment_id`, `compute_budget`, `model_size`, `num_tokens`, `final_loss`, `status`,
`error_message`) plus `compute` (each run's C), and the source's other columns as they are.
Columns are found through a mapping
(`analysis.columns`): canonical name -> the source's column name, or a list of candidate names
(the first present wins). N and the loss are required, and D or C; the missing one of D and C
comes from C = 6 N D. A table with neither, but with a budget column (`compute_budget`, e.g.
(parameters, compute_budget, final_loss) as in the CS336 IsoFLOP file), takes each run's budget
as its C: an IsoFLOP run spends its budget (`COMPUTE_FROM_BUDGET_NOTE`, also in
`attrs["notes"]` for scaling_laws and the report). A loss that is empty, NaN, infinite, zero or negative is kept here and
left out by `fitting.runs.selection` (with a WARNING naming the rows). A role that `analysis.columns` leaves out (or sets to null) is looked
for under its default name (`AnalysisConfig.columns`, = conf/base). Problems raise
`RunsTableError` naming the column, the rows and the file.

A row that repeats an earlier row in every column is the same run written twice: it is counted
once, and `attrs["warnings"]` says which rows (`fitting.runs.prepare` logs it as a WARNING). An
id that names two different rows is an error: which of them is the run cannot be told. A row
without an id (no id column, or an empty cell) is named `run-<k>`, k its row among the rows
read; `attrs["rows"]` maps such a name to the row of the file, for messages (`run_label`).

What D counts is the `data_unit` column (a plan field: "tokens" for the built-in GPT, "examples"
for a classifier, or the data source's own word), one unit per table; a table without it, such
as one trained elsewhere, counts tokens (`run_data_unit`). What the loss measures is the
`loss_unit` column (the loss's declared unit, "nats" for cross entropy), "loss" without it
(`run_loss_unit`).

`fitting.runs.selection` then decides which runs the fits use and says why the others are left out.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd

from flops_fit.parameters.analysis import AnalysisConfig
from flops_fit.planning.flops import compute_6nd, tokens_6nd
from flops_fit.schema import ANALYSIS_RUN_COLUMNS, DEFAULT_LOSS_UNIT, RUN_COLUMN_ROLES

REQUIRED = ("model_size", "loss")
COMPUTE_FROM_BUDGET_NOTE = (
    "the table gives neither D nor C: each run's compute C is its budget column '{column}' "
    "(an IsoFLOP run spends its budget) and D = C / (6 N)"
)
MAX_LISTED = 5
#: The column that says what D counts, and the unit of a table without it.
DATA_UNIT_COLUMN = "data_unit"
DEFAULT_DATA_UNIT = "tokens"
#: The column that says what the loss measures (a plan field; absent: DEFAULT_LOSS_UNIT).
LOSS_UNIT_COLUMN = "loss_unit"


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


def default_columns() -> dict[str, list[str]]:
    """Role -> candidate column names when `analysis.columns` does not say (conf/base's)."""
    defaults = AnalysisConfig.model_fields["columns"].default
    return {role: _candidates(defaults.get(role)) for role in RUN_COLUMN_ROLES}


def _rows(index: Sequence[int], source_kind: str) -> str:
    shown = ", ".join(str(i + 1) for i in index[:MAX_LISTED])
    more = f" and {len(index) - MAX_LISTED} more" if len(index) > MAX_LISTED else ""
    return f"row{'s' if len(index) > 1 else ''} {shown}{more}{_counted(source_kind)}"


def _counted(source_kind: str) -> str:
    """How rows are numbered in messages."""
    if source_kind == "csv":
        return " (data rows counted from 1, after the header)"
    return " (records counted from 1)"


def _row_word(index: int, source_kind: str) -> str:
    """One row as `_rows` counts it, without the note: 'row 5' (CSV) or 'record 5' (JSON)."""
    return f"{'row' if source_kind == 'csv' else 'record'} {index + 1}"


def _repeats(df: pd.DataFrame) -> np.ndarray:
    """Per row, the position of the first earlier row equal to it in every column, else -1."""
    # as text: hashable whatever the cells hold (JSON lists), and exact for floats (repr)
    keys = list(df.astype(str).itertuples(index=False, name=None))
    first: dict[tuple, int] = {}
    out = np.full(len(keys), -1)
    for i, key in enumerate(keys):
        out[i] = first.setdefault(key, i)
    return np.where(out == np.arange(len(keys)), -1, out)


def _repeats_note(out: pd.DataFrame, repeats: np.ndarray, rows: np.ndarray, kind: str) -> str:
    """The WARNING for rows written twice: which rows, and what run they hold."""
    pairs = [
        f"{_row_word(rows[i], kind)} = {_row_word(rows[j], kind)} "
        f"({_budget_and_size(out.iloc[i])}, loss {out['final_loss'].iloc[i]:.6g})"
        for i, j in enumerate(repeats) if j >= 0
    ]
    more = f" and {len(pairs) - MAX_LISTED} more" if len(pairs) > MAX_LISTED else ""
    return (f"{len(pairs)} row(s) repeat an earlier row in every column, the same run written "
            f"twice: each run is counted once ({'; '.join(pairs[:MAX_LISTED])}{more}"
            f"{_counted(kind)})")


def _budget_and_size(run: Mapping[str, Any]) -> str:
    """'budget 1e+18, N 2e+08': a run's planned budget (else its C) and model size."""
    budget = run.get("compute_budget")
    if budget is None or not np.isfinite(budget):
        budget = run.get("compute")
    return f"budget {float(budget):.3g}, N {float(run['model_size']):.3g}"


def run_label(runs: pd.DataFrame, index: Any) -> str:
    """A run as messages name it: its experiment_id, or the row of the file for a run without
    one (`attrs["rows"]`), with its budget and model size."""
    run = runs.loc[index]
    eid = str(run["experiment_id"])
    return f"{runs.attrs.get('rows', {}).get(eid, eid)} ({_budget_and_size(run)})"


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
    df: pd.DataFrame,
    column: str,
    canonical: str,
    source: str,
    kind: str,
    allow_missing: bool,
    must_be_positive: bool = True,
) -> pd.Series:
    raw = df[column]
    if isinstance(raw, pd.DataFrame):
        raise RunsTableError(
            f"{source}: the table has {raw.shape[1]} columns named '{column}' ({canonical}); "
            f"rename or drop all but one"
        )
    flags = raw.map(lambda v: isinstance(v, (bool, np.bool_)))
    if flags.any():
        rows = np.flatnonzero(flags.to_numpy())
        raise RunsTableError(
            f"{source}: column '{column}' ({canonical}) holds true/false values, not numbers, "
            f"at {_rows(rows, kind)}"
        )
    values = pd.to_numeric(raw, errors="coerce").astype(float)
    present = raw.notna() & (raw.astype(str).str.strip() != "")
    not_number = np.flatnonzero((present & values.isna()).to_numpy())
    if len(not_number):
        examples = ", ".join(_shown(raw.iloc[i]) for i in not_number[:3])
        raise RunsTableError(
            f"{source}: column '{column}' ({canonical}) has non-numeric values at "
            f"{_rows(not_number, kind)}: {examples}"
        )
    bad = np.flatnonzero(((values <= 0) | np.isinf(values)).to_numpy()) if must_be_positive else []
    if len(bad):
        examples = ", ".join(_shown(raw.iloc[i]) for i in bad[:3])
        raise RunsTableError(
            f"{source}: column '{column}' ({canonical}) must be positive and finite; "
            f"{_rows(bad, kind)} {'hold' if len(bad) > 1 else 'holds'} {examples}"
        )
    if not allow_missing:
        missing = np.flatnonzero((~present).to_numpy())
        if len(missing):
            raise RunsTableError(
                f"{source}: column '{column}' ({canonical}) is empty at {_rows(missing, kind)}"
            )
    return values


def _one_unit(runs: pd.DataFrame, column: str, what: str, why: str, default: str, source: str,
              lower: bool) -> str:
    """The one value of a unit column (trimmed; empty cells ignored), `default` without the
    column; more than one value raises `RunsTableError` naming the rows of each."""
    if column not in runs.columns:
        return default
    cells = runs[column]
    units = cells.where(cells.notna(), "").astype(str).str.strip()
    units = units.str.lower() if lower else units
    values = sorted(set(units) - {""})
    if len(values) > 1:
        kind = "json" if str(source).lower().endswith(".json") else "csv"
        where = "; ".join(f"{v!r} at {_rows(np.flatnonzero((units == v).to_numpy()), kind)}"
                          for v in values)
        raise RunsTableError(
            f"{source}: column '{column}' ({what}) holds more than one unit: {where}. {why}; "
            f"analyse one at a time, e.g. --params analysis.filter.{column}={values[0]}"
        )
    return values[0] if values else default


def run_data_unit(runs: pd.DataFrame, source: str = "results") -> str:
    """What D counts in `runs`: the one value of its `data_unit` column (trimmed, lower case;
    empty cells are ignored), or tokens when it has none. Two units raise `RunsTableError`."""
    return _one_unit(runs, DATA_UNIT_COLUMN, "what D counts",
                     "D must count the same unit in every run of a study", DEFAULT_DATA_UNIT,
                     source, lower=True)


def run_loss_unit(runs: pd.DataFrame, source: str = "results") -> str:
    """What the loss of `runs` measures: the one value of its `loss_unit` column (trimmed; empty
    cells are ignored), or "loss" when it has none (a table from elsewhere, or from before loss
    units). Two units raise `RunsTableError`: losses of different kinds cannot share a law."""
    return _one_unit(runs, LOSS_UNIT_COLUMN, "what the loss measures", "One study fits one loss",
                     DEFAULT_LOSS_UNIT, source, lower=False)


def normalise_runs(
    table: Any,
    columns: Mapping[str, Any] | None = None,
    source: str = "results",
    filters: Mapping[str, Any] | None = None,
) -> pd.DataFrame:
    """The analysis runs table (ANALYSIS_RUN_COLUMNS + the source's other columns, as they are).

    `filters` keeps only rows whose column equals the value (or one of a list of values), e.g.
    {"condition": "raw_loss"} for a file that lists every point twice.
    """
    kind = "json" if str(source).lower().endswith(".json") else "csv"
    df = _to_frame(table, source)
    if not len(df.columns):  # an empty list of runs, or a file with nothing in it
        raise RunsTableError(f"{source}: the table has no runs")
    rows = np.arange(len(df))  # each row's position in the file, through the filters
    for column, wanted in (filters or {}).items():
        if column not in df.columns:
            raise RunsTableError(
                f"{source}: analysis.filter names column '{column}', which the "
                f"table does not have; columns are {list(df.columns)}"
            )
        allowed = wanted if isinstance(wanted, (list, tuple)) else [wanted]
        keep = df[column].astype(str).isin([str(v) for v in allowed])
        df = df[keep.to_numpy()].reset_index(drop=True)
        rows = rows[keep.to_numpy()]
        if df.empty:
            raise RunsTableError(f"{source}: no row has {column} in {allowed} (analysis.filter)")
    mapping = default_columns()
    for key, spec in (columns or {}).items():
        if key not in mapping:
            raise RunsTableError(
                f"analysis.columns.{key}: unknown column role; known roles are "
                f"{sorted(mapping)}"
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
                f"columns {list(df.columns)}. Map it with analysis.columns.{key} (on the "
                f"command line: --params analysis.columns.{key}=<column name>)"
            )
    notes: list[str] = []
    if found["num_tokens"] is None and found["compute"] is None and found["compute_budget"]:
        found["compute"] = found["compute_budget"]
        notes.append(COMPUTE_FROM_BUDGET_NOTE.format(column=found["compute_budget"]))
    if found["num_tokens"] is None and found["compute"] is None:
        raise RunsTableError(
            f"{source}: neither a token count D (looked for {mapping['num_tokens']}) nor a "
            f"compute C (looked for {mapping['compute']}); one of them is required, the other "
            f"follows from C = 6 N D (or a budget column, looked for "
            f"{mapping['compute_budget']}, read as each run's C). The table has columns "
            f"{list(df.columns)}"
        )
    if df.empty:
        raise RunsTableError(f"{source}: the table has no runs")

    out = pd.DataFrame(index=df.index)
    n = _numeric(df, found["model_size"], "model_size", source, kind, allow_missing=False)
    out["model_size"] = n
    # a missing, non-finite or non-positive loss is a left-out run, not a broken table: the
    # loss rule (schema.loss_problem) is applied by fitting.runs.selection, with a WARNING
    loss = _numeric(df, found["loss"], "loss", source, kind, allow_missing=True,
                    must_be_positive=False)
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
        d = tokens_6nd(c, n)
    c = compute_6nd(n, d) if c is None else c.where(c.notna(), compute_6nd(n, d))
    out["num_tokens"] = d
    out["compute"] = c
    out["compute_budget"] = (
        _numeric(df, found["compute_budget"], "compute_budget", source, kind, allow_missing=True)
        if found["compute_budget"]
        else np.nan
    )
    out["final_loss"] = loss
    repeats = _repeats(df)
    width = max(4, len(str(len(df))))
    ids = pd.Series([f"run-{i + 1:0{width}d}" for i in range(len(df))], index=df.index)
    given = pd.Series(False, index=df.index)
    if found["experiment_id"]:
        cells = df[found["experiment_id"]]
        given = cells.notna() & (cells.astype(str).str.strip() != "")
        ids = ids.where(~given, cells.astype(str))
        kept = np.flatnonzero(repeats < 0)  # a row written twice is not a repeated id
        dup = kept[ids.iloc[kept].duplicated(keep=False).to_numpy()]
        if len(dup):
            raise RunsTableError(
                f"{source}: column '{found['experiment_id']}' (experiment_id) "
                f"repeats ids at {_rows(dup, kind)}, rows that differ in other columns"
            )
    out["experiment_id"] = ids
    if found["status"]:
        out["status"] = df[found["status"]].fillna("").astype(str).str.strip().str.lower()
    else:
        out["status"] = "completed"
    out["error_message"] = (
        df[found["error_message"]].where(df[found["error_message"]].notna(), "").astype(str)
        if found["error_message"]
        else ""
    )
    extra = [col for col in df.columns if col not in set(found.values()) | set(ANALYSIS_RUN_COLUMNS)]
    for col in extra:
        out[col] = df[col]
    ordered = list(ANALYSIS_RUN_COLUMNS) + extra
    warnings = [_repeats_note(out, repeats, rows, kind)] if (repeats >= 0).any() else []
    unnamed = {ids[i]: _row_word(rows[i], kind) for i in np.flatnonzero(~given.to_numpy())}
    out = out[ordered][repeats < 0].reset_index(drop=True)
    run_data_unit(out, source)  # one unit of D per table, or a clear error now
    run_loss_unit(out, source)  # and one kind of loss
    out.attrs["source"] = source
    out.attrs["columns_used"] = {k: v for k, v in found.items() if v is not None}
    out.attrs["notes"] = notes
    out.attrs["warnings"] = warnings
    out.attrs["rows"] = {eid: row for eid, row in unnamed.items()
                         if eid in set(out["experiment_id"])}
    return out
