"""A real `dask scheduler` and `dask worker` processes on 127.0.0.1 under a real `kedro run`.

Losing the scheduler stops the run with an error and leaves the unfinished runs pending (no
failed record, no retry used); restarting the scheduler and workers and running again finishes
the study without touching the files written before the loss. Losing a worker loses nothing,
and the run's output names the worker. Every process started here is stopped by its own PID.
"""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.conftest import PROJECT_ROOT, kedro_command

pytest.importorskip("distributed")

DASK = Path(sys.executable).with_name("dask")
pytestmark = pytest.mark.skipif(not DASK.exists(), reason="no `dask` command next to python")

# planning.compute_budgets.num=3 gives a smaller sweep than the mock study's 7 budgets
SMALL = {"planning.compute_budgets.num": 3}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _wait_for_port(port: int, proc: subprocess.Popen, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise AssertionError(f"process {proc.args} exited with {proc.returncode}")
        with socket.socket() as s:
            s.settimeout(0.5)
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.2)
    raise AssertionError(f"nothing listens on 127.0.0.1:{port} after {timeout} s")


class Cluster:
    """A scheduler and workers as separate processes, each stopped by its PID."""

    def __init__(self, tmp_path: Path, port: int):
        self.port = port
        self.address = f"tcp://127.0.0.1:{port}"
        self.logs = tmp_path / "cluster-logs"
        self.logs.mkdir(exist_ok=True)
        self.scheduler: subprocess.Popen | None = None
        self.workers: list[tuple[subprocess.Popen, int]] = []
        self._started: list[subprocess.Popen] = []

    def _spawn(self, name: str, *args: str) -> subprocess.Popen:
        log = open(self.logs / f"{name}-{len(self._started)}.log", "w")  # noqa: SIM115
        proc = subprocess.Popen(
            [str(DASK), *args],
            cwd=PROJECT_ROOT,
            stdout=log,
            stderr=subprocess.STDOUT,
            env={**os.environ, "OMP_NUM_THREADS": "1"},
        )
        log.close()
        self._started.append(proc)
        return proc

    def start(self, n_workers: int = 2) -> Cluster:
        self.scheduler = self._spawn(
            "scheduler",
            "scheduler",
            "--host",
            "127.0.0.1",
            "--port",
            str(self.port),
            "--no-dashboard",
            "--no-show",
        )
        _wait_for_port(self.port, self.scheduler)
        self.workers = []
        for _ in range(n_workers):
            wport = _free_port()
            proc = self._spawn(
                "worker",
                "worker",
                self.address,
                "--host",
                "127.0.0.1",
                "--worker-port",
                str(wport),
                "--nthreads",
                "1",
                "--no-nanny",
                "--no-dashboard",
            )
            self.workers.append((proc, wport))
        for proc, wport in self.workers:
            _wait_for_port(wport, proc)
        return self

    def kill(self, proc: subprocess.Popen) -> None:
        if proc.poll() is None:
            os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)

    def stop(self) -> None:
        """Workers first (a worker stopping while its scheduler stops can linger), each by PID."""
        schedulers = [p for p in self._started if "scheduler" in p.args]
        workers = [p for p in self._started if p not in schedulers]
        for group in (workers, schedulers):
            for proc in group:
                if proc.poll() is None:
                    os.kill(proc.pid, signal.SIGTERM)
            for proc in group:
                try:
                    proc.wait(timeout=5)
                except subprocess.TimeoutExpired:
                    self.kill(proc)


@pytest.fixture
def cluster(tmp_path):
    c = Cluster(tmp_path, _free_port())
    try:
        yield c
    finally:
        c.stop()


def _start_kedro(data_root: Path, cluster: Cluster, sleep: float, extra: dict) -> subprocess.Popen:
    params = {
        "training.executor": "dask",
        "training.scheduler_address": cluster.address,
        "training.synthetic.sleep_seconds": sleep,
        **extra,
    }
    return subprocess.Popen(
        kedro_command(data_root, "--pipelines", "planning,training", env="mock", params=params),
        cwd=PROJECT_ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env={**os.environ, "KEDRO_DISABLE_TELEMETRY": "1", "COLUMNS": "1000"},
    )


def _finish(proc: subprocess.Popen, timeout: float = 180) -> str:
    try:
        out, _ = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.kill(proc.pid, signal.SIGKILL)
        out, _ = proc.communicate(timeout=30)
        raise AssertionError(f"kedro run did not end within {timeout} s:\n{out[-6000:]}") from None
    return " ".join(out.split())  # undo the console's line wrapping


