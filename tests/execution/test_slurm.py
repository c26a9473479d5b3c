"""The mock study on a real Slurm cluster through `kedro run --env slurm` (dask-jobqueue).

Needs a reachable Slurm (`.ci/slurm-up` starts a one-node one and prints the SLURM_CONF to
export). Without one the test is skipped, except under CI, where it fails: CI must run it.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import time
import uuid
from contextlib import contextmanager
from pathlib import Path

import pytest
import yaml

from flops_fit.execution.study_lock import LOCK_NAME
from tests.conftest import PROJECT_ROOT, kedro_command

pytestmark = pytest.mark.slurm


def _slurm_or_skip() -> None:
    why = None
    if not shutil.which("sbatch") or not shutil.which("squeue"):
        why = "Slurm's sbatch/squeue are not installed"
    else:
        proc = subprocess.run(["sinfo", "-h", "-o", "%T"], capture_output=True, text=True,
                              timeout=20, check=False)
        states = proc.stdout.split()
        if proc.returncode != 0 or not any(s.startswith(("idle", "mix", "alloc")) for s in states):
            why = f"no Slurm node is up (sinfo: {proc.stdout.strip() or proc.stderr.strip()})"
    if why is None:
        return
    if os.environ.get("CI"):
        pytest.fail(f"CI must run the Slurm test, but {why}; .ci/run starts one (.ci/slurm-up)")
    pytest.skip(f"{why}; start one with `.ci/slurm-up` and export the SLURM_CONF it prints")


def _squeue(job_name: str) -> dict[str, str]:
    out = subprocess.run(["squeue", "-h", "-n", job_name, "-o", "%i %T"], capture_output=True,
                         text=True, timeout=20, check=False).stdout
    return dict(line.split() for line in out.splitlines() if line.strip())


def _deep_merge(a: dict, b: dict) -> dict:
    out = dict(a)
    for key, value in b.items():
        out[key] = _deep_merge(out[key], value) if isinstance(value, dict) and isinstance(
            out.get(key), dict) else value
    return out


def _slurm_mock_conf(root: Path, job_name: str, log_dir: Path) -> Path:
    """A conf source whose `slurm` env is the mock study with conf/slurm's training on top."""
    conf = root / "conf"
    shutil.copytree(PROJECT_ROOT / "conf/base", conf / "base")
    shutil.copy(PROJECT_ROOT / "conf/logging.yml", conf / "logging.yml")
    env = conf / "slurm"
    env.mkdir()
    for path in (PROJECT_ROOT / "conf/mock").glob("*.yml"):
        if path.name != "parameters_training.yml":
            shutil.copy(path, env / path.name)
    training = _deep_merge(
        yaml.safe_load((PROJECT_ROOT / "conf/mock/parameters_training.yml").read_text()),
        yaml.safe_load((PROJECT_ROOT / "conf/slurm/parameters_training.yml").read_text()),
    )
    # small jobs for a 2-CPU node: two jobs of one single-threaded worker each
    training = _deep_merge(training, {"training": {
        "show_progress": False,
        "synthetic": {"sleep_seconds": 0.25},
        "dask": {"wait_for_workers_seconds": 60, "slurm": {
            "cores": 1, "processes": 1, "memory": "1GB", "walltime": "00:10:00", "jobs": 2,
            "job_name": job_name, "log_directory": str(log_dir),
            "scheduler_host": "127.0.0.1",
        }},
    }})
    assert training["training"]["executor"] == "dask"
    assert training["training"]["dask"]["cluster"] == "slurm"
    (env / "parameters_training.yml").write_text(yaml.safe_dump(training))
    return conf


def _mock_study_on_slurm(tmp_path: Path) -> tuple[str, Path, list[str]]:
    """A fresh job name, the study's data folder and the `kedro run` of its sweep on Slurm."""
    _slurm_or_skip()
    job_name = f"ff-test-{uuid.uuid4().hex[:8]}"
    conf = _slurm_mock_conf(tmp_path, job_name, tmp_path / "slurm-logs")
    data = tmp_path / "data"
    return job_name, data, kedro_command(data, "--pipelines", "planning,training",
                                         "--conf-source", str(conf), env="slurm")


def _queue_empties(job_name: str) -> bool:
    """scancel is asynchronous: wait up to 20 s for the job name to leave the queue."""
    for _ in range(100):
        if not _squeue(job_name):
            return True
        time.sleep(0.2)
    return False


def _replacing_env() -> dict[str, str]:
    """The environment of a sweep whose Slurm jobs are cancelled: a cancelled job is replaced as
    soon as Dask counts its worker lost (after 1 s, not its default 15 s)."""
    return {**os.environ, "KEDRO_DISABLE_TELEMETRY": "1",
            "DASK_DISTRIBUTED__DEPLOY__LOST_WORKER_TIMEOUT": "1s"}


