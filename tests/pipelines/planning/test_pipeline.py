import json

import pytest
from kedro.io import DataCatalog, MemoryDataset
from kedro.runner import SequentialRunner

from flops_fit.pipelines.planning import create_pipeline
from tests.planning.test_sweep import base_params

from ...conftest import read_json


def _catalog(text: str) -> DataCatalog:
    return DataCatalog(datasets={
        "training_data": MemoryDataset(text),
        "params:corpus": MemoryDataset(
            {"tokenizer": "bytes", "heldout_fraction": 0.02, "block_size": 4096}),
        "params:planning": MemoryDataset(base_params()),
        "params:training": MemoryDataset({"backend": "synthetic"}),
        "params:torch_backend": MemoryDataset({}),
    })


def test_pipeline_runs_on_memory_catalog():
    outputs = SequentialRunner().run(create_pipeline(), _catalog("x" * 5_000_000))
    plan_table = outputs["sweep_plan_table"].load()
    summary = outputs["sweep_plan_summary"].load()
    assert len(plan_table) == summary["runs"] > 0
    assert plan_table["experiment_id"].is_unique
    json.dumps(summary)  # the summary must be plain JSON


@pytest.mark.slow  # a real kedro run (~9 s); the pipeline runs in process above, and session
# runs of planning are in the training, study-lock and study tests
def test_session_run_writes_the_plan(kedro_run):
    kedro_run("--pipelines", "planning", env="mock")
    plan = read_json(kedro_run.data_root / "02_intermediate" / "sweep_plan.json")
    summary = read_json(kedro_run.data_root / "02_intermediate" / "sweep_plan_summary.json")
    assert len(plan) == summary["runs"] >= 50
    assert (kedro_run.data_root / "02_intermediate" / "sweep_plan.csv").exists()
    assert len({r["compute_budget"] for r in plan}) >= 6


def test_unknown_parameter_fails_before_running(kedro_run):
    proc = kedro_run("--pipelines", "planning", env="mock",
                     params={"planning.n_sizes": 3}, check=False)
    assert proc.returncode != 0
    assert "unknown parameter 'planning.n_sizes'" in proc.stderr + proc.stdout
    assert not (kedro_run.data_root / "02_intermediate" / "sweep_plan.json").exists()
