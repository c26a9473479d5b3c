import pandas as pd
import pytest

from flops_fit.pipelines.planning.nodes import (
    choose_compute_budgets,
    estimate_training_time,
    plan_isoflop_sweep,
    summarise_data,
    summarise_sweep_plan,
    tabulate_sweep_plan,
)
from flops_fit.planning.sweep import PlanningError
from flops_fit.schema import PLAN_FIELDS
from tests.planning.test_sweep import base_params

CORPUS_PARAMS = {"tokenizer": "bytes", "heldout_fraction": 0.1, "block_size": 16}
TINY_EVAL = {"eval": {"heldout_tokens": 16}}
SYNTHETIC = {"backend": "synthetic"}


def plan(params, data_summary, training=SYNTHETIC):
    budgets = choose_compute_budgets(params)
    return plan_isoflop_sweep(budgets, data_summary, None, params, training, CORPUS_PARAMS, {})


def test_summarise_data_counts_bytes():
    text = "abcdefgh" * 100  # 800 bytes = 50 blocks of 16; every 10th held out
    params = {**base_params(), "model_family": {**base_params()["model_family"],
                                                "context_length": 8}}
    summary = summarise_data(text, CORPUS_PARAMS, {}, params, TINY_EVAL)
    assert summary["heldout_tokens"] == 5 * 16
    assert summary["train_tokens"] == summary["train_units"] == 45 * 16
    assert summary["vocab_size"] == 256
    assert summary["unit"] == "tokens" and summary["units_per_example"] == 8
    assert summary["heldout_examples"] == 2 and summary["heldout_units"] == 16
    assert summary["loss"] == "flops_fit.nn.losses:next_token_cross_entropy"


def test_summarise_data_rejects_empty_text():
    with pytest.raises(ValueError, match="corpus is empty"):
        summarise_data("", CORPUS_PARAMS, {}, base_params(), TINY_EVAL)


def test_choose_compute_budgets():
    assert choose_compute_budgets(base_params()) == sorted(base_params()["compute_budgets"]["values"])


def test_plan_and_summary_agree():
    params = {**base_params(), "timing_probe_steps": 0}
    records, dropped = plan(params, {"train_units": 10**9})
    estimate = estimate_training_time(records, None, params, {**SYNTHETIC, "executor":
                                                               "sequential"}, CORPUS_PARAMS, {})
    assert estimate["estimated_wall_seconds"] == 0.0 and estimate["workers"] == 1
    summary = summarise_sweep_plan(records, dropped, estimate)
    assert summary["runs"] == len(records)
    assert summary["total_planned_flops"] == pytest.approx(sum(r["planned_flops"] for r in records))
    assert sum(b["runs"] for b in summary["per_budget"]) == len(records)
    assert summary["data_unit"] == "tokens" and summary["flops_formula"] == "full"
    # Without a probe, a fixed throughput per worker, scheduled longest first over 2 workers.
    fixed = estimate_training_time(records, None, params, {"executor": "dask", "dask":
                                                           {"n_workers": 2}}, CORPUS_PARAMS, {})
    rate = params["throughput_flops_per_second"]
    assert fixed["training_seconds_one_worker"] == pytest.approx(
        sum(r["planned_flops"] for r in records) / rate)
    assert fixed["workers"] == 2
    assert fixed["training_seconds_one_worker"] / 2 <= fixed["estimated_wall_seconds"]
    assert fixed["estimated_wall_seconds"] < fixed["training_seconds_one_worker"]


def test_timing_probe_measures_the_planned_models(corpus_split):
    """The estimate comes from real steps of the planned models on this machine."""
    params = {**base_params(), "compute_budgets": {"values": [3e10]},
              "model_sizes": {"num": 3, "centre": "fixed_range",
                              "fixed_range": {"min": 2e3, "max": 2e4}}}
    text = bytes(corpus_split.train[:400_000]) + bytes(corpus_split.heldout[:200_000])
    training = {"executor": "sequential"}
    torch_params = {"eval": {"heldout_tokens": 1024}}
    records, _ = plan_isoflop_sweep(choose_compute_budgets(params), {"train_units": None},
                                    text, params, training, {}, torch_params)
    estimate = estimate_training_time(records, text, params, training, {}, torch_params)
    assert estimate["method"] == "timing probe"
    probed = estimate["probed_seconds_per_step"]
    assert len(probed) == len(records) and all(s > 0 for s in probed.values())
    assert estimate["estimated_wall_seconds"] == pytest.approx(
        sum(estimate["run_seconds"].values()))


def test_a_probe_on_a_device_this_machine_lacks_says_how_to_plan_here(corpus_split,
                                                                      monkeypatch):
    """The gpu environment planned on a machine without CUDA: one PlanningError that names the
    device and the way to plan without the probe, before any model is built on it."""
    import torch

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    params = {**base_params(), "compute_budgets": {"values": [3e10]},
              "model_sizes": {"num": 3, "centre": "fixed_range",
                              "fixed_range": {"min": 2e3, "max": 2e4}}}
    text = bytes(corpus_split.train[:400_000]) + bytes(corpus_split.heldout[:200_000])
    training = {"executor": "sequential"}
    torch_params = {"eval": {"heldout_tokens": 1024}, "device": "cuda"}
    records, _ = plan_isoflop_sweep(choose_compute_budgets(params), {"train_units": None},
                                    text, params, training, {}, torch_params)
    with pytest.raises(PlanningError, match=r"^params:torch_backend.device is 'cuda' but no "
                       r"CUDA device is available here, where planning's timing probe .* plan "
                       r"here with planning.timing_probe_steps=0"):
        estimate_training_time(records, text, params, training, {}, torch_params)


def test_small_corpus_drops_long_runs():
    params = {**base_params(), "max_epochs": 1}
    records, _ = plan(params, {"train_units": 10**12})
    limit = sorted(r["num_tokens"] for r in records)[-1] - 1
    try:
        limited, dropped = plan(params, {"train_units": limit})
    except PlanningError as exc:
        assert "epochs of the training set" in str(exc)
    else:
        assert max(r["num_tokens"] for r in limited) <= limit
        assert dropped


def test_tabulate_keeps_column_order():
    records, _ = plan(base_params(), {"train_units": 10**9})
    table = tabulate_sweep_plan(records)
    assert isinstance(table, pd.DataFrame)
    assert list(table.columns) == list(PLAN_FIELDS)
    assert len(table) == len(records)
    assert table["model_kwargs"].str.startswith('{"context_length"').all()  # JSON text cells
