"""RunStream's account of a sweep counts the runs the consumer actually saved."""

from __future__ import annotations

import errno
import gc
import logging

import pytest
from kedro.io import DatasetError

from flops_fit.datasets import run_store
from flops_fit.datasets.run_store import RunPartitionsDataset
from flops_fit.execution import prepare_training

SYNTH = {"backend": "synthetic", "executor": "sequential", "show_progress": False}


def test_a_full_disk_mid_sweep_is_counted_exactly(plan, tmp_path, monkeypatch, caplog):
    created = []
    real_create = run_store.create_atomic

    def create_until_the_disk_is_full(path, text):
        if len(created) == 3:
            raise OSError(errno.ENOSPC, "No space left on device")
        created.append(path)
        return real_create(path, text)

    monkeypatch.setattr(run_store, "create_atomic", create_until_the_disk_is_full)
    runs = RunPartitionsDataset(path=str(tmp_path / "runs"))
    stream = prepare_training(plan, {}, SYNTH)
    with caplog.at_level(logging.INFO, logger="flops_fit.execution.stream"):
        with pytest.raises(DatasetError, match="No space left"):
            runs.save(stream)
        gc.collect()  # the failed save's traceback held the stream's iteration open
    on_disk = sorted(p.name for p in (tmp_path / "runs").iterdir())
    assert len(on_disk) == 3
    (line,) = [r.getMessage() for r in caplog.records if "run(s) in" in r.getMessage()]
    assert f"Finished 4 of {len(plan)} run(s)" in line
    assert ": 3 saved (3 completed, 0 failed), 1 not saved" in line


def test_every_run_saved_is_counted(plan, tmp_path, caplog):
    with caplog.at_level(logging.INFO, logger="flops_fit.execution.stream"):
        RunPartitionsDataset(path=str(tmp_path / "runs")).save(prepare_training(plan, {}, SYNTH))
    (line,) = [r.getMessage() for r in caplog.records if "run(s) in" in r.getMessage()]
    n = len(plan)
    assert f"Finished {n} of {n} run(s)" in line and f"{n} saved ({n} completed, 0 failed)" in line
    assert "not saved" not in line and "pending" not in line
