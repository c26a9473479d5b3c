"""prepare_training / RunStream / SequentialExecutor / run_task: validation, retries, resume."""

from __future__ import annotations

import copy
import json

import pytest

from flops_fit.datasets.run_store import RunPartitionsDataset
from flops_fit.execution import RunStream, prepare_training, run_task
from flops_fit.execution.tasks import expand_plan, partition_key
from flops_fit.parameters.base import ParameterError
from flops_fit.planning.sweep import PlanningError
from flops_fit.schema import SchemaError

SYNTH = {"backend": "synthetic", "executor": "sequential", "show_progress": False}
TIMING = ("wall_time_seconds", "started_at", "finished_at")


def _strip(record):
    return {k: v for k, v in record.items() if k not in TIMING}


# -- validation before any run ---------------------------------------------------------------
@pytest.mark.parametrize(
    ("plan_edit", "params", "error", "match"),
    [
        (lambda p: {"not": "a list"}, SYNTH, SchemaError, "must be a list"),
        (
            lambda p: [{k: v for k, v in p[0].items() if k != "num_tokens"}],
            SYNTH,
            SchemaError,
            r"sweep_plan\[0\].*num_tokens",
        ),
        (lambda p: [], SYNTH, SchemaError, r"sweep_plan holds no runs"),
        (
            lambda p: [p[0], {**p[1], "model_size": "big"}],
            SYNTH,
            SchemaError,
            r"sweep_plan\[1\] \(.+\): field 'model_size' must be a positive number, got 'big'",
        ),
        (
            lambda p: [{**p[0], "num_tokens": -5}],
            SYNTH,
            SchemaError,
            r"sweep_plan\[0\] \(.+\): field 'num_tokens' must be a positive number, got -5",
        ),
        (lambda p: p, {**SYNTH, "backend": "jax"}, ValueError, r"params:training\.backend"),
        (
            lambda p: p,
            {**SYNTH, "executor": "ray"},
            ParameterError,
            r"params:training\.executor",
        ),
        (lambda p: p, {**SYNTH, "seeds": 0}, ParameterError, r"params:training\.seeds"),
        (
            lambda p: p,
            {**SYNTH, "max_retries": -1},
            ParameterError,
            r"params:training\.max_retries",
        ),
        (
            lambda p: p,
            {**SYNTH, "dask": {"n_workers": 0}},
            ParameterError,
            r"params:training\.dask\.n_workers",
        ),
        (
            lambda p: p,
            {**SYNTH, "synthetic": {"beta": 0}},
            ValueError,
            r"params:training\.synthetic\.beta",
        ),
        (
            lambda p: [{**r, "model_factory": "flops_fit.models.mnist1d:mlp"} for r in p],
            SYNTH,
            PlanningError,
            r"^the sweep plan was made for the model flops_fit\.models\.mnist1d:mlp, but "
            r"params:training\.model\.factory trains flops_fit\.nn\.model:make_gpt \(was the "
            r"plan made under another --env\?\)",
        ),
        (
            lambda p: p,
            {**SYNTH, "executer": "dask"},
            ParameterError,
            r"unknown parameter 'training\.executer' \(did you mean 'training\.executor'\?\)",
        ),
    ],
)
def test_bad_input_fails_before_any_run(plan, plan_edit, params, error, match, monkeypatch):
    calls = []
    monkeypatch.setattr("flops_fit.execution.run.get_backend", lambda name: calls.append(name))
    with pytest.raises(error, match=match):
        prepare_training(plan_edit(plan), {}, params)
    assert calls == []


def test_nothing_runs_until_the_stream_is_consumed(plan):
    stream = prepare_training(plan, {}, SYNTH)
    assert isinstance(stream, RunStream)
    assert list(stream) == [r["experiment_id"] for r in plan]
    assert "0 finished" in repr(stream)
    records = stream.records()
    assert len(records) == len(plan)
    assert all(r["status"] == "completed" for r in records.values())
    # consuming again does not re-run anything
    assert stream.records() == records
    assert callable(stream[plan[0]["experiment_id"]])
    assert stream[plan[0]["experiment_id"]]() == records[plan[0]["experiment_id"]]


def test_deepcopy_as_a_memory_dataset_does_materialises_records(plan):
    stream = prepare_training(plan[:3], {}, SYNTH)
    copied = copy.deepcopy(stream)
    assert type(copied) is dict and len(copied) == 3


def test_results_do_not_depend_on_order_or_subset(plan):
    full = prepare_training(plan, {}, SYNTH).records()
    alone = prepare_training(list(reversed(plan))[:2], {}, SYNTH).records()
    for key, record in alone.items():
        assert _strip(record) == _strip(full[key])


def test_replicas_get_their_own_seeds_and_keys(plan):
    records = prepare_training(plan[:2], {}, {**SYNTH, "seeds": 3}).records()
    eid = plan[0]["experiment_id"]
    assert {eid, f"{eid}-r1", f"{eid}-r2"} <= set(records)
    assert records[f"{eid}-r2"]["replica"] == 2
    assert len({r["seed"] for r in records.values()}) == 6
    assert len({r["final_loss"] for r in records.values()}) == 6


