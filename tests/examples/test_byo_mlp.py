"""The "Bring your own model" example (examples/byo_mlp) trained end to end through `kedro run`.

The example's package is copied into a temporary folder outside the repository and put on
PYTHONPATH, as a user's own package would be; its conf environment is added to a copy of the
project's conf/ (passed with --conf-source), so nothing in the repository changes. The sweep is
the example's study shrunk by --params: a smaller data set, three tiny budgets, four sizes.
"""

from __future__ import annotations

import math
import os
import shutil
import subprocess
from collections import Counter
from pathlib import Path

import pandas as pd
import pytest

from tests.conftest import PROJECT_ROOT, kedro_command, read_json

EXAMPLE = PROJECT_ROOT / "examples" / "byo_mlp"
ENV = "byo_mlp"
FACTORY = "my_mlp.model:make_mlp"
PIPELINES = "planning,training,analysis,reporting"

# The example's own study at a size that trains in seconds: 2 000 training examples, budgets
# 2e7-2e8 FLOPs (widths 4-35), four target sizes, a short bootstrap.
TINY = {
    "training.data.kwargs.num_train": 2000,
    "training.data.kwargs.num_heldout": 500,
    "training.show_progress": "false",
    "planning.compute_budgets.values": "null",
    "planning.compute_budgets.min": "2.0e+7",
    "planning.compute_budgets.max": "2.0e+8",
    "planning.compute_budgets.num": 3,
    "planning.model_sizes.centre": "fixed_range",
    "planning.model_sizes.fixed_range.min": 200,
    "planning.model_sizes.fixed_range.max": 3000,
    "planning.model_sizes.num": 4,
    "planning.min_tokens_per_param": 0.1,
    "planning.max_epochs": 100,
    "planning.timing_probe_steps": 1,
    "analysis.bootstrap.draws": 50,
}


def user_setup(root: Path) -> tuple[Path, Path]:
    """What a user does: their package somewhere of their own, their env folder in a conf/."""
    package = root / "user" / "byo_mlp"
    shutil.copytree(EXAMPLE, package, ignore=shutil.ignore_patterns("__pycache__", "*.egg-info"))
    conf = root / "conf"
    shutil.copytree(PROJECT_ROOT / "conf", conf, ignore=shutil.ignore_patterns("local"))
    (conf / "local").mkdir()
    shutil.copytree(package / "conf" / ENV, conf / ENV)
    return package, conf


def run_example(root: Path, timeout: float = 600) -> subprocess.CompletedProcess:
    """`kedro run` of all four pipelines from the project root, the user's package on PYTHONPATH."""
    package, conf = user_setup(root)
    assert PROJECT_ROOT not in package.parents  # the package lives outside the repository
    cmd = kedro_command(
        root / "data", "--conf-source", str(conf), "--pipelines", PIPELINES, env=ENV, params=TINY
    )
    path = os.pathsep.join(p for p in (str(package), os.environ.get("PYTHONPATH")) if p)
    proc = subprocess.run(
        cmd,
        cwd=PROJECT_ROOT,
        capture_output=True,
        text=True,
        timeout=timeout,
        env={**os.environ, "KEDRO_DISABLE_TELEMETRY": "1", "PYTHONPATH": path},
    )
    if proc.returncode != 0:
        raise AssertionError(
            f"kedro run failed ({proc.returncode}):\n{proc.stdout[-4000:]}\n{proc.stderr[-8000:]}"
        )
    return proc


def check_plan(data: Path) -> list[dict]:
    plan = read_json(data / "02_intermediate" / "sweep_plan.json")
    assert {r["model_factory"] for r in plan} == {FACTORY}
    assert {r["size_param"] for r in plan} == {"width"}
    assert {r["data_unit"] for r in plan} == {"examples"}
    assert {r["flops_formula"] for r in plan} == {"measured"}
    assert all(r["model_kwargs"] == {"depth": 2, "width": r["size_value"]} for r in plan)
    # an MLP has no embedding tables: N is every parameter, width² + 52·width + 10 at depth 2
    assert all(
        r["model_size"] == r["total_params"] == r["size_value"] ** 2 + 52 * r["size_value"] + 10
        for r in plan
    )
    per_budget = Counter(r["compute_budget"] for r in plan)
    assert len(per_budget) == 3 and min(per_budget.values()) >= 3
    assert all(r["planned_flops"] == pytest.approx(r["compute_budget"], rel=0.5) for r in plan)
    return plan


def check_runs(data: Path, plan: list[dict]) -> pd.DataFrame:
    stored = {p.stem for p in (data / "03_primary" / "runs").glob("*.json")}
    assert stored == {r["experiment_id"] for r in plan}
    results = pd.read_csv(data / "03_primary" / "results.csv")
    assert sorted(results["experiment_id"]) == sorted(stored)
    assert (results["status"] == "completed").all(), results[["experiment_id", "error_message"]]
    assert (results["data_unit"] == "examples").all()
    assert (results["tokens_seen"] == results["num_tokens"]).all()  # exact example budgets
    assert results["final_loss"].map(math.isfinite).all()
    # the user loss's metrics hook: held-out accuracy and unsmoothed NLL with every run
    assert results["heldout_accuracy"].between(0, 1).all()
    assert results["heldout_nll"].map(math.isfinite).all()
    assert (results["heldout_examples"] == TINY["training.data.kwargs.num_heldout"]).all()
    return results


@pytest.mark.slow  # ~45 s of kedro run with Dask; plugins by import path are tested in tests/plugins
def test_example_study_end_to_end(tmp_path):
    """planning -> training -> analysis -> reporting, as `kedro run --env byo_mlp` runs it: the
    env's Dask executor, so every worker imports the user's package by its import path."""
    proc = run_example(tmp_path)
    assert "on the dask executor" in proc.stdout + proc.stderr
    data = tmp_path / "data"
    plan = check_plan(data)
    check_runs(data, plan)
    laws = read_json(data / "07_model_output" / "scaling_laws.json")
    assert laws["meta"]["n_budgets"] == 3
    assert laws["meta"]["n_runs"] == laws["meta"]["n_runs_used"] == len(plan)
    for name in ("report.html", "isoflops_curves.png", "scaling_laws.png"):
        assert (data / "08_reporting" / name).stat().st_size > 0
