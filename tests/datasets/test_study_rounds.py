"""The round documents' folder, and the datasets that load as nothing until written."""

from __future__ import annotations

import pandas as pd
import pytest
from kedro.io import DatasetError

from flops_fit.datasets.atomic import OptionalCSVDataset, OptionalJSONDataset
from flops_fit.datasets.study_rounds import RoundFilesDataset


def test_rounds_load_in_order_and_a_save_touches_only_its_own_file(tmp_path):
    rounds = RoundFilesDataset(path=str(tmp_path / "study"))
    latest = RoundFilesDataset(path=str(tmp_path / "study"), latest=True)
    assert rounds.load() == []
    with pytest.raises(DatasetError, match="no round has been planned yet"):
        latest.load()
    rounds.save([{"round": 2, "runs": []}, {"round": 1, "runs": [{"experiment_id": "a"}]}])
    first = (tmp_path / "study" / "round_001.json").stat().st_mtime_ns
    latest.save({"round": 3, "runs": [], "stop_reason": "precise"})
    assert [d["round"] for d in rounds.load()] == [1, 2, 3]
    assert latest.load()["stop_reason"] == "precise"
    assert (tmp_path / "study" / "round_001.json").stat().st_mtime_ns == first
    assert not [p for p in (tmp_path / "study").iterdir() if not p.name.startswith("round_")]


def test_a_broken_round_file_is_an_error_naming_it(tmp_path):
    (tmp_path / "round_001.json").write_text("{not json")
    with pytest.raises(DatasetError, match="round_001.json: not a readable round document"):
        RoundFilesDataset(path=str(tmp_path)).load()
    (tmp_path / "round_001.json").write_text('{"runs": []}')
    with pytest.raises(DatasetError, match="no integer 'round'"):
        RoundFilesDataset(path=str(tmp_path)).load()


def test_optional_datasets_load_nothing_until_saved(tmp_path):
    doc = OptionalJSONDataset(filepath=str(tmp_path / "validation.json"))
    table = OptionalCSVDataset(filepath=str(tmp_path / "rounds.csv"), save_args={"index": False})
    assert doc.load() is None and table.load() is None
    doc.save({"verdict": "inside"})
    table.save(pd.DataFrame({"round": [0, 1]}))
    assert doc.load() == {"verdict": "inside"}
    assert table.load()["round"].tolist() == [0, 1]
