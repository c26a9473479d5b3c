"""RunsFileDataset: a runs file that cannot be read says which file and why.
AnalysisRunsDataset: the analysis runs table loads typed."""

from __future__ import annotations

import pandas as pd
import pytest
from kedro.io import DatasetError

from flops_fit.fitting.runs.prepare import prepare_runs
from flops_fit.fitting.runs.simulated import synthetic_results
from flops_fit.parameters.analysis import AnalysisConfig
from flops_fit.pipelines.analysis.datasets import AnalysisRunsDataset, RunsFileDataset


@pytest.mark.parametrize("name", ["runs.csv", "runs.json"])
@pytest.mark.parametrize("content", ["", "\n  \n"])
def test_empty_runs_file_is_named(tmp_path, name, content):
    path = tmp_path / name
    path.write_text(content)
    with pytest.raises(DatasetError, match=rf"runs file {path} is empty \(runs_path\)"):
        RunsFileDataset(filepath=str(path)).load()


def test_runs_file_reads_a_csv(tmp_path):
    path = tmp_path / "runs.csv"
    path.write_text("Model Size,Training FLOP,loss\n1e6,1e15,3.0\n")
    df = RunsFileDataset(filepath=str(path)).load()
    assert list(df.columns) == ["Model Size", "Training FLOP", "loss"]
    assert df.attrs["source"] == str(path)


@pytest.mark.parametrize("sep", ["\t", ";"])
def test_a_csv_separated_by_tabs_or_semicolons_reads_as_its_header_says(tmp_path, sep):
    path = tmp_path / "runs.csv"
    path.write_text(sep.join(["Model Size", "Training FLOP", "loss"]) + "\n"
                    + sep.join(["1e6", "1e15", "3.0"]) + "\n")
    df = RunsFileDataset(filepath=str(path)).load()
    assert list(df.columns) == ["Model Size", "Training FLOP", "loss"]
    assert df["loss"].tolist() == [3.0]


def test_a_semicolon_csv_with_decimal_commas_reads_its_numbers(tmp_path):
    path = tmp_path / "runs.csv"
    path.write_text("Model Size;Training FLOP;loss\n1e6;1e15;3,21\n2e6;1e15;3,05\n")
    df = RunsFileDataset(filepath=str(path)).load()
    assert df["loss"].tolist() == [3.21, 3.05]
    assert df["Model Size"].tolist() == [1e6, 2e6]


@pytest.mark.parametrize("given", ["", "folder"])
def test_no_runs_path_says_how_to_give_one(tmp_path, given):
    """Kedro makes an empty `filepath` the project folder: both read as 'no runs file given'."""
    filepath = str(tmp_path) if given else ""
    with pytest.raises(DatasetError, match=r"no runs file given.*--params runs_path="):
        RunsFileDataset(filepath=filepath).load()


def test_analysis_runs_load_typed(tmp_path):
    runs, _ = prepare_runs(synthetic_results(sizes_per_budget=4), AnalysisConfig())
    runs.loc[1, "budget_id"] = pd.NA
    dataset = AnalysisRunsDataset(filepath=str(tmp_path / "analysis_runs.csv"),
                                  save_args={"index": False})
    dataset.save(runs)
    plain = pd.read_csv(tmp_path / "analysis_runs.csv")
    assert plain["budget_id"].dtype == float and plain["reason"].isna().all()  # as CSV reads it
    back = dataset.load()
    assert str(back["budget_id"].dtype) == "Int64" and back["budget_id"].isna().sum() == 1
    assert back["used_in_fit"].dtype == bool and (back["reason"] == "").all()
    pd.testing.assert_series_equal(back["final_loss"], runs["final_loss"])
