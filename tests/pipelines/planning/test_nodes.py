import pandas as pd
import pytest

from flops_fit.pipelines.planning.nodes import (
    choose_compute_budgets,
    plan_isoflop_sweep,
    summarise_corpus,
    summarise_sweep_plan,
    tabulate_sweep_plan,
)
from flops_fit.schema import PLAN_FIELDS
from flops_fit.sweep import PlanningError

from ...test_sweep import base_params

CORPUS_PARAMS = {"tokenizer": "bytes", "heldout_fraction": 0.1, "block_size": 16}


def test_summarise_corpus_counts_bytes():
    text = "abcdefgh" * 100  # 800 bytes = 50 blocks of 16; every 10th held out
    summary = summarise_corpus(text, CORPUS_PARAMS)
    assert summary["heldout_tokens"] == 5 * 16
    assert summary["train_tokens"] == 45 * 16
    assert summary["vocab_size"] == 256


def test_summarise_corpus_rejects_empty_text():
    with pytest.raises(ValueError, match="corpus is empty"):
        summarise_corpus("", CORPUS_PARAMS)


def test_choose_compute_budgets():
    assert choose_compute_budgets(base_params()) == sorted(base_params()["compute_budgets"]["values"])


def test_plan_and_summary_agree():
    params = base_params()
    budgets = choose_compute_budgets(params)
    plan, dropped = plan_isoflop_sweep(budgets, {"train_tokens": 10**9}, params)
    summary = summarise_sweep_plan(plan, dropped, params)
    assert summary["runs"] == len(plan)
    assert summary["total_planned_flops"] == pytest.approx(sum(r["planned_flops"] for r in plan))
    assert sum(b["runs"] for b in summary["per_budget"]) == len(plan)
    assert summary["estimated_wall_seconds"] == pytest.approx(
        summary["total_planned_flops"] / params["throughput_flops_per_second"])


def test_small_corpus_drops_long_runs():
    params = {**base_params(), "max_epochs": 1}
    budgets = choose_compute_budgets(params)
    plan, _ = plan_isoflop_sweep(budgets, {"train_tokens": 10**12}, params)
    limit = sorted(r["num_tokens"] for r in plan)[-1] - 1
    try:
        limited, dropped = plan_isoflop_sweep(budgets, {"train_tokens": limit}, params)
    except PlanningError as exc:
        assert "epochs of the training corpus" in str(exc)
    else:
        assert max(r["num_tokens"] for r in limited) <= limit
        assert dropped


def test_tabulate_keeps_column_order():
    params = base_params()
    plan, _ = plan_isoflop_sweep(choose_compute_budgets(params), {"train_tokens": 10**9}, params)
    table = tabulate_sweep_plan(plan)
    assert isinstance(table, pd.DataFrame)
    assert list(table.columns) == list(PLAN_FIELDS)
    assert len(table) == len(plan)
