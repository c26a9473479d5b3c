"""One table shape for analysis; bad tables fail with the column, rows and file named."""

from __future__ import annotations

import re

import numpy as np
import pandas as pd
import pytest

from flops_fit.fitting.runs.simulated import synthetic_results
from flops_fit.fitting.runs.table import (
    RunsTableError,
    default_columns,
    normalise_runs,
    run_data_unit,
    run_label,
    run_loss_unit,
)
from flops_fit.parameters.analysis import AnalysisConfig
from tests.fitting.tables import CHINCHILLA_COLUMNS, chinchilla_like


def test_results_table_maps_to_itself():
    df = synthetic_results(budgets=(1e17, 1e18, 1e19), sizes_per_budget=4)
    runs = normalise_runs(df)
    assert runs["model_size"].tolist() == df["model_size"].tolist()
    assert runs["final_loss"].tolist() == df["final_loss"].tolist()
    assert runs["compute"].tolist() == df["planned_flops"].tolist()
    assert "true_loss" in runs.columns  # other columns ride along


def test_tokens_come_from_compute_and_compute_from_tokens():
    runs = normalise_runs(chinchilla_like(), CHINCHILLA_COLUMNS, "chin.csv")
    np.testing.assert_allclose(runs["num_tokens"], runs["compute"] / (6 * runs["model_size"]))
    df = pd.DataFrame({"N": [1e8, 2e8], "D": [1e9, 3e9], "L": [3.0, 2.9]})
    runs = normalise_runs(df, {"model_size": "N", "num_tokens": "D", "loss": "L"}, "x.csv")
    np.testing.assert_allclose(runs["compute"], 6 * runs["model_size"] * runs["num_tokens"])
    assert runs["experiment_id"].tolist() == ["run-0001", "run-0002"]
    assert runs["status"].eq("completed").all()


def test_json_list_of_runs():
    records = [
        {"params": 1e8, "tokens": 1e9, "loss": 3.0},
        {"params": 2e8, "tokens": 2e9, "loss": 2.9},
    ]
    runs = normalise_runs(
        records, {"model_size": ["params"], "num_tokens": ["tokens"], "loss": ["loss"]}, "runs.json"
    )
    assert len(runs) == 2 and runs.attrs["source"] == "runs.json"


def test_missing_column_error_names_role_and_file():
    df = chinchilla_like().drop(columns=["loss"])
    with pytest.raises(RunsTableError, match=r"chin\.csv: no column for loss.*analysis\.columns"):
        normalise_runs(df, CHINCHILLA_COLUMNS, "chin.csv")


def test_neither_tokens_nor_compute_is_an_error():
    df = chinchilla_like().drop(columns=["Training FLOP"])
    with pytest.raises(RunsTableError, match="neither a token count D"):
        normalise_runs(df, CHINCHILLA_COLUMNS, "chin.csv")


def test_non_numeric_value_names_column_row_and_file():
    df = chinchilla_like().astype(object)
    df.loc[4, "Model Size"] = "big"
    with pytest.raises(
        RunsTableError,
        match=r"chin\.csv: column 'Model Size' \(model_size\) has non-numeric "
        r"values at row 5 .*'big'",
    ):
        normalise_runs(df, CHINCHILLA_COLUMNS, "chin.csv")


def test_negative_value_names_column_row_and_file():
    df = chinchilla_like()
    df.loc[2, "Model Size"] = -1.0
    with pytest.raises(
        RunsTableError,
        match=r"chin\.csv: column 'Model Size' \(model_size\) must be "
        r"positive and finite; row 3 .* holds -1\.0$",
    ):
        normalise_runs(df, CHINCHILLA_COLUMNS, "chin.csv")


@pytest.mark.parametrize("column", ["Model Size", "Training FLOP"])
def test_an_infinite_size_or_compute_names_column_and_row(column):
    df = chinchilla_like()
    df.loc[3, column] = np.inf
    with pytest.raises(RunsTableError, match=rf"column '{column}' .* must be positive and "
                       r"finite; row 4 .* holds inf$"):
        normalise_runs(df, CHINCHILLA_COLUMNS, "chin.csv")


def test_true_false_values_are_not_numbers():
    df = chinchilla_like()
    df["Model Size"] = True
    with pytest.raises(RunsTableError, match=r"'Model Size' \(model_size\) holds true/false "
                       r"values, not numbers, at rows 1, 2, 3"):
        normalise_runs(df, CHINCHILLA_COLUMNS, "chin.csv")


