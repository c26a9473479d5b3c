"""Stored results trained under other settings than the configuration gives now are never
reused silently: `training.on_changed_settings` says whether training stops, retrains or reuses."""

from __future__ import annotations

import json
import logging

import pytest

from flops_fit.datasets.run_store import RunPartitionsDataset
from flops_fit.execution import prepare_training
from flops_fit.execution.settings import SETTINGS_FIELD, SettingsChangedError

SYNTH = {"backend": "synthetic", "executor": "sequential", "show_progress": False}


def _files(folder):
    return {p.name: p.read_bytes() for p in sorted(folder.glob("*.json"))}


def _records(folder):
    return {p.stem: json.loads(p.read_text()) for p in sorted(folder.glob("*.json"))}


@pytest.fixture
def study(plan, tmp_path):
    """A completed synthetic study of 4 runs, stored as training stores it."""
    store = RunPartitionsDataset(path=str(tmp_path / "runs"))
    store.save(prepare_training(plan[:4], store.load(), SYNTH))
    return plan[:4], store, tmp_path / "runs"


def test_records_store_the_settings_they_were_trained_under(study):
    _, _, folder = study
    settings = [r[SETTINGS_FIELD] for r in _records(folder).values()]
    assert all(s == settings[0] for s in settings)
    assert settings[0]["training.synthetic.alpha"] == 0.34
    assert settings[0]["training.seed"] == 0 and settings[0]["training.backend"] == "synthetic"


def test_unchanged_settings_reuse_silently(study, caplog):
    plan, store, _ = study
    with caplog.at_level(logging.WARNING):
        assert list(prepare_training(plan, store.load(), SYNTH)) == []
    assert "settings" not in caplog.text


def test_by_default_a_change_stops_training_with_every_difference(study):
    plan, store, folder = study
    before = _files(folder)
    changed = {**SYNTH, "synthetic": {"alpha": 0.5, "E": 1.5}}
    with pytest.raises(SettingsChangedError) as err:
        prepare_training(plan, store.load(), changed)
    message = str(err.value)
    assert message.startswith("4 of 4 completed run(s) were trained under other settings")
    assert "training.synthetic.alpha: 0.34 → 0.5 (4 runs)" in message
    assert "training.synthetic.E: 1.69 → 1.5 (4 runs)" in message
    for way_out in ("training.on_changed_settings=retrain", "training.on_changed_settings=reuse",
                    "data_root="):
        assert way_out in message
    assert _files(folder) == before


def test_settings_that_do_not_change_what_is_trained_are_not_compared(study):
    plan, store, _ = study
    params = {**SYNTH, "synthetic": {"sleep_seconds": 0.001, "failure_fraction": 0.5}}
    assert list(prepare_training(plan, store.load(), params)) == []


def test_reuse_keeps_the_results_and_says_so(study, caplog):
    plan, store, folder = study
    before = _files(folder)
    params = {**SYNTH, "synthetic": {"alpha": 0.5}, "on_changed_settings": "reuse"}
    with caplog.at_level(logging.INFO):
        stream = prepare_training(plan, store.load(), params)
    assert list(stream) == []
    assert "4 already completed (4 trained under other settings, reused)" in caplog.text
    assert "training.synthetic.alpha: 0.34 → 0.5 (4 runs)" in caplog.text
    store.save(stream)
    assert _files(folder) == before


def test_retrain_replaces_each_result_when_its_new_one_is_saved(study):
    plan, store, folder = study
    old = _records(folder)
    params = {**SYNTH, "synthetic": {"alpha": 0.5}, "on_changed_settings": "retrain"}
    stream = prepare_training(plan, store.load(), params)
    assert len(list(stream)) == 4
    store.save(stream)
    new = _records(folder)
    assert set(new) == set(old)
    for key, record in new.items():
        assert record[SETTINGS_FIELD]["training.synthetic.alpha"] == 0.5
        assert record["true_loss"] < old[key]["true_loss"]
    # the study now matches the configuration: nothing differs, nothing runs
    assert list(prepare_training(plan, store.load(), {**SYNTH, "synthetic": {"alpha": 0.5}})) == []


