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
    stream = train_pending_runs(plan, {}, "", SYNTH, {}, CORPUS)
    assert isinstance(stream, RunStream)
    assert list(stream) == [r["experiment_id"] for r in plan]
    records = stream.records()
    again = train_pending_runs(plan, records, "", SYNTH, {}, CORPUS)
    assert len(again) == 0


def test_train_pending_runs_rejects_bad_input_before_running():
    plan = small_plan()
    with pytest.raises(SchemaError, match="must be a list"):
        train_pending_runs({"runs": plan}, {}, "", SYNTH, {}, CORPUS)
    with pytest.raises(ValueError, match=r"params:training\.backend"):
        train_pending_runs(plan, {}, "", {**SYNTH, "backend": "nope"}, {}, CORPUS)


def test_tabulate_results_gives_results_and_run_results():
    plan = small_plan()
    params = {**SYNTH, "seeds": 2}
    records = train_pending_runs(plan, {}, "", params, {}, CORPUS).records()
    results, run_results = tabulate_results(plan, records, params)
    assert isinstance(results, pd.DataFrame) and isinstance(run_results, pd.DataFrame)
    assert list(results["experiment_id"]) == [r["experiment_id"] for r in plan]
    assert len(run_results) == 2 * len(plan)
    assert (results["num_replicas"] == 2).all()
    # only the current plan is tabulated
    results, run_results = tabulate_results(plan[:3], records, params)
    assert len(results) == 3 and len(run_results) == 6
