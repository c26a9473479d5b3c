"""Trunks and branches through the executors: every branch is a run record, the branches of a
trunk run in order from its checkpoints (sequential and Dask give the same losses), and a
sweep killed with SIGKILL mid-trunk resumes the trunk and trains only what has no result."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from flops_fit.execution import prepare_training
from flops_fit.pipelines.planning.nodes import plan_isoflop_sweep, summarise_data
from flops_fit.planning.sweep import PlanningError
from flops_fit.planning.trunks import design_flops
from tests.conftest import PROJECT_ROOT
from tests.plugins.toy_plugins import training_params

BUDGETS = [1.0e6, 2.0e6, 4.0e6]
#: three toy MLP sizes in each of three budgets 2x apart: three trunks of three branches
PLANNING = {"compute_budgets": {"values": BUDGETS}, "batch_size": 8, "max_epochs": None,
            "flops_formula": "6nd", "design": "trunks", "min_tokens_per_param": 0.01,
            "model_sizes": {"num": 3, "centre": "fixed_range",
                            "fixed_range": {"min": 300.0, "max": 1500.0}}}
#: a later round's branch 2x longer than a trunk's longest still fits its warm-up (10% of it)
WSD = {"schedule": {"kind": "wsd", "warmup_fraction": 0.1, "trunk_warmup_fraction": 0.05},
       "checkpoint_every_minutes": None, "curve": {"points": 4}}


def _training(tmp_path: Path, **extra) -> dict:
    return training_params(show_progress=False, checkpoint_dir=str(tmp_path / "ck"), **extra)


def _plan(training: dict, torch_backend: dict | None = None, planning: dict | None = None):
    planning = planning or PLANNING
    summary = summarise_data(None, {}, training, planning, {})
    plan, _ = plan_isoflop_sweep(BUDGETS, summary, None, planning, training, {},
                                 WSD if torch_backend is None else torch_backend)
    return plan


def test_trunks_need_a_wsd_schedule_and_name_the_keys(tmp_path):
    with pytest.raises(PlanningError, match=r"torch_backend\.schedule\.kind is 'cosine'"):
        _plan(_training(tmp_path), {})


def test_a_sweep_of_branches_trains_each_trunk_once(tmp_path):
    training = _training(tmp_path)
    plan = _plan(training)
    trunks = {r["trunk_id"] for r in plan}
    assert len(plan) == 9 and len(trunks) == 3
    records = prepare_training(plan, {}, training, {"torch": WSD}).records()
    assert all(r["status"] == "completed" for r in records.values())
    for trunk in trunks:
        branches = sorted((r for r in records.values() if r["trunk_id"] == trunk),
                          key=lambda r: r["num_steps"])
        assert [r["resumed_from_step"] for r in branches] == [
            0, branches[0]["branch_step"], branches[1]["branch_step"]]
        assert len({r["seed"] for r in branches}) == 1  # the trunk's seed
    trained = sum(r["trained_flops"] for r in records.values())
    assert trained == pytest.approx(design_flops(plan)["trained_flops"], rel=1e-9)
    assert trained < 0.75 * sum(r["actual_flops"] for r in records.values())

    # the same plan on two Dask workers: trunks in parallel, branches in order, same losses
    dask = {**training, "executor": "dask", "checkpoint_dir": str(tmp_path / "ck-dask"),
            "dask": {"n_workers": 2}}
    on_dask = prepare_training(plan, {}, dask, {"torch": WSD}).records()
    assert {k: r["final_loss"] for k, r in on_dask.items()} == pytest.approx(
        {k: r["final_loss"] for k, r in records.items()}, rel=1e-6)
    assert {k: r["resumed_from_step"] for k, r in on_dask.items()} == {
        k: r["resumed_from_step"] for k, r in records.items()}


_SWEEP = """
import json, sys
from flops_fit.datasets.run_store import RunPartitionsDataset
from flops_fit.execution import prepare_training
plan, training, torch_backend, runs = json.loads(sys.argv[1])
stream = prepare_training(plan, RunPartitionsDataset(path=runs).load(), training,
                          {"torch": torch_backend})