@contextmanager
def _stopped_on_exit(proc: subprocess.Popen):
    """`proc` killed and reaped on the way out if it still runs, whatever the test saw."""
    try:
        yield proc
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def test_mock_study_on_slurm_survives_a_cancelled_job(tmp_path):
    job_name, data, cmd = _mock_study_on_slurm(tmp_path)
    runs_dir = data / "03_primary" / "runs"
    log_path = tmp_path / "kedro.log"
    started = time.monotonic()
    seen: dict[str, str] = {}
    killed = None
    with log_path.open("w") as log_file:
        proc = subprocess.Popen(cmd, cwd=PROJECT_ROOT, stdout=log_file, stderr=subprocess.STDOUT,
                                env=_replacing_env())
        with _stopped_on_exit(proc):
            deadline = started + 240
            while proc.poll() is None and time.monotonic() < deadline:
                jobs = _squeue(job_name)
                seen.update(jobs)
                done = len(list(runs_dir.glob("*.json"))) if runs_dir.is_dir() else 0
                running = sorted(j for j, s in jobs.items() if s == "RUNNING")
                if killed is None and len(running) == 2 and done >= 8:
                    killed = running[0]  # mid-sweep: both workers are busy with a run
                    subprocess.run(["scancel", killed], check=True, timeout=20)
                    killed_at = (time.monotonic() - started, done)
                time.sleep(0.3)
            rc = proc.wait(timeout=max(1.0, deadline - time.monotonic()))
    elapsed = time.monotonic() - started
    output = log_path.read_text()
    assert rc == 0, output[-6000:]
    assert killed is not None, f"never saw two running jobs mid-sweep: {seen}\n{output[-4000:]}"

    # the jobs went through sbatch/squeue: the ids squeue showed are the ones the run logged
    logged = re.search(r"Slurm job\(s\) ([\d, ]+) submitted with sbatch", output)
    assert logged, output[-4000:]
    first = set(logged.group(1).replace(" ", "").split(","))
    assert len(first) == 2 and first <= set(seen), (seen, logged.group(0))
    # the cancelled job is replaced by a new one when the sweep still needs it (adaptive)
    assert len(seen) <= 3, seen

    # the cancelled job's worker was seen to go, and its runs went to the other job
    assert re.search(r"[Ww]orker .*died|Removing worker", output), output[-4000:]

    # every planned run completed exactly once: nothing lost, nothing failed
    plan = json.loads((data / "02_intermediate" / "sweep_plan.json").read_text())
    plan = plan["runs"] if isinstance(plan, dict) and "runs" in plan else plan
    planned = {r["experiment_id"] for r in plan}
    records = [json.loads(p.read_text()) for p in runs_dir.glob("*.json")]
    assert {r["experiment_id"] for r in records} == planned
    assert len(planned) >= 50
    failed = [r["experiment_id"] for r in records if r["status"] != "completed"]
    assert not failed, failed

    # the sweep's jobs are cancelled when it ends
    assert _queue_empties(job_name), _squeue(job_name)
    print(f"slurm test: jobs {sorted(seen)}, cancelled {killed} at {killed_at[0]:.1f} s after "
          f"{killed_at[1]} runs; {len(planned)} runs in {elapsed:.1f} s")


def test_sigterm_on_slurm_saves_the_runs_and_cancels_the_jobs(tmp_path):
    """What a preempted `kedro run` driving a Slurm cluster does: the one line, the runs saved,
    nothing failed, the lock free, and none of its jobs left in the queue."""
    job_name, data, cmd = _mock_study_on_slurm(tmp_path)
    runs_dir = data / "03_primary" / "runs"
    log_path = tmp_path / "kedro.log"
    seen: dict[str, str] = {}
    with log_path.open("w") as log_file:
        proc = subprocess.Popen(cmd, cwd=PROJECT_ROOT, stdout=log_file, stderr=subprocess.STDOUT,
                                env={**os.environ, "KEDRO_DISABLE_TELEMETRY": "1"})
        with _stopped_on_exit(proc):
            deadline = time.monotonic() + 240
            while proc.poll() is None and time.monotonic() < deadline:
                seen.update(_squeue(job_name))
                done = len(list(runs_dir.glob("*.json"))) if runs_dir.is_dir() else 0
                if done >= 4:  # mid-sweep, the jobs' workers busy with runs
                    break
                time.sleep(0.3)
            assert proc.poll() is None, log_path.read_text()[-4000:]
            assert _squeue(job_name), f"no job of the sweep is queued: {seen}"
            proc.send_signal(signal.SIGTERM)
            rc = proc.wait(timeout=90)
    output = log_path.read_text()
    assert rc == 128 + signal.SIGTERM, output[-6000:]
    lines = [line for line in output.splitlines() if "interrupted:" in line]
    assert len(lines) == 1 and "run the same command to resume" in lines[0], output[-4000:]
    records = [json.loads(p.read_text()) for p in runs_dir.glob("*.json")]
    assert len(records) >= 4 and all(r["status"] == "completed" for r in records)
    assert (runs_dir / LOCK_NAME).read_text() == ""
    assert _queue_empties(job_name), f"jobs left in the queue after SIGTERM: {_squeue(job_name)}"
