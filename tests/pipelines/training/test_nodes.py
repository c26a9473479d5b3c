from __future__ import annotations

import pandas as pd
import pytest

from flops_fit.execution import RunStream
from flops_fit.pipelines.training.nodes import tabulate_results, train_pending_runs
from flops_fit.schema import SchemaError
from tests.execution.helpers import small_plan

CORPUS = {"tokenizer": "bytes", "heldout_fraction": 0.02, "block_size": 4096}
SYNTH = {"backend": "synthetic", "executor": "sequential", "show_progress": False}


def test_train_pending_runs_returns_a_lazy_stream_of_the_pending_runs():
    plan = small_plan()
    check, stream = train_pending_runs(plan, {}, "", SYNTH, {}, CORPUS)
    assert isinstance(stream, RunStream)
    assert list(stream) == [r["experiment_id"] for r in plan]
    assert check["completed_runs"] == 0 and not check["reused"]
    records = stream.records()
    check, again = train_pending_runs(plan, records, "", SYNTH, {}, CORPUS)
    assert len(again) == 0
    assert check == {"on_changed_settings": "error", "completed_runs": len(plan),
                     "changed_runs": [], "differences": [], "reused": False}


def test_reused_runs_are_listed_with_their_differences():
    plan = small_plan()
    _, stream = train_pending_runs(plan, {}, "", SYNTH, {}, CORPUS)
    records = stream.records()
    params = {**SYNTH, "on_changed_settings": "reuse", "synthetic": {"noise_sigma": 0.02}}
    check, again = train_pending_runs(plan, records, "", params, {}, CORPUS)
    assert len(again) == 0 and check["reused"]
    assert check["changed_runs"] == sorted(records)
    assert check["differences"] == [f"training.synthetic.noise_sigma: 0.01 → 0.02 ({len(plan)} runs)"]


def test_train_pending_runs_rejects_bad_input_before_running():
    plan = small_plan()
    with pytest.raises(SchemaError, match="must be a list"):
        train_pending_runs({"runs": plan}, {}, "", SYNTH, {}, CORPUS)
    with pytest.raises(ValueError, match=r"params:training\.backend"):
        train_pending_runs(plan, {}, "", {**SYNTH, "backend": "nope"}, {}, CORPUS)


def test_tabulate_results_gives_results_and_run_results():
    plan = small_plan()
    params = {**SYNTH, "seeds": 2}
    records = train_pending_runs(plan, {}, "", params, {}, CORPUS)[1].records()
    results, run_results, curves = tabulate_results(plan, records, params)
    assert isinstance(results, pd.DataFrame) and isinstance(run_results, pd.DataFrame)
    assert curves.empty  # the synthetic backend records no loss curve
    assert list(results["experiment_id"]) == [r["experiment_id"] for r in plan]
    assert len(run_results) == 2 * len(plan)
    assert (results["num_replicas"] == 2).all()
    # only the current plan is tabulated
    results, run_results, _ = tabulate_results(plan[:3], records, params)
    assert len(results) == 3 and len(run_results) == 6
