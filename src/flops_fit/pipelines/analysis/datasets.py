"""The analysis pipeline's own catalog datasets.

- `RunsFileDataset`: runs trained elsewhere, a CSV or a JSON list of runs, read as a table.
  Used by `conf/imported/catalog_analysis.yml` for `results`, with
  `filepath: ${runtime_params:runs_path,""}`. The table keeps the file's own column names (the
  analysis maps them with `analysis.columns`) and records the file path in `df.attrs["source"]`
  so that every error about the table names the file. A CSV's text cells lose the quote our
  own CSVs put before formula-like text (`flops_fit.csvsafe`), so our `results.csv` reads back
  as it was.
- `NotTrainedHereDataset`: under `--env imported`, the validation, study rounds, loss curves and
  settings check the report reads: nothing, whatever another study left in the data root.
- `AnalysisRunsDataset`: the `analysis_runs` CSV (written atomically, formula-like text
  neutralised: `flops_fit.datasets.atomic.CSVDataset`), loaded as the typed table the fits
  expect (`fitting.runs.prepare.coerce_runs`): the one place the CSV round trip is undone.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

import pandas as pd
from kedro.io import AbstractDataset, DatasetError

from flops_fit.csvsafe import restore_text
from flops_fit.datasets.atomic import CSVDataset
from flops_fit.fitting.runs.prepare import coerce_runs

log = logging.getLogger(__name__)


class AnalysisRunsDataset(CSVDataset):
    """Our atomic `CSVDataset` whose `load` returns the typed analysis runs table."""

    def load(self) -> pd.DataFrame:
        return coerce_runs(super().load())


def _other_separator(df: pd.DataFrame) -> str | None:
    """The separator a table read as one column shows in its header (tab or semicolon)."""
    if len(df.columns) != 1:
        return None
    header = str(df.columns[0])
    return next((sep for sep in ("\t", ";") if sep in header), None)


def _decimal_commas(df: pd.DataFrame) -> bool:
    """Does a text column hold numbers written with a decimal comma (3,21), and none other?"""
    for column in df.select_dtypes(exclude="number").columns:
        cells = df[column].dropna().astype(str).str.strip()
        if len(cells) and cells.str.fullmatch(r"[-+]?\d+,\d*(?:[eE][-+]?\d+)?").all():
            return True
    return False


class RunsFileError(DatasetError):
    """A runs file that is missing, empty or cannot be read: the user's file, whose message is
    the whole story (the command line prints it as one line)."""


class RunsFileDataset(AbstractDataset[None, pd.DataFrame]):
    """Read-only: `.csv` (or `.tsv`) with a header row, or `.json` holding a list of objects
    (or an object with the list under "runs")."""

    def __init__(
        self,
        filepath: str = "",
        load_args: dict[str, Any] | None = None,
        metadata: dict[str, Any] | None = None,
    ) -> None:
        self._filepath = str(filepath or "")
        self._load_args = dict(load_args or {})
        self.metadata = metadata

    def _describe(self) -> dict[str, Any]:
        return {"filepath": self._filepath, "load_args": self._load_args}

    def _read_csv(self, path: Path, sep: str, **kwargs: Any) -> pd.DataFrame:
        try:
            return pd.read_csv(path, **{"sep": sep, **kwargs, **self._load_args})
        except (pd.errors.ParserError, UnicodeDecodeError) as exc:
            raise RunsFileError(f"{path}: cannot be read as a table: {exc}") from exc

    def check(self) -> Path:
        """The runs file, or a RunsFileError saying what is wrong with runs_path (called by
        the project hook before any node, and by `load`)."""
        path = _home_path(self._filepath)
        # Kedro turns an empty relative `filepath` into the project folder, so a missing
        # runs_path arrives here as a directory.
        if not self._filepath or path.is_dir():
            given = f" (runs_path is empty or a folder: {path})" if self._filepath else ""
            raise RunsFileError(
                f"no runs file given{given}: run `kedro run --pipelines analysis,reporting "
                "--env imported --params runs_path=/abs/path/runs.csv` (a CSV with a header "
                "row, or a JSON list of runs)"
            )
        if not path.is_file():
            raise RunsFileError(f"runs file {path} does not exist (runs_path)")
        if not path.read_bytes().strip():
            raise RunsFileError(
                f"runs file {path} is empty (runs_path): expected a CSV with a header row, "
                "or a JSON list of runs"
            )
        return path

    def load(self) -> pd.DataFrame:
        path = self.check()
        suffix = path.suffix.lower()
        if suffix == ".json":
            with path.open(encoding="utf-8") as fh:
                try:
                    data = json.load(fh)
                except json.JSONDecodeError as exc:
                    raise RunsFileError(f"{path}: not valid JSON: {exc}") from exc
            if isinstance(data, dict):
                data = next(
                    (
                        data[k]
                        for k in ("runs", "results", "records", "data")
                        if isinstance(data.get(k), list)
                    ),
                    None,
                )
            if not isinstance(data, list) or not all(isinstance(r, dict) for r in data):
                raise RunsFileError(
                    f"{path}: expected a JSON list of run objects "
                    "(or an object with the list under 'runs')"
                )
            df = pd.DataFrame.from_records(data)
        else:
            sep = "\t" if suffix == ".tsv" else ","
            df = self._read_csv(path, sep)
            other = _other_separator(df) if "sep" not in self._load_args else None
            if other is not None:
                # a spreadsheet's export with tabs or semicolons reads as one column of
                # everything: its header says which separator it used
                log.info("%s: its header is separated by %r, not %r: read with %r", path,
                         other, sep, other)
                df = self._read_csv(path, other)
                if other == ";" and _decimal_commas(df):
                    # the same exports write 3,21 for 3.21
                    log.info("%s: numbers written with decimal commas: read as such", path)
                    df = self._read_csv(path, other, decimal=",")
            # a table we wrote (results.csv) quotes formula-like text: read it as it was
            df = restore_text(df)
        df.attrs["source"] = str(path)
        return df

    def save(self, data: pd.DataFrame) -> None:
        raise DatasetError("RunsFileDataset is read-only: it reads runs trained elsewhere")

    def _exists(self) -> bool:
        return bool(self._filepath) and _home_path(self._filepath).is_file()


class NotTrainedHereDataset(AbstractDataset):
    """For runs trained elsewhere (conf/imported), what this project's own training, steering
    and validation write: nothing. It loads as None, whatever another study left in the data
    root, and refuses a save."""

    def load(self) -> None:
        return None

    def save(self, data: Any) -> None:
        raise DatasetError("NotTrainedHereDataset is read-only: runs trained elsewhere were "
                           "not trained, steered or validated here")

    def _describe(self) -> dict[str, Any]:
        return {}


def runs_file(catalog: Any) -> RunsFileDataset | None:
    """The catalog's `results` where it is runs trained elsewhere (conf/imported), else None."""
    results = catalog.get("results") if "results" in catalog else None
    return results if isinstance(results, RunsFileDataset) else None


def _home_path(filepath: str) -> Path:
    """`filepath` with a leading ~ expanded, also after Kedro made it absolute by putting the
    project folder before it (project/~/runs.csv)."""
    path = Path(filepath).expanduser()
    parts = path.parts
    if "~" in parts and not path.exists():  # a real folder named ~ is left alone
        return Path.home().joinpath(*parts[parts.index("~") + 1:])
    return path