def test_a_column_name_twice_is_an_error_naming_it():
    df = chinchilla_like()
    df = pd.concat([df, df[["loss"]]], axis=1)
    with pytest.raises(RunsTableError, match=r"the table has 2 columns named 'loss' \(loss\)"):
        normalise_runs(df, CHINCHILLA_COLUMNS, "chin.csv")


def test_a_bad_loss_is_kept_for_selection_not_an_error():
    """NaN, 0 and -1 losses are left-out runs (fitting.runs.selection), not a broken table."""
    df = chinchilla_like()
    df.loc[[1, 4, 7], "loss"] = [np.nan, 0.0, -1.0]
    runs = normalise_runs(df, CHINCHILLA_COLUMNS, "chin.csv")
    assert runs["final_loss"].isna().sum() == 1
    assert list(runs.loc[[4, 7], "final_loss"]) == [0.0, -1.0]


def test_unknown_role_and_bad_filter_are_errors():
    with pytest.raises(RunsTableError, match="analysis.columns.size"):
        normalise_runs(chinchilla_like(), {"size": "Model Size"}, "c.csv")
    with pytest.raises(RunsTableError, match="analysis.filter names column 'condition'"):
        normalise_runs(chinchilla_like(), CHINCHILLA_COLUMNS, "c.csv", {"condition": "raw"})


def test_filter_keeps_matching_rows():
    df = pd.concat(
        [
            chinchilla_like().assign(condition="raw_loss"),
            chinchilla_like().assign(condition="exp_loss"),
        ],
        ignore_index=True,
    )
    runs = normalise_runs(df, CHINCHILLA_COLUMNS, "c.csv", {"condition": "raw_loss"})
    assert len(runs) == 9 and runs["condition"].eq("raw_loss").all()


def test_duplicate_ids_are_an_error():
    df = chinchilla_like().assign(run=["a"] * 9)
    with pytest.raises(RunsTableError, match="repeats ids"):
        normalise_runs(df, {**CHINCHILLA_COLUMNS, "experiment_id": "run"}, "c.csv")



def test_roles_left_out_or_null_use_the_configured_defaults():
    """One home for the default column names: the analysis parameters (conf/base)."""
    defaults = AnalysisConfig().columns
    assert default_columns()["compute"] == list(defaults["compute"])
    assert default_columns()["loss"] == [defaults["loss"]]
    df = synthetic_results(budgets=(1e17,), sizes_per_budget=3)
    runs = normalise_runs(df, {"loss": None, "compute": None})
    assert runs.attrs["columns_used"]["loss"] == "final_loss"
    assert runs.attrs["columns_used"]["compute"] == "planned_flops"


def test_the_unit_of_d_is_the_data_unit_column_or_tokens():
    df = synthetic_results(budgets=(1e17, 1e18, 1e19), sizes_per_budget=4)
    assert run_data_unit(normalise_runs(df)) == "tokens"  # no column: a table from elsewhere
    runs = normalise_runs(df.assign(data_unit=" Examples"))
    assert runs["data_unit"].eq(" Examples").all()  # the column rides along as it is
    assert run_data_unit(runs) == "examples"
    blank = df.assign(data_unit=["examples", None, "", "examples"] * 3)
    assert run_data_unit(normalise_runs(blank)) == "examples"  # empty cells do not count
    assert run_data_unit(df.assign(data_unit=np.nan)) == "tokens"


def test_the_loss_unit_is_the_loss_unit_column_or_loss():
    df = synthetic_results(budgets=(1e17, 1e18, 1e19), sizes_per_budget=4)
    assert run_loss_unit(normalise_runs(df)) == "loss"  # no column: the loss claims no unit
    assert run_loss_unit(normalise_runs(df.assign(loss_unit=" mse "))) == "mse"
    blank = df.assign(loss_unit=["nats", None, "", "nats"] * 3)
    assert run_loss_unit(normalise_runs(blank)) == "nats"  # empty cells do not count
    with pytest.raises(RunsTableError, match="runs.csv: column 'loss_unit' .* more than one "
                                             "unit: 'mse' at rows 1, 3"):
        normalise_runs(df.assign(loss_unit=["mse", "nats"] * 6), source="runs.csv")


