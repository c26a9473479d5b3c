"""The analysis pipeline on a memory catalog, and `kedro run` sessions (mock, imported)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from kedro.io import DataCatalog, MemoryDataset
from kedro.runner import SequentialRunner

from flops_fit.fitting.runs.simulated import CHINCHILLA_TRUTH, synthetic_results
from flops_fit.pipelines.analysis import create_pipeline
from flops_fit.schema import CURVE_COLUMNS, OPTIMAL_POINT_COLUMNS, PREDICTION_COLUMNS
from tests.pipelines.analysis.test_nodes import base_params

REFERENCE_DIR = Path(__file__).resolve().parents[3] / ".." / "shared" / "reference"
CHINCHILLA_CSV = REFERENCE_DIR / "epochai_chinchilla_svg_extracted_data.csv"
TRUTH_A = CHINCHILLA_TRUTH["beta"] / (CHINCHILLA_TRUTH["alpha"] + CHINCHILLA_TRUTH["beta"])
LAW_KEYS = {"coefficient", "exponent", "r2", "interval"}


OUTPUTS = ("scaling_laws", "optimal_points", "predictions", "scaling_law_curves")


class KeptDataset(MemoryDataset):
    """A MemoryDataset the runner cannot release after its last reader (for `predictions`)."""

    def _release(self) -> None:
        pass


def run_pipeline(results: pd.DataFrame, params: dict) -> dict:
    catalog = DataCatalog(
        datasets={
            "results": MemoryDataset(results),
            "params:analysis": MemoryDataset(params),
            **{name: KeptDataset() for name in OUTPUTS},
        }
    )
    SequentialRunner().run(create_pipeline(), catalog)
    return {name: catalog.load(name) for name in OUTPUTS}


def check_law(law: dict) -> None:
    assert set(law) >= LAW_KEYS
    assert set(law["interval"]) == {"coefficient", "exponent"}


def check_scaling_laws(laws: dict) -> None:
    """The binding schema of the outputs reference (docs/guides/outputs.md)."""
    json.dumps(laws, allow_nan=False)
    assert isinstance(laws["data_unit"], str) and laws["data_unit"]  # what D counts
    assert {
        "data_unit",
        "meta",
        "excluded_runs",
        "approach_1",
        "approach_2",
        "approach_3",
        "extrapolation_check",
        "agreement",
        "warnings",
        "compute_model",
        "diagnostics",
        "recommended_approach",
    } <= set(laws)
    assert laws["compute_model"]["kind"] in ("6nd", "interpolated")
    assert laws["recommended_approach"]["approach"] in ("approach_1", "approach_2", "approach_3")
    assert {
        "n_runs",
        "n_runs_used",
        "n_budgets",
        "budgets",
        "bootstrap",
        "confidence_level",
        "target_budgets",
        "source",
    } <= set(laws["meta"])
    for approach in ("approach_1", "approach_2"):
        for key in ("n_opt", "d_opt", "l_opt"):
            check_law(laws[approach][key])
        assert isinstance(laws[approach]["warnings"], list)
    assert isinstance(laws["approach_2"]["excluded_budgets"], list)
    a3 = laws["approach_3"]
    assert {
        "E",
        "A",
        "B",
        "alpha",
        "beta",
        "a",
        "b",
        "G",
        "objective",
        "n_runs",
        "intervals",
        "n_opt",
        "d_opt",
        "warnings",
    } <= set(a3)
    assert set(a3["intervals"]) == {"E", "A", "B", "alpha", "beta", "a", "b", "G"}
    check_law(a3["n_opt"])
    check_law(a3["d_opt"])
    check = laws["extrapolation_check"]
    assert "held_out_budget" in check
    for approach in ("approach_1", "approach_2", "approach_3"):
        assert {
            "predicted_loss",
            "actual_loss",
            "loss_rel_error",
            "predicted_n_opt",
            "actual_n_opt",
            "n_opt_rel_error",
        } <= set(check[approach])
    for entry in laws["agreement"].values():
        assert {"agree", "values", "message"} <= set(entry)


def test_pipeline_on_a_memory_catalog():
    results = synthetic_results(noise=0.01, seed=11).assign(data_unit="examples")
    results.loc[3, ["status", "final_loss", "error_message"]] = ["failed", np.nan, "OOM"]
    results.loc[7, "final_loss"] = np.nan
    out = run_pipeline(results, base_params())
    laws = out["scaling_laws"]
    check_scaling_laws(laws)
    assert laws["data_unit"] == "examples"  # the results' plan field
    assert list(out["optimal_points"].columns) == list(OPTIMAL_POINT_COLUMNS)
    assert list(out["predictions"].columns) == list(PREDICTION_COLUMNS)
    assert list(out["scaling_law_curves"].columns) == list(CURVE_COLUMNS)
    excluded = {e["experiment_id"]: e["reason"] for e in laws["excluded_runs"]}
    assert excluded[results.loc[3, "experiment_id"]] == "status failed: OOM"
    assert excluded[results.loc[7, "experiment_id"]].startswith("no finite positive loss")
    lo, hi = laws["approach_3"]["intervals"]["a"]
    assert lo <= TRUTH_A <= hi
    assert laws["meta"]["n_runs"] == 45 and laws["meta"]["n_runs_used"] == 43
    preds = out["predictions"]
    a1 = preds["approach"] == "approach_1"  # Approach 1 gives no interval
    assert preds.loc[a1, "model_size_lo"].isna().all()
    assert (preds.loc[~a1, "model_size_lo"] <= preds.loc[~a1, "model_size"]).all()
    assert (preds.loc[~a1, "model_size"] <= preds.loc[~a1, "model_size_hi"]).all()


def test_pipeline_node_names_read_as_a_map():
    names = [n.name for n in create_pipeline().nodes]
    assert set(names) == {
        "prepare_analysis_runs",
        "describe_compute_model",
        "tabulate_bootstrap_draws",
        "fit_isoflop_power_laws",
        "fit_parametric_loss_surface",
        "check_extrapolation_to_largest_budget",
        "tabulate_optimal_points",
        "predict_target_budgets",
        "summarise_scaling_laws",
    }


def test_without_bootstrap_intervals_are_null_but_the_schema_holds():
    params = base_params()
    params["bootstrap"]["enabled"] = False
    out = run_pipeline(synthetic_results(noise=0.01), params)
    laws = out["scaling_laws"]
    check_scaling_laws(laws)
    assert laws["data_unit"] == "tokens"  # a table without data_unit counts tokens
    assert laws["approach_3"]["intervals"]["a"] == [None, None]
    assert laws["meta"]["bootstrap"]["draws"] == 0
    assert out["predictions"]["model_size_lo"].isna().all()


def test_resampling_whole_budgets():
    params = base_params()
    params["bootstrap"].update(resample="budgets", draws=200)
    laws = run_pipeline(synthetic_results(noise=0.01), params)["scaling_laws"]
    check_scaling_laws(laws)
    assert laws["meta"]["bootstrap"]["resample"] == "budgets"
    lo, hi = laws["approach_3"]["intervals"]["a"]
    assert lo < hi


@pytest.mark.slow  # ~35 s of kedro run; the fits' recovery of a known surface is tested in tests/fitting
def test_mock_study_recovers_the_synthetic_truth(kedro_run):
    """`kedro run --env mock`: plan, 'train' on the synthetic surface, analyse, report."""
    kedro_run(env="mock", timeout=600)
    laws = json.loads((kedro_run.data_root / "07_model_output" / "scaling_laws.json").read_text())
    check_scaling_laws(laws)
    assert laws["data_unit"] == "tokens"  # the built-in GPT's plan
    lo, hi = laws["approach_3"]["intervals"]["a"]
    assert lo <= TRUTH_A <= hi


@pytest.mark.slow  # ~36 s of kedro run; Epoch's re-fit is checked in-process in tests/fitting
@pytest.mark.skipif(
    not CHINCHILLA_CSV.is_file(),
    reason=f"reference data not found at {CHINCHILLA_CSV.resolve()} (CI places "
    "shared/ beside the clone)",
)
def test_imported_chinchilla_runs(kedro_run):
    """The README's imported-runs command on Epoch AI's digitised Chinchilla runs."""
    kedro_run(
        "--pipelines",
        "analysis,reporting",
        env="imported",
        params={"runs_path": CHINCHILLA_CSV.resolve(), "analysis.drop_highest_loss": 5},
    )
    out = kedro_run.data_root / "07_model_output"
    laws = json.loads((out / "scaling_laws.json").read_text())
    check_scaling_laws(laws)
    assert laws["data_unit"] == "tokens"  # the file has no data_unit column
    a3 = laws["approach_3"]
    assert a3["n_runs"] == 240
    assert a3["E"] == pytest.approx(1.8172, rel=0.01)
    assert a3["alpha"] == pytest.approx(0.3478, rel=0.01)
    assert a3["beta"] == pytest.approx(0.3658, rel=0.01)
    assert laws["meta"]["source"] == str(CHINCHILLA_CSV.resolve())
    runs = pd.read_csv(kedro_run.data_root / "03_primary" / "analysis_runs.csv")
    assert len(runs) == 245 and runs["used_in_fit"].sum() == 240


@pytest.mark.slow  # a real kedro run (~10 s); the message is tested in process (test_table.py)
def test_imported_bad_table_names_column_row_and_file(kedro_run, tmp_path):
    bad = tmp_path / "runs.csv"
    df = synthetic_results(sizes_per_budget=4)[["model_size", "num_tokens", "final_loss"]]
    df = df.astype(object)
    df.loc[6, "num_tokens"] = "lots"
    df.to_csv(bad, index=False)
    proc = kedro_run(
        "--pipelines", "analysis", env="imported", params={"runs_path": bad}, check=False
    )
    assert proc.returncode != 0
    assert (
        f"{bad}: column 'num_tokens' (num_tokens) has non-numeric values at row 7"
        in proc.stderr + proc.stdout
    )


@pytest.mark.slow  # a real kedro run (~10 s); the reading is tested in process (test_prepare.py)
def test_imported_table_with_only_a_budget_column(kedro_run, tmp_path):
    """The CS336 IsoFLOP file's shape: (parameters, compute_budget, final_loss), no C or D."""
    table = synthetic_results(noise=0.005, seed=4)
    path = tmp_path / "isoflops.csv"
    table.rename(columns={"model_size": "parameters"})[
        ["parameters", "compute_budget", "final_loss"]
    ].to_csv(path, index=False)
    kedro_run("--pipelines", "analysis", env="imported",
              params={"runs_path": path, "analysis.bootstrap.draws": 50})
    laws = json.loads((kedro_run.data_root / "07_model_output" / "scaling_laws.json").read_text())
    check_scaling_laws(laws)
    assert any("budget column 'compute_budget'" in n for n in laws["meta"]["notes"])
    assert laws["compute_model"]["kind"] == "6nd"
    assert laws["approach_3"]["n_runs"] == len(table)
    assert laws["approach_3"]["a"] == pytest.approx(TRUTH_A, abs=0.02)
    runs = pd.read_csv(kedro_run.data_root / "03_primary" / "analysis_runs.csv")
    np.testing.assert_allclose(runs["num_tokens"], table["num_tokens"], rtol=1e-12)
