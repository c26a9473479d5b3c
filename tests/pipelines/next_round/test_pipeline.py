"""A steered study in process: pilot -> fit -> next round -> train it -> fit -> validation ->
report, every pipeline through SequentialRunner, the study's state in real files (runs and round
documents), the rest in memory."""

from __future__ import annotations

import shutil

import pytest
from kedro.io import DataCatalog, MemoryDataset
from kedro.pipeline import Pipeline
from kedro.runner import SequentialRunner

from flops_fit.datasets.run_store import RunPartitionsDataset
from flops_fit.datasets.study_rounds import RoundFilesDataset
from flops_fit.hooks import MissingStageOutput, check_stage_inputs
from flops_fit.pipelines import analysis, next_round, planning, reporting, training, validation

PLANNING = {"compute_budgets": {"values": [1e18, 1e19, 1e20]}, "batch_size": 256,
            "flops_formula": "6nd", "max_epochs": None, "timing_probe_steps": 0,
            "throughput_flops_per_second": 1e30,
            "model_sizes": {"num": 5, "centre": "power_law", "span_factor": 6.0,
                            "power_law": {"coefficient": 0.2, "exponent": 0.4516}},
            "model_family": {"max_width": 16384, "aspect_ratio": 64.0, "max_layers": 256}}
TRAINING = {"backend": "synthetic", "executor": "sequential", "show_progress": False}
ANALYSIS = {"bootstrap": {"draws": 50}, "target_budgets": [1e22], "compute_model": "plan"}
STUDY = {"target_budget": 1e22, "precision": 1.05, "max_compute": 3e22, "max_rounds": 3,
         "min_expected_gain": 0.0}
REPORTING = {"headline_budget": 1e22, "embed_dpi": 20}


class Kept(MemoryDataset):
    """Keeps its data when the runner releases what no later node needs (read back after)."""

    def _release(self) -> None:
        pass


KEPT = ("sweep_plan", "data_summary", "study_plan", "results", "analysis_runs", "scaling_laws",
        "bootstrap_draws", "optimal_points", "predictions", "scaling_law_curves", "study_rounds",
        "validation", "report_summary")


def _catalog(tmp_path, study=None, values=None):
    params = {"planning": PLANNING, "training": TRAINING, "corpus": {},
              "torch_backend": {"eval": {"heldout_tokens": 4096}},
              "analysis": ANALYSIS, "study": {**STUDY, **(study or {})}, "reporting": REPORTING}
    rounds = str(tmp_path / "study")
    return DataCatalog(datasets={
        **{f"params:{k}": MemoryDataset(v) for k, v in params.items()},
        "training_data": MemoryDataset("A study that steers itself. " * 20000),
        "runs": RunPartitionsDataset(path=str(tmp_path / "runs")),
        "existing_runs": RunPartitionsDataset(path=str(tmp_path / "runs")),
        "validation_runs": RunPartitionsDataset(path=str(tmp_path / "validation_runs")),
        "existing_validation_runs": RunPartitionsDataset(path=str(tmp_path / "validation_runs")),
        "round_plans": RoundFilesDataset(path=rounds),
        "next_round": RoundFilesDataset(path=rounds, latest=True),
        **{name: Kept(*([values[name]] if name in (values or {}) else [])) for name in KEPT},
    })


@pytest.fixture(scope="module")
def pilot(tmp_path_factory):
    """The pilot trained and fitted once: (its folder, every stage output it wrote)."""
    folder = tmp_path_factory.mktemp("pilot")
    catalog = _catalog(folder)
    _run(catalog, planning, training, analysis)
    return folder, {name: catalog.load(name) for name in KEPT if catalog.exists(name)}


def _from_pilot(pilot, tmp_path, study=None):
    folder, values = pilot
    shutil.copytree(folder / "runs", tmp_path / "runs")
    return _catalog(tmp_path, study, values)


def _run(catalog, *modules):
    SequentialRunner().run(sum((m.create_pipeline() for m in modules), start=Pipeline([])),
                           catalog)


def test_a_round_is_planned_from_the_fit_trained_and_scored(pilot, tmp_path):
    catalog = _from_pilot(pilot, tmp_path)
    pilot = catalog.load("sweep_plan")
    assert {r["round"] for r in pilot} == {0}
    _run(catalog, next_round)
    doc = catalog.load("next_round")
    assert doc["round"] == 1 and doc["stop_reason"] is None and doc["runs"]
    assert {r["round"] for r in doc["runs"]} == {1}
    assert 0 < doc["planned_flops"] <= doc["allowance"]
    assert not {r["experiment_id"] for r in doc["runs"]} & {r["experiment_id"] for r in pilot}
    _run(catalog, training, analysis)
    results = catalog.load("results")
    assert len(results) == len(pilot) + len(doc["runs"])
    assert sorted(results["round"].unique()) == [0, 1]
    _run(catalog, next_round)
    table = catalog.load("study_rounds")
    assert table["round"].tolist()[:2] == [0, 1]
    assert table["runs_added"].tolist()[:2] == [len(pilot), len(doc["runs"])]
    assert table["interval_ratio"].iloc[0] > 1
    _run(catalog, validation, reporting)
    scored = catalog.load("validation")
    assert scored["runs"][0]["observed_loss"] is not None
    assert scored["compute_budget"] >= 2 * max(results["compute_budget"])
    summary = catalog.load("report_summary")
    assert summary["validation"]["verdict"] == scored["verdict"]
    assert [r["round"] for r in summary["study"]["rounds"]] == table["round"].tolist()


def test_a_study_already_precise_enough_stops_without_a_round(pilot, tmp_path):
    catalog = _from_pilot(pilot, tmp_path, {"precision": 1000.0})
    _run(catalog, next_round)
    doc = catalog.load("next_round")
    assert doc["runs"] == [] and doc["stop_reason"].startswith("precise enough")
    assert catalog.load("study_rounds")["stop_reason"].tolist() == [doc["stop_reason"]]


def test_a_study_that_cannot_afford_a_round_stops_naming_max_compute(pilot, tmp_path):
    pilot_cost = sum(r["planned_flops"] for r in pilot[1]["sweep_plan"])
    catalog = _from_pilot(pilot, tmp_path, {"max_compute": pilot_cost * 1.001})
    _run(catalog, next_round)
    assert "study.max_compute" in catalog.load("next_round")["stop_reason"]


def test_next_round_without_a_fit_fails_before_any_node(tmp_path):
    from flops_fit.datasets.atomic import JSONDataset

    catalog = DataCatalog(datasets={
        "scaling_laws": JSONDataset(filepath=str(tmp_path / "scaling_laws.json"))})
    with pytest.raises(MissingStageOutput, match="scaling_laws .* analysis pipeline"):
        check_stage_inputs(next_round.create_pipeline(), catalog)
