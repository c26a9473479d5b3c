from __future__ import annotations

import json
import os
import signal
import subprocess
import time

import pandas as pd
import pytest
from kedro.io import DataCatalog, MemoryDataset
from kedro.runner import SequentialRunner

from flops_fit.datasets.run_store import RunPartitionsDataset
from flops_fit.pipelines.training import create_pipeline
from tests.conftest import PROJECT_ROOT, kedro_command
from tests.execution.helpers import small_plan

CORPUS = {"tokenizer": "bytes", "heldout_fraction": 0.02, "block_size": 4096}
SYNTH = {"backend": "synthetic", "executor": "sequential", "show_progress": False}


def _catalog(plan, training, runs_dir=None):
    datasets = {
        "sweep_plan": MemoryDataset(plan),
        "training_data": MemoryDataset(""),
        "params:training": MemoryDataset(training),
        "params:torch_backend": MemoryDataset({}),
        "params:corpus": MemoryDataset(CORPUS),
        "round_plans": MemoryDataset([]),
    }
    if runs_dir is None:
        datasets["existing_runs"] = MemoryDataset({})
    else:
        datasets["existing_runs"] = RunPartitionsDataset(path=str(runs_dir))
        datasets["runs"] = RunPartitionsDataset(path=str(runs_dir))
    return DataCatalog(datasets=datasets)


def _run(catalog):
    out = SequentialRunner().run(create_pipeline(), catalog)
    return out["results"].load(), out["run_results"].load()


def test_pipeline_on_a_memory_catalog():
    plan = small_plan()
    results, run_results = _run(_catalog(plan, SYNTH))
    assert len(results) == len(run_results) == len(plan)
    assert (results["status"] == "completed").all()
    assert results["final_loss"].between(1.69, 10).all()


def test_rerun_runs_nothing_and_keeps_every_file(tmp_path):
    plan = small_plan()
    runs = tmp_path / "runs"
    first, _ = _run(_catalog(plan, SYNTH, runs))
    before = {p.name: (p.read_bytes(), p.stat().st_mtime_ns) for p in runs.iterdir()}
    assert len(before) == len(plan)
    second, _ = _run(_catalog(plan, SYNTH, runs))
    after = {p.name: (p.read_bytes(), p.stat().st_mtime_ns) for p in runs.iterdir()}
    assert after == before
    pd.testing.assert_frame_equal(first, second)


def test_resume_completes_a_partial_sweep_and_retries_failures(tmp_path):
    plan = small_plan()
    runs = tmp_path / "runs"
    _run(_catalog(plan[:5], SYNTH, runs))  # an interrupted sweep: 5 runs done
    kept = {p.name: p.read_bytes() for p in runs.iterdir()}
    failing = {**SYNTH, "max_retries": 0, "synthetic": {"failure_fraction": 1.0}}
    results, _ = _run(_catalog(plan, failing, runs))
    assert (results["status"] == "failed").sum() == len(plan) - 5
    assert all((runs / name).read_bytes() == data for name, data in kept.items())
    # failures are retried by the next invocation; results cover ALL partitions, not just new
    results, run_results = _run(_catalog(plan, SYNTH, runs))
    assert (results["status"] == "completed").all() and len(results) == len(plan)
    assert all((runs / name).read_bytes() == data for name, data in kept.items())
    assert len(run_results) == len(plan)


def test_bad_plan_fails_before_any_run(tmp_path):
    plan = small_plan()
    del plan[2]["num_tokens"]
    runs = tmp_path / "runs"
    with pytest.raises(Exception, match="num_tokens"):
        _run(_catalog(plan, SYNTH, runs))
    assert not runs.exists()


def _json_files(folder):
    return sorted(folder.glob("*.json")) if folder.is_dir() else []