def test_a_failed_retrain_keeps_the_earlier_result(study, caplog):
    plan, store, folder = study
    before = _files(folder)
    params = {**SYNTH, "synthetic": {"alpha": 0.5, "failure_fraction": 1.0}, "max_retries": 0,
              "on_changed_settings": "retrain"}
    with caplog.at_level(logging.INFO):
        store.save(prepare_training(plan[:1], store.load(), params))
    assert _files(folder) == before
    assert "its earlier result (trained under other settings) is kept" in caplog.text
    # the sweep's count says what was stored: no failure record, the earlier result kept
    assert ("Finished 1 of 1 run(s)" in caplog.text and "0 saved (0 completed, 0 failed), 1 "
            "failed retrain(s) that kept the earlier result" in caplog.text)
    assert "not saved" not in caplog.text


def test_a_changed_seed_is_a_changed_setting(study):
    plan, store, _ = study
    with pytest.raises(SettingsChangedError, match=r"training\.seed: 0 → 7 \(4 runs\)"):
        prepare_training(plan, store.load(), {**SYNTH, "seed": 7})


def test_a_changed_plan_record_is_a_changed_setting(study):
    plan, store, _ = study
    edited = [dict(plan[0], num_steps=plan[0]["num_steps"] + 1), *plan[1:]]
    with pytest.raises(SettingsChangedError, match=r"sweep_plan num_steps: \d+ → \d+ \(1 run\)"):
        prepare_training(edited, store.load(), SYNTH)


def test_records_from_before_settings_were_stored(study, caplog):
    plan, store, folder = study
    for path in folder.glob("*.json"):
        record = json.loads(path.read_text())
        del record[SETTINGS_FIELD]
        path.write_text(json.dumps(record))
    with caplog.at_level(logging.INFO):
        assert list(prepare_training(plan, store.load(), SYNTH)) == []
    assert "4 completed run(s) were stored without their training settings" in caplog.text
    # what they do store is still compared: the run's seed
    with pytest.raises(SettingsChangedError,
                       match=r"the run's seed: \d+ → \d+ and 3 other values \(4 runs\)"):
        prepare_training(plan, store.load(), {**SYNTH, "seed": 7})


# -- the torch backend: a tiny plugin MLP on a data factory's arrays -------------------------
TINY_PLANNING = {"compute_budgets": {"values": [2.0e5]}, "batch_size": 8, "max_epochs": None,
                 "flops_formula": "6nd", "model_sizes": {"num": 3, "centre": "fixed_range",
                                                         "fixed_range": {"min": 100.0,
                                                                         "max": 200.0}}}
TORCH = {"device": "cpu", "optimizer": {"lr": 0.01}, "checkpoint_every_minutes": None}


def _torch_training(**kw):
    from tests.plugins.toy_plugins import training_params

    return {**training_params(data="arrays", **kw), "show_progress": False}


@pytest.fixture
def torch_study(tmp_path):
    from flops_fit.pipelines.planning.nodes import plan_isoflop_sweep, summarise_data

    training = _torch_training()
    summary = summarise_data(None, {}, training, TINY_PLANNING, {})
    plan = plan_isoflop_sweep([2.0e5], summary, None, TINY_PLANNING, training, {}, {})[0][:2]
    store = RunPartitionsDataset(path=str(tmp_path / "runs"))
    store.save(prepare_training(plan, store.load(), training, {"torch": TORCH}))
    return plan, store, tmp_path / "runs"