def _wait_for_files(runs: Path, n: int, proc: subprocess.Popen, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise AssertionError(f"kedro run ended early ({proc.returncode}):\n{_finish(proc)}")
        if runs.is_dir() and len(list(runs.glob("*.json"))) >= n:
            return
        time.sleep(0.05)
    raise AssertionError(f"fewer than {n} run files in {runs} after {timeout} s")


def _records(runs: Path) -> dict[str, dict]:
    return {p.stem: json.loads(p.read_text()) for p in sorted(runs.glob("*.json"))}


def _snapshot(runs: Path) -> dict[str, tuple[bytes, int]]:
    return {p.name: (p.read_bytes(), p.stat().st_mtime_ns) for p in sorted(runs.glob("*.json"))}


def _runs_to_train(out: str) -> int:
    """How many runs this `kedro run` set out to train (the stream's first log line)."""
    found = re.search(r"Training (\d+) run\(s\) with the", out)
    assert found, out[-6000:]
    return int(found.group(1))


def _scheduler_loss_then_resume(tmp_path: Path, cluster: Cluster, sleep: float, extra: dict):
    data_root = tmp_path / "data"
    runs = data_root / "03_primary" / "runs"
    cluster.start()
    proc = _start_kedro(data_root, cluster, sleep, extra)
    _wait_for_files(runs, 4, proc)
    killed_at = time.monotonic()
    cluster.kill(cluster.scheduler)
    out = _finish(proc, timeout=120)
    exited_after = time.monotonic() - killed_at

    assert proc.returncode != 0, out[-6000:]
    assert f"lost the Dask scheduler at {cluster.address}" in out, out[-6000:]
    assert "stay pending" in out and "run the same `kedro run` again" in out, out[-6000:]
    assert "Pipeline execution completed successfully" not in out
    records = _records(runs)
    total = _runs_to_train(out)
    assert 4 <= len(records) < total
    # no failed record for a lost run, and no retry burnt
    assert {r["status"] for r in records.values()} == {"completed"}
    assert {r["attempts"] for r in records.values()} == {1}
    assert f"{len(records)} run(s) completed before the loss and were saved" in out, out[-6000:]
    assert f"{total - len(records)} run(s) stay pending" in out, out[-6000:]
    before = _snapshot(runs)

    # restart the scheduler (same address) and the workers, run the same command again
    for proc_, _ in cluster.workers:
        cluster.kill(proc_)
    cluster.start()
    again = _start_kedro(data_root, cluster, sleep, extra)
    out2 = _finish(again, timeout=240)
    assert again.returncode == 0, out2[-6000:]
    records = _records(runs)
    assert len(records) == total
    assert {r["status"] for r in records.values()} == {"completed"}
    after = _snapshot(runs)
    assert {k: after[k] for k in before} == before  # bytes and mtimes
    return exited_after


@pytest.mark.slow  # ~30 s on a real cluster; tests/execution/test_scheduler_loss.py covers it in-process
def test_lost_scheduler_leaves_runs_pending_and_a_rerun_resumes(tmp_path, cluster):
    _scheduler_loss_then_resume(tmp_path, cluster, sleep=0.2, extra=SMALL)


@pytest.mark.slow
def test_lost_scheduler_mid_mock_study_with_retries_off(tmp_path, cluster):
    # the whole mock study, and max_retries 0: nothing depends on a retry being left
    _scheduler_loss_then_resume(tmp_path, cluster, sleep=0.3, extra={"training.max_retries": 0})


@pytest.mark.slow  # ~25 s; a lost scheduler (the harder failure) stays in make test
def test_a_killed_worker_loses_nothing_and_is_named(tmp_path, cluster):
    data_root = tmp_path / "data"
    runs = data_root / "03_primary" / "runs"
    cluster.start()
    proc = _start_kedro(data_root, cluster, 0.4, SMALL)
    _wait_for_files(runs, 3, proc)
    victim, wport = cluster.workers[0]
    cluster.kill(victim)
    out = _finish(proc)
    assert proc.returncode == 0, out[-6000:]
    records = _records(runs)
    assert len(records) == _runs_to_train(out)
    assert {r["status"] for r in records.values()} == {"completed"}
    assert f"Dask worker tcp://127.0.0.1:{wport} died with run(s)" in out, out[-6000:]