def test_kill_9_part_way_then_resume(tmp_path, kedro_run):
    """A real `kedro run` killed with SIGKILL mid-sweep; the next run completes the sweep and
    every result written before the kill is unchanged."""
    data_root = kedro_run.data_root
    runs = data_root / "03_primary" / "runs"
    cmd = kedro_command(
        data_root,
        "--pipelines",
        "planning,training",
        env="mock",
        params={"training.synthetic.sleep_seconds": 0.1, "training.show_progress": "false"},
    )
    with (tmp_path / "killed.log").open("w") as log:
        proc = subprocess.Popen(
            cmd,
            cwd=PROJECT_ROOT,
            stdout=log,
            stderr=subprocess.STDOUT,
            env={**os.environ, "KEDRO_DISABLE_TELEMETRY": "1"},
        )
        deadline = time.monotonic() + 120
        while len(_json_files(runs)) < 8 and proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.02)
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
    assert proc.returncode == -signal.SIGKILL, (tmp_path / "killed.log").read_text()[-3000:]
    plan = json.loads((data_root / "02_intermediate" / "sweep_plan.json").read_text())
    assert len(plan) >= 50
    before = {p.name: p.read_bytes() for p in _json_files(runs)}
    assert 8 <= len(before) < len(plan)
    for data in before.values():  # every file on disk is whole
        assert json.loads(data)["status"] == "completed"

    kedro_run("--pipelines", "training", env="mock")

    after = {p.name: p.read_bytes() for p in _json_files(runs)}
    assert set(after) == {f"{r['experiment_id']}.json" for r in plan}
    assert all(after[name] == data for name, data in before.items())
    assert not [p for p in runs.iterdir() if p.suffix == ".tmp"]
    results = pd.read_csv(data_root / "03_primary" / "results.csv")
    assert len(results) == len(plan) and (results["status"] == "completed").all()


@pytest.mark.slow
def test_cli_dask_executor_matches_sequential(kedro_run, tmp_path):
    kedro_run("--pipelines", "planning,training", env="mock")
    sequential = pd.read_csv(kedro_run.data_root / "03_primary" / "run_results.csv")
    other = tmp_path / "dask-data"
    proc = subprocess.run(
        kedro_command(
            other,
            "--pipelines",
            "planning,training",
            env="mock",
            params={"training.executor": "dask"},
        ),
        cwd=PROJECT_ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-4000:]
    on_dask = pd.read_csv(other / "03_primary" / "run_results.csv")
    timing = ["wall_time_seconds", "started_at", "finished_at"]
    pd.testing.assert_frame_equal(sequential.drop(columns=timing), on_dask.drop(columns=timing))


@pytest.mark.slow
def test_repeated_kills_at_random_moments_never_break_a_load(tmp_path, kedro_run):
    """SIGKILL at random moments (start-up, planning, training) three times over, then a clean
    run: every file left behind always parses, and completed results never change."""
    import random

    rng = random.Random(1234)
    data_root = kedro_run.data_root
    runs = data_root / "03_primary" / "runs"
    cmd = kedro_command(
        data_root,
        "--pipelines",
        "planning,training",
        env="mock",
        params={"training.synthetic.sleep_seconds": 0.03, "training.show_progress": "false"},
    )
    seen: dict[str, bytes] = {}
    for _ in range(3):
        proc = subprocess.Popen(
            cmd,
            cwd=PROJECT_ROOT,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            env={**os.environ, "KEDRO_DISABLE_TELEMETRY": "1"},
        )
        time.sleep(rng.uniform(1.0, 3.5))
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
        for path in _json_files(runs):
            data = path.read_bytes()
            assert json.loads(data)["status"] == "completed"
            assert seen.setdefault(path.name, data) == data
    kedro_run("--pipelines", "planning,training", env="mock")
    after = {p.name: p.read_bytes() for p in _json_files(runs)}
    assert all(after[name] == data for name, data in seen.items())
    results = pd.read_csv(data_root / "03_primary" / "results.csv")
    assert len(results) == len(after) >= 50