def test_torch_lr_and_data_changes_stop_retrain_or_reuse(torch_study):
    plan, store, folder = torch_study
    before = _files(folder)
    assert len(before) == len(plan) == 2
    assert all(r["peak_lr"] == 0.01 for r in _records(folder).values())
    faster = {**TORCH, "optimizer": {"lr": 0.5}}
    with pytest.raises(SettingsChangedError) as err:
        prepare_training(plan, store.load(), _torch_training(), {"torch": faster})
    assert "2 of 2 completed run(s)" in str(err.value)
    assert "torch_backend.optimizer.lr: 0.01 → 0.5 (2 runs)" in str(err.value)
    # other data: its kwargs and its held-out set differ
    with pytest.raises(SettingsChangedError) as err:
        prepare_training(plan, store.load(), _torch_training(data_kwargs={"seed": 1}),
                         {"torch": TORCH})
    assert 'training.data.kwargs: {} → {"seed": 1} (2 runs)' in str(err.value)
    assert "data.heldout: " in str(err.value)
    reused = _torch_training(on_changed_settings="reuse")
    assert list(prepare_training(plan, store.load(), reused, {"torch": faster})) == []
    assert _files(folder) == before
    retrain = _torch_training(on_changed_settings="retrain")
    store.save(prepare_training(plan, store.load(), retrain, {"torch": faster}))
    assert all(r["peak_lr"] == 0.5 for r in _records(folder).values())
    assert list(prepare_training(plan, store.load(), _torch_training(), {"torch": faster})) == []


def test_the_settings_stay_in_the_run_files_not_in_the_tables(study):
    from flops_fit.execution import collect_records, results_table, run_results_table

    plan, store, _ = study
    records, _ = collect_records(store.load(), plan, 1, "synthetic")
    assert all(SETTINGS_FIELD in r for r in records)
    assert SETTINGS_FIELD not in results_table(records).columns
    assert SETTINGS_FIELD not in run_results_table(records).columns


def test_a_schedule_change_is_a_changed_setting_even_for_records_from_before_kinds(torch_study):
    plan, store, folder = torch_study
    records = _records(folder)
    settings = next(iter(records.values()))[SETTINGS_FIELD]
    assert settings["torch_backend.schedule.kind"] == "cosine"
    # cosine ignores the cooldown: its keys are not settings, so changing them retrains nothing
    assert not any("cooldown" in key for key in settings)
    quiet = {**TORCH, "schedule": {"cooldown_fraction": 0.5}}
    assert list(prepare_training(plan, store.load(), _torch_training(), {"torch": quiet})) == []
    # a record written before schedules had kinds was trained with cosine
    for name, record in records.items():
        del record[SETTINGS_FIELD]["torch_backend.schedule.kind"]
        (folder / f"{name}.json").write_text(json.dumps(record))
    wsd = {**TORCH, "schedule": {"kind": "wsd"}}
    with pytest.raises(SettingsChangedError) as err:
        prepare_training(plan, store.load(), _torch_training(), {"torch": wsd})
    assert '"cosine" → "wsd" (2 runs)' in str(err.value)
    assert list(prepare_training(plan, store.load(), _torch_training(), {"torch": TORCH})) == []


def test_loss_curves_stay_in_the_run_files_and_have_their_own_table(torch_study):
    from flops_fit.execution import collect_records, loss_curves_table, results_table
    from flops_fit.schema import LOSS_CURVE_COLUMNS, LOSS_CURVE_FIELD

    plan, store, _ = torch_study
    records, _ = collect_records(store.load(), plan, 1, "torch")
    assert all(record[LOSS_CURVE_FIELD] for record in records)
    assert LOSS_CURVE_FIELD not in results_table(records).columns
    curves = loss_curves_table(records)
    assert tuple(curves.columns) == LOSS_CURVE_COLUMNS
    assert set(curves["experiment_id"]) == {r["experiment_id"] for r in plan}
    assert len(curves) == sum(len(r[LOSS_CURVE_FIELD]) for r in records)
    assert curves.groupby("experiment_id")["step"].is_monotonic_increasing.all()
    assert loss_curves_table([]).columns.tolist() == list(LOSS_CURVE_COLUMNS)
