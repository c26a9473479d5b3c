"""The atomic, completion-order run store (flops_fit.datasets.run_store)."""

from __future__ import annotations

import json
import os

import pytest
from kedro.io import DatasetError

from flops_fit.datasets.run_store import AtomicJSONDataset, RunPartitionsDataset, write_atomic


def test_atomic_json_roundtrip(tmp_path):
    ds = AtomicJSONDataset(filepath=str(tmp_path / "sub" / "a.json"))
    ds.save({"x": 1, "y": [1.5, None]})
    assert ds.load() == {"x": 1, "y": [1.5, None]}
    assert ds.exists()
    assert (tmp_path / "sub" / "a.json").read_text().endswith("\n")
    assert oct((tmp_path / "sub" / "a.json").stat().st_mode & 0o777) == "0o644"


def test_nan_is_refused_not_written_as_invalid_json(tmp_path):
    ds = AtomicJSONDataset(filepath=str(tmp_path / "a.json"))
    with pytest.raises(DatasetError):
        ds.save({"loss": float("nan")})
    assert not (tmp_path / "a.json").exists()


def test_a_crash_during_write_leaves_the_old_file_and_no_temporary(tmp_path, monkeypatch):
    target = tmp_path / "run.json"
    write_atomic(target, '{"old": true}\n')

    def crash(src, dst):
        raise KeyboardInterrupt  # e.g. a signal between write and rename

    monkeypatch.setattr(os, "replace", crash)
    with pytest.raises(KeyboardInterrupt):
        write_atomic(target, '{"new": true}\n')
    monkeypatch.undo()
    assert json.loads(target.read_text()) == {"old": True}
    assert sorted(p.name for p in tmp_path.iterdir()) == ["run.json"]


def test_empty_or_missing_folder_loads_as_empty(tmp_path):
    assert RunPartitionsDataset(path=str(tmp_path / "missing")).load() == {}
    (tmp_path / "empty").mkdir()
    assert RunPartitionsDataset(path=str(tmp_path / "empty")).load() == {}


def test_temporary_leftovers_are_not_partitions_and_are_cleaned(tmp_path):
    runs = tmp_path / "runs"
    runs.mkdir()
    (runs / ".a.json.k3j2.tmp").write_text('{"half": ')
    (runs / "b.json").write_text('{"b": 1}')
    ds = RunPartitionsDataset(path=str(runs))
    loaded = ds.load()
    assert list(loaded) == ["b"] and loaded["b"]() == {"b": 1}
    ds.save({"c": {"c": 3}})
    assert sorted(p.name for p in runs.iterdir()) == ["b.json", "c.json"]


def test_saves_in_the_mappings_order_one_file_at_a_time(tmp_path):
    runs = tmp_path / "runs"
    seen_on_disk = []

    class Stream(dict):
        """Yields items lazily, recording what is already on disk before each new one."""

        def items(self):
            for key in ["z", "a", "m"]:  # a completion order, not sorted
                seen_on_disk.append(sorted(p.stem for p in runs.glob("*.json")))
                yield key, (lambda k=key: {"key": k})

    RunPartitionsDataset(path=str(runs)).save(Stream())
    assert seen_on_disk == [[], ["z"], ["a", "z"]]
    mtimes = {p.stem: p.stat().st_mtime_ns for p in runs.glob("*.json")}
    assert mtimes["z"] <= mtimes["a"] <= mtimes["m"]


def test_unparseable_partition_is_listed_but_raises_on_load(tmp_path):
    runs = tmp_path / "runs"
    runs.mkdir()
    (runs / "bad.json").write_text('{"truncated": ')
    loaded = RunPartitionsDataset(path=str(runs)).load()
    with pytest.raises(DatasetError):
        loaded["bad"]()


def test_remote_paths_are_refused():
    with pytest.raises(DatasetError, match="local"):
        AtomicJSONDataset(filepath="s3://bucket/run.json")
