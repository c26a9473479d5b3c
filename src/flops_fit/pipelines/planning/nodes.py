"""Planning nodes: thin adapters from parameters to the framework-free `flops_fit.sweep`."""

from __future__ import annotations

import logging
from typing import Any

import pandas as pd

from flops_fit import corpus as corpus_lib
from flops_fit.parameters.corpus import CorpusConfig
from flops_fit.parameters.planning import PlanningConfig
from flops_fit.schema import PLAN_FIELDS
from flops_fit.sweep import budget_tag, plan_sweep, summarise_plan

log = logging.getLogger(__name__)


def summarise_corpus(corpus: str, corpus_params: CorpusConfig) -> dict[str, Any]:
    """Token counts of the train / held-out split, so the plan knows how much data there is."""
    split = corpus_lib.prepare_corpus(corpus, corpus_params)
    summary = corpus_lib.corpus_summary(split)
    log.info("Corpus: %d training tokens, %d held-out tokens (%s)",
             summary["train_tokens"], summary["heldout_tokens"], summary["tokenizer"])
    return summary


def choose_compute_budgets(planning_params: PlanningConfig) -> list[float]:
    budgets = PlanningConfig.from_params(planning_params).compute_budgets.budgets()
    log.info("Compute budgets: %s FLOPs", ", ".join(budget_tag(b) for b in budgets))
    return list(budgets)


def plan_isoflop_sweep(
    compute_budgets: list[float], corpus_summary: dict[str, Any], planning_params: PlanningConfig
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """One record per run (see schema.PLAN_FIELDS), and the target sizes dropped with reasons."""
    cfg = PlanningConfig.from_params(planning_params).with_budgets(compute_budgets)
    train_tokens = corpus_summary.get("train_tokens") if cfg.max_epochs is not None else None
    return plan_sweep(cfg, train_tokens)


def tabulate_sweep_plan(sweep_plan: list[dict[str, Any]]) -> pd.DataFrame:
    """The plan as a spreadsheet-friendly table with a stable column order."""
    return pd.DataFrame.from_records(sweep_plan, columns=list(PLAN_FIELDS))


def summarise_sweep_plan(
    sweep_plan: list[dict[str, Any]],
    dropped_model_sizes: list[dict[str, Any]],
    planning_params: PlanningConfig,
) -> dict[str, Any]:
    """Runs per budget, total FLOPs, estimated wall time and every dropped size with its reason."""
    throughput = PlanningConfig.from_params(planning_params).throughput_flops_per_second
    summary = summarise_plan(sweep_plan, dropped_model_sizes, throughput)
    log.info(
        "Sweep plan: %d runs over %d budgets, %.3g FLOPs in all, about %.0f s of training "
        "at %.3g FLOP/s; %d target sizes dropped",
        summary["runs"], summary["budgets"], summary["total_planned_flops"],
        summary["estimated_wall_seconds"], throughput, len(dropped_model_sizes),
    )
    return summary
