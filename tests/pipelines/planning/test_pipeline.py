import json

import pytest
from kedro.io import DataCatalog, MemoryDataset
from kedro.runner import SequentialRunner

from flops_fit.pipelines.planning import create_pipeline
from flops_fit.study.rounds import StudyStateError
from tests.planning.test_sweep import base_params

from ...conftest import PROJECT_ROOT, read_json

#: a small synthetic pilot (the mock environment's study, 12 runs) and a quick fit
PILOT = {"compute_budgets": {"values": [1e18, 1e19, 1e20]},
         "model_sizes": {"num": 4, "span_factor": 6.0, "power_law": {"coefficient": 0.2}}}
QUICK = {"training": {"show_progress": False}, "analysis": {"bootstrap": {"draws": 30}}}


def _catalog(text: str) -> DataCatalog:
    return DataCatalog(datasets={
        "training_data": MemoryDataset(text),
        "params:corpus": MemoryDataset(
            {"tokenizer": "bytes", "heldout_fraction": 0.02, "block_size": 4096}),
        "params:planning": MemoryDataset(base_params()),
        "params:training": MemoryDataset({"backend": "synthetic"}),
        "params:torch_backend": MemoryDataset({}),
        "round_plans": MemoryDataset([]),
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


def _session_run(data_root, pipelines: list[str], planning: dict) -> None:
    from kedro.framework.session import KedroSession
    from kedro.framework.startup import bootstrap_project

    bootstrap_project(PROJECT_ROOT)
    params = {"data_root": str(data_root), "planning": planning, **QUICK}
    with KedroSession.create(project_path=PROJECT_ROOT, env="mock",
                             runtime_params=params) as session:
        session.run(pipeline_names=pipelines)


def test_a_refused_change_of_the_pilot_leaves_the_plan_on_disk_as_it_was(tmp_path, caplog):
    """Once a round was planned from the pilot, planning refuses parameters that plan another
    pilot before it writes sweep_plan: the plan on disk still matches the runs trained."""
    _session_run(tmp_path, ["planning", "training", "analysis"], PILOT)
    _session_run(tmp_path, ["next_round"], PILOT)
    plan_files = sorted((tmp_path / "02_intermediate").glob("sweep_plan*"))
    before = {p.name: p.read_bytes() for p in plan_files}
    assert "sweep_plan.json" in before

    other = {**PILOT, "compute_budgets": {"values": [1e18, 1e19, 3e20]}}
    with pytest.raises(StudyStateError, match=r"round\(s\) 1 were planned from another pilot "
                       r"than the one the planning parameters plan now \(sweep_plan is left"):
        _session_run(tmp_path, ["planning"], other)
    assert {p.name: p.read_bytes() for p in plan_files} == before
    # resuming from the failed node would fail the same way, so Kedro's advice to is not shown
    assert "Running node: plan_isoflop_sweep" in caplog.text
    assert "--from-nodes" not in caplog.text and "nodes that have not run" not in caplog.text
    _session_run(tmp_path, ["planning", "training"], PILOT)  # restored: the study goes on
