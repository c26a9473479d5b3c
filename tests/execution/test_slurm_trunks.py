"""A trunk plan on a real Slurm cluster (dask-jobqueue): its jobs are cancelled mid-trunk, the
replacement jobs resume the trunks from their checkpoints, and every branch ends with one
completed record, written by the driving process alone.

Needs a reachable Slurm, like `test_slurm` (`.ci/slurm-up`); skipped without one, failed under CI.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
import uuid

import pytest

from tests.conftest import PROJECT_ROOT
from tests.execution.test_slurm import (
    _queue_empties,
    _replacing_env,
    _slurm_or_skip,
    _squeue,
    _stopped_on_exit,
)
from tests.execution.test_trunks import _SWEEP, WSD, _plan, _saved_mid_trunk, _training

pytestmark = pytest.mark.slurm


def test_trunks_on_slurm_resume_from_their_checkpoints_after_the_jobs_are_cancelled(tmp_path):
    _slurm_or_skip()
    job_name = f"ff-trunks-{uuid.uuid4().hex[:8]}"
    sequential = _training(tmp_path, data="slow", data_kwargs={"delay": 0.004})
    plan = _plan(sequential)
    training = {**sequential, "executor": "dask", "dask": {
        "cluster": "slurm", "wait_for_workers_seconds": 60, "slurm": {
            "cores": 1, "processes": 1, "memory": "1GB", "walltime": "00:10:00", "jobs": 2,
            "job_name": job_name, "log_directory": str(tmp_path / "slurm-logs"),
            "scheduler_host": "127.0.0.1"}}}
    torch_backend = {**WSD, "checkpoint_every_steps": 5}
    runs = tmp_path / "runs"
    trunk_dirs = tmp_path / "ck" / "trunks"
    log_path = tmp_path / "sweep.log"

    seen: dict[str, str] = {}
    cancelled: list[str] = []
    with log_path.open("w") as log_file:
        proc = subprocess.Popen(
            [sys.executable, "-c", _SWEEP, json.dumps([plan, training, torch_backend, str(runs)])],
            cwd=PROJECT_ROOT, stdout=log_file, stderr=subprocess.STDOUT,
            env=_replacing_env())
        with _stopped_on_exit(proc):
            deadline = time.monotonic() + 240
            while proc.poll() is None and time.monotonic() < deadline:
                jobs = _squeue(job_name)
                seen.update(jobs)
                running = sorted(j for j, s in jobs.items() if s == "RUNNING")
                if not cancelled and len(running) == 2 and _saved_mid_trunk(
                        runs, trunk_dirs, within=0.5):
                    cancelled = running  # both workers, one of them in the middle of a trunk
                    subprocess.run(["scancel", *cancelled], check=True, timeout=20)
                    before = {p.name: p.read_bytes() for p in runs.glob("*.json")}
                time.sleep(0.1)
            rc = proc.wait(timeout=max(1.0, deadline - time.monotonic()))
    output = log_path.read_text()
    assert rc == 0, output[-6000:]
    assert cancelled, f"never saw both jobs running mid-trunk: {seen}\n{output[-4000:]}"
    assert len(seen) > 2, f"no job replaced the cancelled ones: {seen}"

    after = {p.name: p.read_bytes() for p in runs.glob("*.json")}
    assert set(after) == {f"{r['experiment_id']}.json" for r in plan}
    assert all(after[name] == data for name, data in before.items())  # never rewritten
    records = [json.loads(data) for data in after.values()]
    assert all(r["status"] == "completed" for r in records), [r["status"] for r in records]
    # a cancelled trunk went on from its mid-way checkpoint, not from a branch point or step 0
    points = {(r["trunk_id"], r["branch_step"]) for r in plan} | {(r["trunk_id"], 0)
                                                                  for r in plan}
    resumed = [(r["trunk_id"], r["resumed_from_step"]) for r in records
               if r["experiment_id"] + ".json" not in before]
    assert any(p not in points for p in resumed), resumed
    # the branches of a trunk share its seed
    for trunk in {r["trunk_id"] for r in plan}:
        assert len({r["seed"] for r in records if r["trunk_id"] == trunk}) == 1
    assert _queue_empties(job_name), _squeue(job_name)
