"""Catalog datasets that never leave a half-written file (`flops_fit.datasets.atomic`)."""

from __future__ import annotations

import errno
import importlib
import json
import os
import time
from pathlib import Path

import matplotlib.pyplot as plt
import pandas as pd
import pytest
import yaml
from kedro.io import DatasetError, Version
from kedro.io.core import parse_dataset_definition

from flops_fit.datasets import atomic, run_store
from flops_fit.datasets.run_store import RunPartitionsDataset
from flops_fit.pipelines.analysis.datasets import AnalysisRunsDataset

PROJECT = Path(__file__).resolve().parents[2]


def _figure(colour: str):
    fig, ax = plt.subplots(figsize=(2, 2))
    ax.plot([0, 1], [0, 1], color=colour)
    return fig


#: (dataset, the file it writes, a first value, a second value)
CASES = {
    "json": (lambda d: atomic.JSONDataset(filepath=str(d / "plan.json"), save_args={"indent": 2}),
             "plan.json", lambda: [{"experiment_id": "a"}], lambda: [{"experiment_id": "b"}] * 50),
    "csv": (lambda d: atomic.CSVDataset(filepath=str(d / "results.csv")), "results.csv",
            lambda: pd.DataFrame({"x": [1.0, 2.0]}), lambda: pd.DataFrame({"x": range(500)})),
    "analysis_runs": (lambda d: AnalysisRunsDataset(filepath=str(d / "runs.csv")), "runs.csv",
                      lambda: pd.DataFrame({"x": [1.0]}), lambda: pd.DataFrame({"x": range(500)})),
    "text": (lambda d: atomic.TextDataset(filepath=str(d / "report.md")), "report.md",
             lambda: "# old report\n", lambda: "# new report\n" + "line\n" * 500),
    "figure": (lambda d: atomic.MatplotlibDataset(filepath=str(d / "plot.png")), "plot.png",
               lambda: _figure("red"), lambda: _figure("blue")),
    "figures": (lambda d: atomic.MatplotlibDataset(filepath=str(d / "plots")), "plots/0.png",
                lambda: [_figure("red")], lambda: [_figure("blue")]),
}


class _FullDisk:
    """`os` for run_store, except that a file written through `fdopen` fills the disk half-way:
    half the bytes reach the temporary file, then the write fails with ENOSPC."""

    def __init__(self):
        self.partial: list[tuple[str, int]] = []

    def __getattr__(self, name):
        return getattr(os, name)

    def fdopen(self, fd, mode="r", *args, **kwargs):
        fh = os.fdopen(fd, mode, *args, **kwargs)
        disk = self

        class HalfWritten:
            def __enter__(self):
                return self

            def __exit__(self, *exc):
                fh.close()

            def write(self, data):
                fh.write(data[: len(data) // 2])
                fh.flush()
                disk.partial.append((os.readlink(f"/proc/self/fd/{fh.fileno()}"),
                                     os.fstat(fh.fileno()).st_size))
                raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

        return HalfWritten()


@pytest.mark.parametrize("case", CASES)
def test_a_full_disk_keeps_the_previous_file_and_leaves_no_temporary_file(
    case, tmp_path, monkeypatch
):
    make, name, first, second = CASES[case]
    dataset = make(tmp_path)
    dataset.save(first())
    target = tmp_path / name
    before = target.read_bytes()
    files_before = sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*"))

    disk = _FullDisk()
    monkeypatch.setattr(run_store, "os", disk)
    with pytest.raises(DatasetError) as raised:
        dataset.save(second())
    monkeypatch.undo()

    cause = raised.value.__cause__
    assert isinstance(cause, OSError) and cause.errno == errno.ENOSPC
    (tmp, written), = disk.partial  # the temporary file was really half-written
    assert Path(tmp).parent == target.parent and written > 0
    assert target.read_bytes() == before
    assert sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*")) == files_before
    plt.close("all")


def test_a_value_that_cannot_be_serialised_keeps_the_previous_file(tmp_path):
    dataset = atomic.JSONDataset(filepath=str(tmp_path / "laws.json"))
    dataset.save({"alpha": 0.34})
    with pytest.raises(DatasetError):
        dataset.save({"alpha": 0.34, "fit": object()})  # json.dump fails half-way
    assert json.loads((tmp_path / "laws.json").read_text()) == {"alpha": 0.34}
    assert os.listdir(tmp_path) == ["laws.json"]


def test_saves_load_describe_and_preview_as_kedro_datasets_do(tmp_path):
    from kedro_datasets.json import JSONDataset
    from kedro_datasets.text import TextDataset

    ours = atomic.JSONDataset(filepath=str(tmp_path / "a.json"), save_args={"indent": 2})
    theirs = JSONDataset(filepath=str(tmp_path / "b.json"), save_args={"indent": 2})
    data = {"runs": [{"id": "é", "loss": 2.5}]}
    ours.save(data)
    theirs.save(data)
    assert (tmp_path / "a.json").read_bytes() == (tmp_path / "b.json").read_bytes()
    assert ours.load() == data and ours.exists()
    assert ours._describe()["save_args"] == theirs._describe()["save_args"]
    assert ours.preview() == theirs.preview()

    text = atomic.TextDataset(filepath=str(tmp_path / "r.md"))
    text.save("line\n")
    TextDataset(filepath=str(tmp_path / "s.md")).save("line\n")
    assert (tmp_path / "r.md").read_bytes() == (tmp_path / "s.md").read_bytes()


def test_versioned_saves_write_a_new_version_atomically(tmp_path):
    dataset = atomic.JSONDataset(filepath=str(tmp_path / "plan.json"), version=Version(None, None))
    dataset.save({"v": 1})
    time.sleep(0.01)  # versions are timestamps to the millisecond
    dataset.save({"v": 2})
    versions = sorted((tmp_path / "plan.json").iterdir())
    assert len(versions) == 2
    assert dataset.load() == {"v": 2}
    assert [p.name for p in (tmp_path / "plan.json").rglob("*") if p.is_file()] == ["plan.json"] * 2


def _catalog_files() -> list[Path]:
    files = sorted(PROJECT.glob("conf/*/catalog*.yml"))
    files += sorted(PROJECT.glob("examples/*/conf/**/catalog*.yml"))
    assert files, "no catalog files found"
    return files


#: datasets that only read (a save raises): nothing of ours is written through them
READ_ONLY = {
    "flops_fit.datasets.PackageCorpusDataset",
    "flops_fit.datasets.MNIST1DDataset",
    "flops_fit.pipelines.analysis.datasets.RunsFileDataset",
    "flops_fit.pipelines.analysis.datasets.NotTrainedHereDataset",
}


def test_every_catalog_entry_of_every_environment_writes_atomically():
    checked = 0
    for path in _catalog_files():
        for name, entry in (yaml.safe_load(path.read_text()) or {}).items():
            if name.startswith("_") or not isinstance(entry, dict):
                continue
            where = f"{path.relative_to(PROJECT)}: {name} ({entry['type']})"
            if entry["type"] in READ_ONLY:
                continue
            cls, _ = parse_dataset_definition({"type": entry["type"]})
            assert issubclass(cls, (atomic.AtomicSave, RunPartitionsDataset)), where
            checked += 1
    assert checked >= 20


def test_read_only_entries_refuse_to_save():
    for dotted in READ_ONLY:
        module, _, name = dotted.rpartition(".")
        cls = getattr(importlib.import_module(module), name)
        with pytest.raises(DatasetError, match="read-only"):
            cls().save("x")