def test_two_units_of_d_in_one_table_name_the_column_and_rows():
    df = synthetic_results(budgets=(1e17, 1e18, 1e19), sizes_per_budget=4)
    mixed = df.assign(data_unit=["tokens"] * 10 + ["examples"] * 2)
    with pytest.raises(RunsTableError) as err:
        normalise_runs(mixed, source="runs.csv")
    message = str(err.value)
    assert message.startswith("runs.csv: column 'data_unit' (what D counts) holds more than one")
    assert "'examples' at rows 11, 12" in message
    assert "'tokens' at rows 1, 2, 3, 4, 5 and 5 more" in message
    assert "analysis.filter.data_unit=examples" in message
    # the filter the message suggests keeps one unit
    runs = normalise_runs(mixed, source="runs.csv", filters={"data_unit": "tokens"})
    assert len(runs) == 10 and run_data_unit(runs) == "tokens"


def test_an_empty_list_of_runs_says_so():
    for empty in ({"runs": []}, [], pd.DataFrame()):
        with pytest.raises(RunsTableError, match=r"^runs\.json: the table has no runs$"):
            normalise_runs(empty, None, "runs.json")


def test_a_row_written_twice_is_counted_once_and_said_so():
    """A run pasted twice into a table without ids is one run, named by its rows; replicates
    (same size and budget, another loss) stay two runs."""
    df = pd.concat([chinchilla_like(), chinchilla_like().iloc[[3]]], ignore_index=True)
    df.loc[len(df)] = {"Model Size": 2e8, "Training FLOP": 1e19, "loss": 2.71}  # a second seed
    runs = normalise_runs(df, CHINCHILLA_COLUMNS, "chin.csv")
    assert len(runs) == 10
    assert (runs["model_size"] == 1e8).sum() == 3 and (runs["model_size"] == 2e8).sum() == 4
    assert runs["experiment_id"].tolist()[-1] == "run-0011"  # ids still count the file's rows
    [warning] = runs.attrs["warnings"]
    assert re.search(r"1 row\(s\) repeat an earlier row in every column.*counted once \(row 10 = "
                     r"row 4 \(budget 1e\+19, N 1e\+08, loss 2\.8\) \(data rows counted", warning)
    assert normalise_runs(chinchilla_like(), CHINCHILLA_COLUMNS, "c.csv").attrs["warnings"] == []


def test_a_row_written_twice_with_its_id_is_counted_once_too():
    """The same rule with ids: an exact copy is counted once; one id on two different rows is
    the error of test_duplicate_ids_are_an_error."""
    df = chinchilla_like().assign(run=[f"r{i}" for i in range(9)])
    df = pd.concat([df, df.iloc[[0, 0]]], ignore_index=True)
    runs = normalise_runs(df, {**CHINCHILLA_COLUMNS, "experiment_id": "run"}, "c.csv")
    assert runs["experiment_id"].tolist() == [f"r{i}" for i in range(9)]
    assert "2 row(s) repeat" in runs.attrs["warnings"][0]
    assert "row 10 = row 1" in runs.attrs["warnings"][0]
    df.loc[10, "loss"] = 3.2
    with pytest.raises(RunsTableError, match=r"repeats ids at rows 1, 11 .*differ"):
        normalise_runs(df, {**CHINCHILLA_COLUMNS, "experiment_id": "run"}, "c.csv")


def test_empty_ids_are_named_by_their_row():
    """An empty id column (or cell) is no id, not one id repeated."""
    df = chinchilla_like().assign(experiment_id=np.nan)
    runs = normalise_runs(df, CHINCHILLA_COLUMNS, "c.csv")
    assert runs["experiment_id"].tolist() == [f"run-{i:04d}" for i in range(1, 10)]
    df["experiment_id"] = ["a", "", "b", " ", "c", None, "d", "e", "f"]
    runs = normalise_runs(df, CHINCHILLA_COLUMNS, "c.csv")
    assert runs["experiment_id"].tolist()[:6] == ["a", "run-0002", "b", "run-0004", "c",
                                                  "run-0006"]
    assert runs.attrs["rows"] == {"run-0002": "row 2", "run-0004": "row 4", "run-0006": "row 6"}
    assert run_label(runs, 3) == "row 4 (budget 1e+19, N 1e+08)"
    assert run_label(runs, 2) == "b (budget 1e+18, N 4e+08)"


def test_rows_are_the_file_rows_after_a_filter():
    df = pd.concat([chinchilla_like().assign(condition="exp_loss"),
                    chinchilla_like().assign(condition="raw_loss")], ignore_index=True)
    df = pd.concat([df, df.iloc[[9]]], ignore_index=True)
    runs = normalise_runs(df, CHINCHILLA_COLUMNS, "c.csv", {"condition": "raw_loss"})
    assert len(runs) == 9 and "row 19 = row 10" in runs.attrs["warnings"][0]
    assert runs.attrs["rows"]["run-0001"] == "row 10"