def test_exceptions_and_nan_become_failed_records_and_the_sweep_goes_on(plan):
    params = {
        **SYNTH,
        "max_retries": 0,
        "synthetic": {"failure_fraction": 0.3, "divergence_fraction": 0.3},
    }
    records = prepare_training(plan, {}, params).records()
    assert len(records) == len(plan)
    failed = [r for r in records.values() if r["status"] == "failed"]
    assert failed and len(failed) < len(plan)
    messages = " ".join(r["error_message"] for r in failed)
    assert "SyntheticFailure: injected failure" in messages
    assert "final_loss NaN is not a positive finite number" in messages
    for r in failed:
        assert r["attempts"] == 1
        json.dumps(r, allow_nan=False)


def test_failed_runs_are_retried_within_and_across_invocations(plan, test_backends, tmp_path):
    eid = plan[0]["experiment_id"]
    params = {"backend": "flaky", "executor": "sequential", "show_progress": False, "max_retries": 1}
    backend = {"flaky": {"counter_dir": str(tmp_path / "calls"), "fail_times": {eid: 3}}}
    first = prepare_training(plan[:2], {}, params, backend).records()
    assert first[eid]["status"] == "failed" and first[eid]["attempts"] == 2
    assert "flaky failure 2" in first[eid]["error_message"]
    # next invocation: one retry (max_retries: 1) -> call 3 fails again, completed run untouched
    second = prepare_training(plan[:2], first, params, backend)
    assert list(second) == [eid]
    assert second.records()[eid]["error_message"].startswith("RuntimeError: flaky failure 3")
    stored = {**first, **second.records()}
    # max_retries: 0 leaves the failure alone
    assert len(prepare_training(plan[:2], stored, {**params, "max_retries": 0}, backend)) == 0
    third = prepare_training(plan[:2], stored, params, backend).records()
    assert third[eid]["status"] == "completed" and third[eid]["attempts"] == 1


def test_run_task_never_raises(plan, test_backends, tmp_path):
    task = expand_plan(plan[:1], 1, 0)[0]
    record = run_task(
        task, "flaky", {"counter_dir": str(tmp_path), "fail_times": {task.experiment_id: 1}}
    )
    assert record["status"] == "failed"
    assert record["error_message"].startswith("RuntimeError: flaky failure 1 [at ")
    assert record["final_loss"] is None and record["started_at"] <= record["finished_at"]
    record = run_task(task, "flaky", {"counter_dir": str(tmp_path), "nan": [task.experiment_id]})
    assert record["status"] == "failed"
    assert record["error_message"] == "final_loss NaN is not a positive finite number"


def test_each_run_is_on_disk_before_the_next_starts(plan, test_backends, tmp_path):
    runs = tmp_path / "runs"
    params = {"backend": "probe", "executor": "sequential", "show_progress": False,
              "checkpoint_dir": str(tmp_path / "ckpt")}
    stream = prepare_training(plan[:5], {}, params, {"probe": {"runs_dir": str(runs)}})
    RunPartitionsDataset(path=str(runs)).save(stream)
    stored = RunPartitionsDataset(path=str(runs)).load()
    by_order = sorted((stored[k]() for k in stored), key=lambda r: r["finished_at"])
    assert [r["files_at_start"] for r in by_order] == [0, 1, 2, 3, 4]
    first = by_order[0]
    key = partition_key(first["experiment_id"], 0)
    assert first["checkpoint_dir"] == str(tmp_path / "ckpt" / key)
    assert first["seed_seen"] == first["seed"]


def test_resume_keeps_stored_files_byte_for_byte(plan, tmp_path):
    runs = tmp_path / "runs"
    store = RunPartitionsDataset(path=str(runs))
    store.save(prepare_training(plan[:4], store.load(), SYNTH))
    before = {p.name: p.read_bytes() for p in runs.iterdir()}
    stream = prepare_training(plan, store.load(), SYNTH)
    assert set(stream) == {r["experiment_id"] for r in plan[4:]}
    store.save(stream)
    after = {p.name: p.read_bytes() for p in runs.iterdir()}
    assert len(after) == len(plan)
    assert all(after[name] == data for name, data in before.items())
    # and an unparseable leftover is run again, not a crash
    (runs / before.__iter__().__next__()).write_text('{"trunc')
    stream = prepare_training(plan, store.load(), SYNTH)
    assert len(stream) == 1 and stream.tasks[0].reason == "unreadable"


def test_corpus_is_prepared_only_for_backends_that_need_it(plan, test_backends):
    text = "hello world, " * 4000
    corpus_params = {"tokenizer": "bytes", "heldout_fraction": 0.1, "block_size": 64}
    records = prepare_training(
        plan[:1],
        {},
        {"backend": "corpus_probe", "executor": "sequential", "show_progress": False},
        training_data=text,
        corpus_params=corpus_params,
    ).records()
    (record,) = records.values()
    assert record["train_bytes"] + record["heldout_bytes"] <= len(text)
    assert record["heldout_bytes"] > 0
    # the synthetic backend never touches the corpus, even a broken one
    prepare_training(plan[:1], {}, SYNTH, training_data="", corpus_params=corpus_params).records()
    with pytest.raises(ValueError, match="corpus"):
        prepare_training(
            plan[:1], {}, {"backend": "corpus_probe", "executor": "sequential"}, training_data="",
            corpus_params=corpus_params,
        )
