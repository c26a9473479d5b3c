"""Reading the analysis outputs defensively: the names come from the schema, missing columns and
stray types become NaN / None, and the budget grouping is analysis's own."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from flops_fit import schema
from flops_fit.fitting.runs.budgets import assign_budgets
from flops_fit.reporting import inputs as inp
from tests.reporting import synthetic_study as truth


def test_names_come_from_the_schema():
    assert inp.LAW_KEYS == tuple(schema.LAW_COLUMNS) == ("n_opt", "d_opt", "l_opt")
    for table in (inp.APPROACH_NAMES, inp.APPROACH_METHODS, inp.APPROACH_COLOURS):
        assert tuple(table) == schema.APPROACHES  # display names, methods and colours for each
    assert set(schema.OPTIMAL_POINT_COLUMNS) <= set(inp.optimal_frame(None).columns)
    assert set(schema.CURVE_COLUMNS) <= set(inp.curves_frame(None).columns)
    assert set(schema.PREDICTION_COLUMNS) <= set(inp.predictions_frame(None).columns)


def test_runs_frame_marks_completed_runs_and_keeps_analysis_budgets(study):
    runs = inp.runs_frame(study["analysis_runs"])
    assert len(runs) == len(study["analysis_runs"])
    assert runs["completed"].sum() == len(runs) - len(truth.FAILED_IDS)
    assert not runs.loc[runs.experiment_id.isin(truth.FAILED_IDS), "completed"].any()
    assert np.allclose(runs["budget"], study["analysis_runs"]["budget"])


def test_runs_frame_groups_a_results_table_with_analysis_grouping(study):
    results = study["results"]
    results["status"] = results["status"].str.upper()
    runs = inp.runs_frame(results)
    assert set(runs["status"]) == {"completed", "failed"}  # statuses are read case-blind
    expected = assign_budgets(study["results"])["budget"]
    assert np.allclose(runs["budget"], expected)
    assert runs["budget"].nunique() == len(truth.BUDGETS)


@pytest.mark.parametrize("table", [None, pd.DataFrame(), []])
def test_runs_frame_of_nothing_is_empty_with_every_column(table):
    runs = inp.runs_frame(table)
    assert runs.empty
    assert {"experiment_id", "model_size", "final_loss", "status", "completed",
            "budget"} <= set(runs.columns)


def test_runs_frame_coerces_stray_values():
    runs = inp.runs_frame(pd.DataFrame({
        "experiment_id": ["a", None], "compute_budget": ["1e18", "junk"],
        "model_size": [1e6, 2e6], "num_tokens": [1.6e11, None], "final_loss": ["3.1", None],
        "status": ["completed", np.nan],
    }))
    assert runs["experiment_id"].tolist() == ["a", ""]
    assert runs["status"].tolist() == ["completed", ""]
    assert runs["final_loss"].iloc[0] == 3.1 and runs["completed"].tolist() == [True, False]
    assert np.isnan(runs["compute_budget"].iloc[1])


def test_optimal_frame_reads_flags_and_derives_tokens_per_param():
    optima = inp.optimal_frame(pd.DataFrame({
        "approach": ["approach_1"] * 4, "compute_budget": [1e18] * 4,
        "model_size": [1e6] * 4, "num_tokens": [2e7] * 4, "loss": [3.0] * 4,
        "used_in_fit": [True, "false", "1", None],
    }))
    assert optima["used_in_fit"].tolist() == [True, False, True, False]
    assert optima["tokens_per_param"].tolist() == [20.0] * 4
    assert optima["reason"].tolist() == [""] * 4


def test_optimal_frame_of_a_header_only_csv_has_boolean_flags(study, tmp_path):
    path = tmp_path / "optimal_points.csv"
    study["optimal_points"].head(0).to_csv(path, index=False)
    optima = inp.optimal_frame(pd.read_csv(path))
    assert optima.empty and optima["used_in_fit"].dtype == bool


def test_curves_and_predictions_are_sorted(study):
    curves = inp.curves_frame(study["scaling_law_curves"].iloc[::-1])
    assert curves["approach"].is_monotonic_increasing
    for _, group in curves.groupby("approach"):
        assert group["compute_budget"].is_monotonic_increasing
    preds = inp.predictions_frame(study["predictions"].iloc[::-1])
    assert preds["compute_budget"].is_monotonic_increasing


def test_law_returns_a_fitted_power_law_or_none(study):
    laws = study["scaling_laws"]
    fitted = inp.law(laws, "approach_2", "n_opt")
    raw = laws["approach_2"]["n_opt"]
    assert fitted["exponent"] == raw["exponent"]
    assert fitted["exponent_interval"] == raw["interval"]["exponent"]
    assert inp.evaluate_law(fitted, 1e20) == pytest.approx(
        raw["coefficient"] * 1e20 ** raw["exponent"])
    for bad in (None, "junk", {"coefficient": "nan", "exponent": 0.5},
                {"coefficient": -1.0, "exponent": 0.5}, {"coefficient": 1.0}):
        assert inp.law({"approach_1": {"n_opt": bad}}, "approach_1", "n_opt") is None
    assert inp.law({}, "approach_1", "n_opt") is None


def test_is_fitted_needs_both_allocation_laws(study):
    laws = study["scaling_laws"]
    assert all(inp.is_fitted(laws, a) for a in schema.APPROACHES)
    laws["approach_1"]["d_opt"] = None
    assert not inp.is_fitted(laws, "approach_1")


def test_surface_needs_every_fitted_parameter(study):
    laws = study["scaling_laws"]
    assert inp.surface(laws)["alpha"] == truth.TRUE["alpha"]
    laws["approach_3"]["beta"] = None
    assert inp.surface(laws) is None
    assert inp.surface({}) is None


def test_excluded_runs_merge_scaling_laws_and_the_run_table(study):
    laws = study["scaling_laws"]
    assert inp.excluded_runs(laws) == {truth.OUTLIER_ID: "loss 1.6x the IsoFLOP parabola "
                                                         "(outlier)"}
    laws["excluded_runs"] = [{"experiment_id": "ghost", "reason": None}, "junk"]
    runs = inp.runs_frame(study["analysis_runs"])
    excluded = inp.excluded_runs(laws, runs)
    assert excluded["ghost"] == "no reason given"
    assert excluded[truth.OUTLIER_ID] == "loss 1.6x the IsoFLOP parabola (outlier)"
    assert not set(truth.FAILED_IDS) & set(excluded)  # failed runs are not "excluded"


def test_meta_sections_and_warnings(study):
    laws = study["scaling_laws"]
    assert inp.held_out_budget(laws) == truth.HELD_OUT
    assert inp.target_budgets(laws) == truth.TARGETS
    assert inp.approach_warnings(laws, "approach_1")[0].startswith("Approach 1 picks")
    assert inp.section(laws, "nothing") == {} and inp.laws_dict("junk") == {}
    assert inp.held_out_budget({}) is None and inp.target_budgets({}) == []


def test_interval_pair_and_row_quantities():
    assert inp.interval_pair([1, "2"]) == [1.0, 2.0]
    for bad in (None, [1.0], [1.0, None], (np.nan, 1.0), "ab"):
        assert inp.interval_pair(bad) is None
    row = pd.Series({"model_size": 1e9, "model_size_lo": 8e8, "model_size_hi": 1.2e9,
                     "num_tokens": 2e10, "num_tokens_lo": np.nan, "num_tokens_hi": 3e10})
    out = inp.row_quantities(row, ("model_size", "num_tokens", "tokens_per_param"))
    assert out["model_size_interval"] == [8e8, 1.2e9]
    assert out["num_tokens_interval"] is None
    assert out["tokens_per_param"] == 20.0 and out["tokens_per_param_interval"] is None


def test_the_unit_of_d_comes_from_scaling_laws_then_the_runs_then_tokens():
    runs = pd.DataFrame({"data_unit": ["examples", None, "examples"]})
    assert inp.data_unit({"data_unit": "examples"}).plural == "examples"
    assert inp.data_unit({"data_unit": "images"}, runs).plural == "images"  # the laws win
    assert inp.data_unit({}, runs).plural == "examples"  # scaling_laws from before units
    assert inp.data_unit({}).plural == "tokens"
    assert inp.data_unit({"data_unit": None}, pd.DataFrame({"x": [1]})).plural == "tokens"
    # a table that mixes units is analysis's error; reporting falls back to tokens
    mixed = pd.DataFrame({"data_unit": ["examples", "tokens"]})
    assert inp.data_unit({}, mixed).plural == "tokens"
