from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from flops_fit.execution import collect_records, prepare_training, results_table, run_results_table
from flops_fit.schema import PLAN_FIELDS, REPLICA_AGGREGATE_FIELDS, RESULT_FIELDS

SYNTH = {"backend": "synthetic", "executor": "sequential", "show_progress": False}


def test_one_row_per_experiment_with_replicas_aggregated(plan):
    stored = prepare_training(plan, {}, {**SYNTH, "seeds": 3}).records()
    eid = plan[0]["experiment_id"]
    stored[f"{eid}-r1"] = {
        **stored[f"{eid}-r1"],
        "status": "failed",
        "final_loss": None,
        "error_message": "boom",
    }
    records, problems = collect_records(stored, plan, seeds=3, backend="synthetic")
    assert not problems and len(records) == 3 * len(plan)
    runs = run_results_table(records)
    assert len(runs) == 3 * len(plan) and list(runs["replica"][:3]) == [0, 1, 2]
    results = results_table(records, set(plan[0]))
    assert list(results["experiment_id"]) == [r["experiment_id"] for r in plan]
    assert list(results.columns[: len(PLAN_FIELDS)]) == list(PLAN_FIELDS)
    assert set(RESULT_FIELDS) | set(REPLICA_AGGREGATE_FIELDS) <= set(results.columns)
    assert "replica" not in results.columns and "attempts" not in results.columns
    row = results.iloc[0]
    ok = [stored[eid]["final_loss"], stored[f"{eid}-r2"]["final_loss"]]
    assert row["final_loss"] == pytest.approx(np.mean(ok))
    assert row["final_loss_std"] == pytest.approx(np.std(ok, ddof=1))
    assert (row["num_replicas"], row["num_replicas_completed"]) == (3, 2)
    assert row["status"] == "completed" and "replica 1: boom" in row["error_message"]
    assert row["true_loss"] == pytest.approx(stored[eid]["true_loss"])
    assert row["model_size"] == plan[0]["model_size"]  # plan fields are not averaged
    other = results.iloc[1]
    assert other["num_replicas_completed"] == 3 and pd.isna(other["error_message"])


def test_single_replica_has_no_std_and_failed_rows_are_kept(plan):
    params = {**SYNTH, "max_retries": 0, "synthetic": {"failure_fraction": 0.5}}
    stored = prepare_training(plan, {}, params).records()
    records, _ = collect_records(stored, plan, seeds=1)
    results = results_table(records)
    assert len(results) == len(plan)
    assert results["final_loss_std"].isna().all()
    failed = results[results["status"] == "failed"]
    assert len(failed) and failed["final_loss"].isna().all()
    assert (failed["num_replicas_completed"] == 0).all()


def test_only_the_current_plan_and_backend_are_tabulated(plan):
    stored = prepare_training(plan, {}, {**SYNTH, "seeds": 2}).records()
    stored["C9e99-unplanned"] = next(iter(stored.values()))
    stored[plan[1]["experiment_id"]] = {**stored[plan[1]["experiment_id"]], "backend": "torch"}
    stored[plan[2]["experiment_id"]] = lambda: (_ for _ in ()).throw(ValueError("bad json"))
    records, problems = collect_records(stored, plan[:4], seeds=1, backend="synthetic")
    assert [r["experiment_id"] for r in records] == [
        plan[0]["experiment_id"],
        plan[3]["experiment_id"],
    ]
    assert {k for k, _ in problems} == {plan[1]["experiment_id"], plan[2]["experiment_id"]}


def test_empty_results_have_the_columns(plan):
    results = results_table([])
    assert len(results) == 0 and "final_loss" in results.columns
    assert "num_replicas" in results.columns
