"""The analysis runs table: made once from results, typed again after its CSV round trip."""

from __future__ import annotations

import logging

import numpy as np
import pandas as pd
import pytest
from pandas.api.types import is_bool_dtype, is_float_dtype

from flops_fit.fitting.runs.prepare import FLOAT_COLUMNS, coerce_runs, prepare_runs
from flops_fit.fitting.runs.simulated import synthetic_results
from flops_fit.fitting.runs.table import RunsTableError
from flops_fit.parameters.analysis import AnalysisConfig


def _runs():
    results = synthetic_results(budgets=(1e17, 1e18, 1e19), sizes_per_budget=5, noise=0.01)
    results.loc[2, ["status", "error_message"]] = ["failed", "OOM"]
    results.loc[4, "final_loss"] = np.nan
    return prepare_runs(results, AnalysisConfig(source="synthetic"))


def test_prepare_runs_summary_and_reasons():
    runs, summary = _runs()
    assert summary == {
        "source": "synthetic",
        "columns_used": {
            "experiment_id": "experiment_id",
            "model_size": "model_size",
            "num_tokens": "num_tokens",
            "compute": "planned_flops",
            "compute_budget": "compute_budget",
            "loss": "final_loss",
            "status": "status",
            "error_message": "error_message",
        },
        "notes": [],  # C and D both given: nothing read from a budget column
        "n_runs": 15,
        "n_runs_used": 13,
        "data_unit": "tokens",  # the table has no data_unit column
    }
    assert runs.loc[2, "reason"] == "status failed: OOM"
    assert runs["budget_id"].tolist() == [0] * 5 + [1] * 5 + [2] * 5


def test_the_unit_of_d_rides_along_and_survives_the_csv_round_trip(tmp_path):
    results = synthetic_results(budgets=(1e17, 1e18, 1e19), sizes_per_budget=5)
    runs, summary = prepare_runs(results.assign(data_unit="examples"), AnalysisConfig())
    assert summary["data_unit"] == "examples"
    assert runs["data_unit"].eq("examples").all()
    path = tmp_path / "analysis_runs.csv"
    runs.to_csv(path, index=False)
    assert coerce_runs(pd.read_csv(path))["data_unit"].eq("examples").all()


def test_csv_round_trip_is_undone(tmp_path):
    runs, _ = _runs()
    path = tmp_path / "analysis_runs.csv"
    runs.to_csv(path, index=False)
    back = coerce_runs(pd.read_csv(path))
    for col in FLOAT_COLUMNS:
        assert is_float_dtype(back[col]), col
    assert is_bool_dtype(back["used_in_fit"]) and str(back["budget_id"].dtype) == "Int64"
    assert back["reason"].tolist() == runs["reason"].tolist()  # "" stays "", not NaN
    assert back["experiment_id"].tolist() == runs["experiment_id"].tolist()
    pd.testing.assert_frame_equal(
        back[list(FLOAT_COLUMNS)], runs[list(FLOAT_COLUMNS)], check_exact=True
    )


def test_text_flags_are_read_as_booleans():
    table = pd.DataFrame(
        {
            "experiment_id": [1, 2],
            "budget_id": ["0", None],
            "used_in_fit": ["True", "false"],
            "reason": [np.nan, "no compute budget"],
        }
    )
    out = coerce_runs(table)
    assert out["used_in_fit"].tolist() == [True, False]
    assert out["reason"].tolist() == ["", "no compute budget"]
    assert out["experiment_id"].tolist() == ["1", "2"]
    assert out["budget_id"].isna().tolist() == [False, True]


def test_a_table_with_only_a_budget_column_reads_the_budget_as_c():
    table = synthetic_results(budgets=(1e17, 1e18, 1e19), sizes_per_budget=5)
    shaped = table.rename(columns={"model_size": "parameters", "compute_budget": "budget"})[
        ["parameters", "budget", "final_loss"]
    ]
    cfg = AnalysisConfig.from_params({"columns": {"model_size": "parameters"}})
    runs, summary = prepare_runs(shaped, cfg)
    assert summary["notes"] == [
        "the table gives neither D nor C: each run's compute C is its budget column 'budget' "
        "(an IsoFLOP run spends its budget) and D = C / (6 N)"
    ]
    np.testing.assert_allclose(runs["compute"], table["compute_budget"], rtol=0)
    np.testing.assert_allclose(runs["num_tokens"], table["num_tokens"], rtol=1e-12)
    assert runs["budget_id"].tolist() == [0] * 5 + [1] * 5 + [2] * 5


def test_one_model_size_or_one_loss_for_every_run_is_an_error_naming_the_column():
    cfg = AnalysisConfig.from_params({})
    table = synthetic_results(seed=1)
    one_size = table.assign(model_size=1e8)
    with pytest.raises(RunsTableError, match=r"every usable run has the same model size "
                       r"\(1e\+08, column 'model_size'\): nothing says how the loss moves"):
        prepare_runs(one_size, cfg)
    one_loss = table.assign(final_loss=2.5)
    with pytest.raises(RunsTableError, match=r"every usable run has the same loss \(2\.5, "
                       r"column 'final_loss'\): nothing moves with N or D"):
        prepare_runs(one_loss, cfg)
    # the runs left out do not count: one size among the runs that are used is still one
    mixed = one_size.copy()
    mixed.loc[0, ["model_size", "status"]] = [2e8, "failed"]
    with pytest.raises(RunsTableError, match="the same model size"):
        prepare_runs(mixed, cfg)


def test_a_run_written_twice_is_one_warning_and_counted_once(caplog):
    results = synthetic_results(budgets=(1e17, 1e18, 1e19), sizes_per_budget=5).drop(
        columns="experiment_id")
    twice = pd.concat([results, results.iloc[[6]]], ignore_index=True)
    with caplog.at_level(logging.WARNING, logger="flops_fit.fitting.runs.prepare"):
        runs, summary = prepare_runs(twice, AnalysisConfig(), source="pasted.csv")
    [record] = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert "pasted.csv: 1 row(s) repeat an earlier row" in record.getMessage()
    assert "row 16 = row 7 (budget 1e+18" in record.getMessage()
    assert summary["n_runs"] == 15
    assert summary["notes"] == [record.getMessage().removeprefix("pasted.csv: ")]
    once, _ = prepare_runs(results, AnalysisConfig(), source="pasted.csv")
    pd.testing.assert_frame_equal(runs, once)
