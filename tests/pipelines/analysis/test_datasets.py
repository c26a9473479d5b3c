"""RunsFileDataset: a runs file that cannot be read says which file and why."""

from __future__ import annotations

import pytest
from kedro.io import DatasetError

from flops_fit.pipelines.analysis.datasets import RunsFileDataset


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


@pytest.mark.parametrize("given", ["", "folder"])
def test_no_runs_path_says_how_to_give_one(tmp_path, given):
    """Kedro makes an empty `filepath` the project folder: both read as 'no runs file given'."""
    filepath = str(tmp_path) if given else ""
    with pytest.raises(DatasetError, match=r"no runs file given.*--params runs_path="):
        RunsFileDataset(filepath=filepath).load()
