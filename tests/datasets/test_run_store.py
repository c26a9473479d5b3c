"""The atomic, completion-order run store (flops_fit.datasets.run_store)."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time

import pytest
from kedro.io import DatasetError

from flops_fit.datasets.run_store import (
    STALE_TMP_SECONDS,
    AtomicJSONDataset,
    RunPartitionsDataset,
    create_atomic,
    temporary_owner,
    write_atomic,
)


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


def _dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def test_only_stale_temporary_files_are_removed_never_a_live_writers(tmp_path):
    runs = tmp_path / "runs"
    runs.mkdir()
    host = socket.gethostname()
    dead = f".a.json~{host}~{_dead_pid()}~k3j2.tmp"  # its process was killed mid-write
    live = f".d.json~{host}~{os.getppid()}~x1y2.tmp"  # another live process is writing it
    remote = ".e.json~some-other-host~12~zz.tmp"  # cannot tell: kept until it is old
    legacy_new, legacy_old = ".f.json.abc.tmp", ".g.json.def.tmp"
    for name in (dead, live, remote, legacy_new, legacy_old):
        (runs / name).write_text('{"half": ')
    old = time.time() - STALE_TMP_SECONDS - 60
    os.utime(runs / legacy_old, (old, old))
    (runs / "b.json").write_text('{"b": 1}')
    ds = RunPartitionsDataset(path=str(runs))
    loaded = ds.load()
    assert list(loaded) == ["b"] and loaded["b"]() == {"b": 1}
    ds.save({"c": {"c": 3}})
    assert sorted(p.name for p in runs.iterdir()) == sorted(
        ["b.json", "c.json", live, remote, legacy_new]
    )
    old = time.time() - STALE_TMP_SECONDS - 60
    os.utime(runs / live, (old, old))
    os.utime(runs / remote, (old, old))
    ds.save({})
    assert live in {p.name for p in runs.iterdir()}  # a live writer's file, however old
    assert remote not in {p.name for p in runs.iterdir()}


def test_temporary_names_say_whose_they_are(tmp_path, monkeypatch):
    seen = []
    real_replace = os.replace
    monkeypatch.setattr(os, "replace", lambda a, b: (seen.append(a), real_replace(a, b)))
    write_atomic(tmp_path / "x.json", "{}")
    assert temporary_owner(seen[0]) == (socket.gethostname(), os.getpid())


def test_a_completed_result_is_never_rewritten_a_failed_one_is_replaced(tmp_path):
    runs = tmp_path / "runs"
    ds = RunPartitionsDataset(path=str(runs))
    ds.save({"a": {"status": "failed", "error_message": "boom"}, "b": {"status": "completed",
                                                                       "final_loss": 3.0}})
    before = (runs / "b.json").stat()
    ds.save({"a": {"status": "completed", "final_loss": 2.0}})
    assert json.loads((runs / "a.json").read_text())["status"] == "completed"
    with pytest.raises(DatasetError, match="already has a completed result.*never rewritten"):
        ds.save({"b": {"status": "completed", "final_loss": 9.0}})
    after = (runs / "b.json").stat()
    assert json.loads((runs / "b.json").read_text())["final_loss"] == 3.0
    assert (after.st_ino, after.st_mtime_ns) == (before.st_ino, before.st_mtime_ns)
    assert sorted(p.name for p in runs.iterdir()) == ["a.json", "b.json"]  # no temporaries
    # a "completed" record without a usable loss is broken: training reruns it and replaces it
    ds.save({"c": {"status": "completed", "final_loss": None}})
    ds.save({"c": {"status": "completed", "final_loss": 2.5}})
    assert json.loads((runs / "c.json").read_text())["final_loss"] == 2.5


def test_create_atomic_never_replaces(tmp_path):
    target = tmp_path / "r.json"
    assert create_atomic(target, "1\n") is True
    assert create_atomic(target, "2\n") is False
    assert target.read_text() == "1\n" and [p.name for p in tmp_path.iterdir()] == ["r.json"]


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


def test_create_atomic_without_hard_links_still_never_replaces(tmp_path, monkeypatch):
    """vfat, exfat and some FUSE mounts refuse os.link: replace-if-absent under the lock."""
    import errno

    def no_links(src, dst):
        raise OSError(errno.EPERM, "Operation not permitted")

    monkeypatch.setattr(os, "link", no_links)
    target = tmp_path / "r.json"
    assert create_atomic(target, "1\n") is True
    assert create_atomic(target, "2\n") is False
    assert target.read_text() == "1\n"
    assert [p.name for p in tmp_path.iterdir()] == ["r.json"]  # no temporary file left
