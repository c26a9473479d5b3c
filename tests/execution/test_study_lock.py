"""One writer per study (flops_fit.execution.study_lock), alone and through real `kedro run`s."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from flops_fit.execution.study_lock import (
    LOCK_NAME,
    StorageError,
    StudyLock,
    StudyLockedError,
    check_writable_dir,
)
from tests.conftest import PROJECT_ROOT, kedro_command


def test_a_second_lock_on_the_same_folder_is_refused_naming_the_holder(tmp_path):
    runs = tmp_path / "runs"
    with StudyLock(runs) as first:
        info = json.loads((runs / LOCK_NAME).read_text())
        assert info["pid"] == os.getpid() and info["host"] == socket.gethostname()
        assert info["started_at"] and info["command"]
        with pytest.raises(StudyLockedError) as err:
            StudyLock(runs).acquire()
        message = str(err.value)
        assert str(runs) in message
        assert f"pid {os.getpid()} on host {socket.gethostname()}" in message
        assert info["started_at"] in message and info["command"] in message
        assert "wait for it to finish, or stop it" in message.lower()
        assert first.held
    assert not first.held
    with StudyLock(runs):  # released: the next one gets it
        pass


def test_the_lock_is_released_when_its_holder_is_killed(tmp_path):
    runs = tmp_path / "runs"
    holder = subprocess.Popen(
        [sys.executable, "-c", textwrap.dedent(f"""
            import sys, time
            from flops_fit.execution.study_lock import StudyLock
            StudyLock({str(runs)!r}).acquire()
            print("locked", flush=True)
            time.sleep(120)
        """)],
        stdout=subprocess.PIPE, text=True, cwd=PROJECT_ROOT,
        env={**os.environ, "PYTHONPATH": str(PROJECT_ROOT / "src")},
    )
    try:
        assert holder.stdout.readline().strip() == "locked"
        with pytest.raises(StudyLockedError, match=f"pid {holder.pid} "):
            StudyLock(runs).acquire()
    finally:
        holder.send_signal(signal.SIGKILL)
        holder.wait()
    with StudyLock(runs):  # the kernel closed the dead holder's descriptor
        pass


def test_a_data_root_must_be_a_writable_folder(tmp_path):
    assert check_writable_dir(tmp_path / "new" / "root").is_dir()  # created if missing
    assert list((tmp_path / "new" / "root").iterdir()) == []  # the probe file is gone
    (tmp_path / "file").write_text("x")
    with pytest.raises(StorageError) as err:
        check_writable_dir(tmp_path / "file" / "x")
    assert str(err.value).startswith(f"data root {tmp_path / 'file' / 'x'} is not a writable "
                                     "folder: Not a directory (ENOTDIR)")
    assert "\n" not in str(err.value)


# --- through real `kedro run`s ---------------------------------------------------------------


def _snapshot(folder: Path) -> dict[str, tuple[bytes, int]]:
    return {p.name: (p.read_bytes(), p.stat().st_mtime_ns) for p in folder.glob("*.json")}


def _kedro(data_root: Path, *extra: str, params: dict | None = None) -> list[str]:
    return kedro_command(data_root, "--pipelines", "planning,training", *extra, env="mock",
                         params=params)


def test_two_kedro_runs_on_one_study_the_second_refuses_and_kill_9_frees_it(tmp_path):
    data_root = tmp_path / "data"
    runs = data_root / "03_primary" / "runs"
    env = {**os.environ, "KEDRO_DISABLE_TELEMETRY": "1", "COLUMNS": "200"}
    first = subprocess.Popen(
        _kedro(data_root, params={"training.synthetic.sleep_seconds": 0.5}),
        cwd=PROJECT_ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 120
        while len(list(runs.glob("*.json"))) < 2:
            assert first.poll() is None, "the first run ended before it trained two runs"
            assert time.monotonic() < deadline, "the first run trained nothing in 120 s"
            time.sleep(0.2)
        before = _snapshot(runs)
        second = subprocess.run(_kedro(data_root), cwd=PROJECT_ROOT, env=env,
                                capture_output=True, text=True, timeout=120)
        during = _snapshot(runs)
        assert first.poll() is None, "the first run should still be training"
    finally:
        first.send_signal(signal.SIGKILL)
        first.wait()
    output = second.stdout + second.stderr
    assert second.returncode != 0
    assert f"The study in {runs} is being written by another kedro run: pid {first.pid} " \
           f"on host {socket.gethostname()}" in output
    assert "kedro run" in output and "Wait for it to finish, or stop it" in output
    assert "Running node" not in output  # refused before any node
    for name, (data, mtime) in before.items():  # the first's files are untouched
        assert during[name] == (data, mtime), name
    # kill -9 released the lock: a new run resumes the study, never rewriting a completed file
    done = {n: v for n, v in _snapshot(runs).items()
            if json.loads(v[0])["status"] == "completed"}
    third = subprocess.run(_kedro(data_root), cwd=PROJECT_ROOT, env=env, capture_output=True,
                           text=True, timeout=300)
    assert third.returncode == 0, third.stderr[-4000:]
    after = _snapshot(runs)
    assert len(after) > len(done)
    for name, value in done.items():
        assert after[name] == value, name
