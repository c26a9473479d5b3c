"""Which runs the fits use, and why the others are left out."""

from __future__ import annotations

import logging

import numpy as np
import pandas as pd
import pytest

from flops_fit.fitting.runs.budgets import assign_budgets
from flops_fit.fitting.runs.prepare import prepare_runs
from flops_fit.fitting.runs.selection import check_enough_budgets, select_runs
from flops_fit.fitting.runs.simulated import synthetic_results
from flops_fit.fitting.runs.table import RunsTableError, normalise_runs
from flops_fit.parameters.analysis import AnalysisConfig
from tests.fitting.tables import CHINCHILLA_COLUMNS, chinchilla_like


def test_empty_size_is_an_error_but_empty_loss_is_a_left_out_run():
    df = chinchilla_like()
    df.loc[1, "loss"] = np.nan
    runs = select_runs(assign_budgets(normalise_runs(df, CHINCHILLA_COLUMNS, "c.csv")))
    assert not runs.loc[1, "used_in_fit"] and "no finite positive loss" in runs.loc[1, "reason"]
    df.loc[1, "Model Size"] = np.nan
    with pytest.raises(RunsTableError, match=r"'Model Size' \(model_size\) is empty at row 2"):
        normalise_runs(df, CHINCHILLA_COLUMNS, "c.csv")


def test_fewer_than_three_budgets_is_an_error_naming_the_column_and_file():
    df = chinchilla_like().iloc[:6]
    runs = select_runs(assign_budgets(normalise_runs(df, CHINCHILLA_COLUMNS, "chin.csv")))
    with pytest.raises(
        RunsTableError,
        match=r"chin\.csv: the usable runs span 2 compute "
        r"budget\(s\).*'Training FLOP'.*at least 3",
    ):
        check_enough_budgets(runs, 3, "chin.csv")


def test_too_few_budgets_says_which_runs_were_left_out_and_why():
    """Every run failed: the error says so instead of only blaming the budgets."""
    df = chinchilla_like()
    df["status"] = "failed"
    df["error_message"] = "RuntimeError: CUDA out of memory"
    runs = select_runs(assign_budgets(normalise_runs(df, CHINCHILLA_COLUMNS, "chin.csv")))
    with pytest.raises(RunsTableError) as err:
        check_enough_budgets(runs, 3, "chin.csv")
    n = len(df)
    assert "span 0 compute budget(s) (none)" in str(err.value)
    assert f"{n} of {n} runs are left out: {n} status failed " in str(err.value)
    assert "CUDA out of memory" in str(err.value)


def test_selection_reasons():
    df = synthetic_results(budgets=(1e17, 1e18, 1e19), sizes_per_budget=8, noise=0.002)
    df.loc[0, "status"] = "failed"
    df.loc[0, "error_message"] = "out of memory"
    df.loc[1, "final_loss"] = np.inf
    df.loc[20, "final_loss"] *= 1.15  # a loss spike, mid-budget at 1e19
    runs = select_runs(assign_budgets(normalise_runs(df)), AnalysisConfig(drop_highest_loss=1))
    reasons = dict(zip(runs["experiment_id"], runs["reason"], strict=True))
    assert reasons[df.loc[0, "experiment_id"]] == "status failed: out of memory"
    assert reasons[df.loc[1, "experiment_id"]].startswith("no finite positive loss")
    # the spike is the highest loss of its budget but not overall: the outlier rule finds it
    highest = runs.loc[runs["reason"].str.startswith("among the 1 highest"), "experiment_id"]
    assert len(highest) == 1
    assert reasons[df.loc[20, "experiment_id"]].startswith("outlier")
    assert runs["used_in_fit"].sum() == len(df) - 4


def test_nan_zero_and_negative_losses_are_left_out_with_one_warning_naming_them(caplog):
    """The analysis end of the loss rule (schema.loss_problem); training applies the same one."""
    df = chinchilla_like()
    df.loc[[1, 4, 7], "loss"] = [np.nan, 0.0, -1.0]
    cfg = AnalysisConfig(columns=CHINCHILLA_COLUMNS)
    with caplog.at_level(logging.INFO):
        runs, summary = prepare_runs(df, cfg, source="chin.csv")
    assert summary["n_runs_used"] == 6
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1
    message = warnings[0].getMessage()
    assert message.startswith("chin.csv: 3 of 9 runs left out, their final_loss is not a "
                              "positive finite number: ")
    assert "run-0002 (NaN), run-0005 (0), run-0008 (-1)" in message
    assert runs.loc[7, "reason"] == (
        "no finite positive loss (final_loss -1.0 is not a positive finite number)"
    )
    # a failed run is left out for its status, not counted again for its loss
    df["status"] = "completed"
    df.loc[1, "status"] = "failed"
    caplog.clear()
    with caplog.at_level(logging.WARNING):
        select_runs(assign_budgets(normalise_runs(df, {**CHINCHILLA_COLUMNS,
                                                        "status": ["status"]}, "c.csv")))
    assert "2 of 9 runs left out" in caplog.records[0].getMessage()


def test_the_bad_loss_warning_names_the_tables_own_ids(caplog):
    """An imported table with a `run_id` column (conf/imported's mapping): the WARNING names
    its ids, not row numbers."""
    import yaml

    from tests.conftest import PROJECT_ROOT

    conf = PROJECT_ROOT / "conf" / "imported" / "parameters_analysis.yml"
    columns = yaml.safe_load(conf.read_text())["analysis"]["columns"]
    df = chinchilla_like().rename(columns={"loss": "val_loss"})
    df.insert(0, "run_id", [f"r{i + 1}" for i in range(len(df))])
    df.loc[[2, 4], "val_loss"] = [np.nan, -1.0]
    with caplog.at_level(logging.WARNING):
        prepare_runs(df, AnalysisConfig(columns=columns), source="runs.csv")
    (warning,) = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert warning == ("runs.csv: 2 of 9 runs left out, their final_loss is not a positive "
                       "finite number: r3 (NaN), r5 (-1)")


@pytest.mark.slow  # a real kedro run (~11 s); the same rule and message are tested in process above
def test_imported_csv_with_bad_losses_fits_with_a_warning_naming_them(kedro_run, tmp_path):
    """Through a real `kedro run --env imported`: the 3 bad rows are left out, the rest fit."""
    import json

    path = tmp_path / "runs.csv"
    df = synthetic_results(sizes_per_budget=8)[["model_size", "num_tokens", "final_loss"]]
    df.loc[[2, 9, 16], "final_loss"] = [np.nan, 0.0, -1.0]
    df.to_csv(path, index=False)
    proc = kedro_run("--pipelines", "analysis", env="imported",
                     params={"runs_path": path, "analysis.bootstrap.draws": 50}, timeout=300)
    output = " ".join((proc.stdout + proc.stderr).split())  # rich wraps long lines
    assert (f"{path}: 3 of {len(df)} runs left out, their final_loss is not a positive finite "
            "number: run-0003 (NaN), run-0010 (0), run-0017 (-1)") in output
    assert "WARNING" in output
    laws = json.loads((kedro_run.data_root / "07_model_output/scaling_laws.json").read_text())
    assert laws["meta"]["n_runs_used"] == len(df) - 3
    assert laws["approach_3"]["alpha"] is not None
    runs = pd.read_csv(kedro_run.data_root / "03_primary/analysis_runs.csv")
    assert set(runs.loc[~runs["used_in_fit"], "experiment_id"]) == {
        "run-0003", "run-0010", "run-0017"}
