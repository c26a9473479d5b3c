"""One table shape for analysis; bad tables fail with the column, rows and file named."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from flops_fit.fitting.budgets import assign_budgets
from flops_fit.fitting.runs import (
    RunsTableError,
    check_enough_budgets,
    find_outliers,
    normalise_runs,
    select_runs,
)
from flops_fit.fitting.synthetic import synthetic_results

CHINCHILLA_COLUMNS = {"model_size": ["Model Size"], "compute": ["Training FLOP"], "loss": ["loss"]}


def _chinchilla_like():
    return pd.DataFrame(
        {
            "Model Size": [1e8, 2e8, 4e8, 1e8, 2e8, 4e8, 1e8, 2e8, 4e8],
            "Training FLOP": [1e18] * 3 + [1e19] * 3 + [1e20] * 3,
            "loss": [3.1, 3.0, 3.05, 2.8, 2.7, 2.75, 2.5, 2.4, 2.45],
        }
    )


def test_results_table_maps_to_itself():
    df = synthetic_results(budgets=(1e17, 1e18, 1e19), sizes_per_budget=4)
    runs = normalise_runs(df)
    assert runs["model_size"].tolist() == df["model_size"].tolist()
    assert runs["final_loss"].tolist() == df["final_loss"].tolist()
    assert runs["compute"].tolist() == df["planned_flops"].tolist()
    assert "true_loss" in runs.columns  # other columns ride along


def test_tokens_come_from_compute_and_compute_from_tokens():
    runs = normalise_runs(_chinchilla_like(), CHINCHILLA_COLUMNS, "chin.csv")
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
    df = _chinchilla_like().drop(columns=["loss"])
    with pytest.raises(RunsTableError, match=r"chin\.csv: no column for loss.*analysis\.columns"):
        normalise_runs(df, CHINCHILLA_COLUMNS, "chin.csv")


def test_neither_tokens_nor_compute_is_an_error():
    df = _chinchilla_like().drop(columns=["Training FLOP"])
    with pytest.raises(RunsTableError, match="neither a token count D"):
        normalise_runs(df, CHINCHILLA_COLUMNS, "chin.csv")


def test_non_numeric_value_names_column_row_and_file():
    df = _chinchilla_like().astype(object)
    df.loc[4, "Model Size"] = "big"
    with pytest.raises(
        RunsTableError,
        match=r"chin\.csv: column 'Model Size' \(model_size\) has non-numeric "
        r"values at row 5 .*'big'",
    ):
        normalise_runs(df, CHINCHILLA_COLUMNS, "chin.csv")


def test_negative_value_names_column_row_and_file():
    df = _chinchilla_like()
    df.loc[2, "loss"] = -1.0
    with pytest.raises(
        RunsTableError,
        match=r"chin\.csv: column 'loss' \(loss\) must be "
        r"positive; row 3 .* holds -1\.0$",
    ):
        normalise_runs(df, CHINCHILLA_COLUMNS, "chin.csv")


def test_empty_size_is_an_error_but_empty_loss_is_a_left_out_run():
    df = _chinchilla_like()
    df.loc[1, "loss"] = np.nan
    runs = select_runs(assign_budgets(normalise_runs(df, CHINCHILLA_COLUMNS, "c.csv")))
    assert not runs.loc[1, "used_in_fit"] and "no finite positive loss" in runs.loc[1, "reason"]
    df.loc[1, "Model Size"] = np.nan
    with pytest.raises(RunsTableError, match=r"'Model Size' \(model_size\) is empty at row 2"):
        normalise_runs(df, CHINCHILLA_COLUMNS, "c.csv")


def test_fewer_than_three_budgets_is_an_error_naming_the_column_and_file():
    df = _chinchilla_like().iloc[:6]
    runs = select_runs(assign_budgets(normalise_runs(df, CHINCHILLA_COLUMNS, "chin.csv")))
    with pytest.raises(
        RunsTableError,
        match=r"chin\.csv: the usable runs span 2 compute "
        r"budget\(s\).*'Training FLOP'.*at least 3",
    ):
        check_enough_budgets(runs, 3, "chin.csv")


def test_too_few_budgets_says_which_runs_were_left_out_and_why():
    """Every run failed: the error says so instead of only blaming the budgets."""
    df = _chinchilla_like()
    df["status"] = "failed"
    df["error_message"] = "RuntimeError: CUDA out of memory"
    runs = select_runs(assign_budgets(normalise_runs(df, CHINCHILLA_COLUMNS, "chin.csv")))
    with pytest.raises(RunsTableError) as err:
        check_enough_budgets(runs, 3, "chin.csv")
    n = len(df)
    assert "span 0 compute budget(s) (none)" in str(err.value)
    assert f"{n} of {n} runs are left out: {n} status failed " in str(err.value)
    assert "CUDA out of memory" in str(err.value)


def test_unknown_role_and_bad_filter_are_errors():
    with pytest.raises(RunsTableError, match="analysis.columns.size"):
        normalise_runs(_chinchilla_like(), {"size": "Model Size"}, "c.csv")
    with pytest.raises(RunsTableError, match="analysis.filter names column 'condition'"):
        normalise_runs(_chinchilla_like(), CHINCHILLA_COLUMNS, "c.csv", {"condition": "raw"})


def test_filter_keeps_matching_rows():
    df = pd.concat(
        [
            _chinchilla_like().assign(condition="raw_loss"),
            _chinchilla_like().assign(condition="exp_loss"),
        ],
        ignore_index=True,
    )
    runs = normalise_runs(df, CHINCHILLA_COLUMNS, "c.csv", {"condition": "raw_loss"})
    assert len(runs) == 9 and runs["condition"].eq("raw_loss").all()


def test_duplicate_ids_are_an_error():
    df = _chinchilla_like().assign(run=["a"] * 9)
    with pytest.raises(RunsTableError, match="repeats ids"):
        normalise_runs(df, {**CHINCHILLA_COLUMNS, "experiment_id": "run"}, "c.csv")


def test_selection_reasons():
    df = synthetic_results(budgets=(1e17, 1e18, 1e19), sizes_per_budget=8, noise=0.002)
    df.loc[0, "status"] = "failed"
    df.loc[0, "error_message"] = "out of memory"
    df.loc[1, "final_loss"] = np.inf
    df.loc[20, "final_loss"] *= 1.15  # a loss spike, mid-budget at 1e19
    runs = select_runs(assign_budgets(normalise_runs(df)), drop_highest_loss=1)
    reasons = dict(zip(runs["experiment_id"], runs["reason"], strict=True))
    assert reasons[df.loc[0, "experiment_id"]] == "status failed: out of memory"
    assert reasons[df.loc[1, "experiment_id"]].startswith("no finite positive loss")
    # the spike is the highest loss of its budget but not overall: the outlier rule finds it
    highest = runs.loc[runs["reason"].str.startswith("among the 1 highest"), "experiment_id"]
    assert len(highest) == 1
    assert reasons[df.loc[20, "experiment_id"]].startswith("outlier")
    assert runs["used_in_fit"].sum() == len(df) - 4


def test_outlier_rule_leaves_honest_noise_alone():
    """1 % log-normal noise on 7- and 9-size budgets: nothing flagged (calibration of k = 10)."""
    for seed in range(12):
        for sizes in (7, 9):
            df = synthetic_results(noise=0.01, seed=seed, sizes_per_budget=sizes)
            runs = assign_budgets(normalise_runs(df))
            runs["used_in_fit"] = True
            assert find_outliers(runs) == {}, (seed, sizes)


@pytest.mark.parametrize("position", [1, 2, 3, 4, 5, 6])
def test_outlier_rule_finds_an_interior_ten_percent_spike(position):
    df = synthetic_results(budgets=(1e19,), sizes_per_budget=8, noise=0.005, seed=position)
    df.loc[position, "final_loss"] *= 1.10
    runs = assign_budgets(normalise_runs(df))
    runs["used_in_fit"] = True
    assert list(find_outliers(runs)) == [position]