RunPartitionsDataset(path=runs).save(stream)
"""


def _saved_mid_trunk(runs: Path, trunk_dirs: Path, within: float | None = None) -> bool:
    """A trunk saved `latest.pt` after the last stored result (within the last `within`
    seconds: it is training now): past its first branch point, between two branch points."""
    done = list(runs.glob("*.json")) if runs.is_dir() else []
    latest = list(trunk_dirs.glob("*/latest.pt")) if trunk_dirs.is_dir() else []
    now = time.time()
    return bool(done) and any(
        p.stat().st_mtime > max(d.stat().st_mtime for d in done)
        and (within is None or now - p.stat().st_mtime < within) for p in latest)


def test_kill_9_mid_trunk_resumes_the_trunk_and_keeps_every_result(tmp_path):
    training = _training(tmp_path, data="slow", data_kwargs={"delay": 0.004})
    plan = _plan(training)
    torch_backend = {**WSD, "checkpoint_every_steps": 5}
    runs = tmp_path / "runs"
    trunk_dirs = tmp_path / "ck" / "trunks"
    args = json.dumps([plan, training, torch_backend, str(runs)])
    proc = subprocess.Popen([sys.executable, "-c", _SWEEP, args], cwd=PROJECT_ROOT,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                            env={**os.environ, "KEDRO_DISABLE_TELEMETRY": "1"})
    deadline = time.monotonic() + 120

    try:
        while (proc.poll() is None and not _saved_mid_trunk(runs, trunk_dirs)
               and time.monotonic() < deadline):
            time.sleep(0.01)
        assert proc.poll() is None, proc.stderr.read().decode()[-3000:]
    finally:
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
    before = {p.name: p.read_bytes() for p in runs.glob("*.json")}
    assert 1 <= len(before) < len(plan)

    from flops_fit.datasets.run_store import RunPartitionsDataset

    store = RunPartitionsDataset(path=str(runs))
    stream = prepare_training(plan, store.load(), training, {"torch": torch_backend})
    store.save(stream)
    after = {p.name: p.read_bytes() for p in runs.glob("*.json")}
    assert set(after) == {f"{r['experiment_id']}.json" for r in plan}
    assert all(after[name] == data for name, data in before.items())
    new = [json.loads(after[n]) for n in set(after) - set(before)]
    assert all(r["status"] == "completed" for r in new)
    # a trunk resumed between its branch points: from `latest.pt`, not a branch point
    points = {(r["trunk_id"], r["branch_step"]) for r in plan} | {(r["trunk_id"], 0)
                                                                  for r in plan}
    assert any((r["trunk_id"], r["resumed_from_step"]) not in points for r in new), [
        (r["trunk_id"], r["resumed_from_step"]) for r in new]


def test_a_later_round_extends_the_trunks_a_validation_run_stands_alone(tmp_path):
    from flops_fit.pipelines.planning.nodes import study_planner

    training = _training(tmp_path)
    plan = _plan(training)
    summary = summarise_data(None, {}, training, PLANNING, {})
    planner = study_planner(plan, summary, None, PLANNING, training, {}, WSD, 1)
    size = plan[0]["target_model_size"]
    later = planner(8.0e6, [size * 1.1])  # snapped back onto the pilot's size
    pilot = next(r for r in plan if r["target_model_size"] == size)
    assert later[0]["trunk_id"] == pilot["trunk_id"]
    assert later[0]["warmup_steps"] == pilot["warmup_steps"]
    alone = study_planner(plan, summary, None, PLANNING, training, {}, WSD, None,
                          as_branches=False)(8.0e6, [size * 1.1])
    assert alone[0].get("trunk_id") is None
