"""IsoFLOP sweep planning: model sizes per budget, concrete shapes and token counts.

Framework-free: a notebook user calls `plan_sweep(PlanningConfig.from_params(...))` directly
(`flops_fit.parameters.planning` validates the parameters and chooses the budgets).
"""

from __future__ import annotations

import hashlib
import json
import logging
from typing import Any

from flops_fit.flops import training_flops, training_flops_per_token
from flops_fit.parameters.planning import MIN_SIZES_PER_BUDGET, PlanningConfig
from flops_fit.shapes import (
    ModelShape,
    non_embedding_params,
    shape_for_target,
    total_params,
)
from flops_fit.shapes import embedding_params as embedding_param_count

log = logging.getLogger(__name__)


class PlanningError(ValueError):
    """The planning parameters cannot produce a usable sweep; the message says what to change."""


def budget_tag(budget: float) -> str:
    """'3e11', '1.5e12': a short, filename-safe, stable label of a budget."""
    mantissa, exponent = f"{budget:.6e}".split("e")
    mantissa = mantissa.rstrip("0").rstrip(".")
    return f"{mantissa}e{int(exponent)}"


def experiment_id(budget: float, shape: ModelShape, batch_size: int, num_tokens: int) -> str:
    """Stable ID from the budget and the run's defining settings, not its list position."""
    key = json.dumps(
        {"C": float(budget), "shape": shape.to_dict(), "batch": batch_size, "D": int(num_tokens)},
        sort_keys=True,
    )
    digest = hashlib.sha1(key.encode()).hexdigest()[:8]
    return f"C{budget_tag(budget)}-d{shape.d_model}-L{shape.num_layers}-{digest}"


def plan_budget(cfg: PlanningConfig, budget: float, corpus_train_tokens: int | None):
    """Plan one budget: (records, dropped) where dropped lists {target, reason}."""
    tokens_per_step = cfg.batch_size * cfg.model_family.context_length
    records: list[dict[str, Any]] = []
    dropped: list[dict[str, Any]] = []
    seen: set[ModelShape] = set()
    for target in cfg.model_sizes.targets(budget):
        shape = shape_for_target(float(target), cfg.model_family)
        n = non_embedding_params(shape)
        if shape in seen:
            dropped.append({"compute_budget": budget, "target_model_size": float(target),
                            "model_size": n, "reason": "same shape as a neighbouring target"})
            continue
        seen.add(shape)
        fpt = training_flops_per_token(shape, cfg.flops_formula)
        steps = int(round(budget / (fpt * tokens_per_step)))
        reason = None
        if steps < 1:
            reason = "budget buys less than one optimiser step"
        tokens = steps * tokens_per_step
        tpp = tokens / n
        if reason is None and tpp < cfg.min_tokens_per_param:
            reason = (f"{tpp:.3g} tokens/param is below min_tokens_per_param "
                      f"({cfg.min_tokens_per_param:g})")
        if reason is None and tpp > cfg.max_tpp:
            reason = (f"{tpp:.3g} tokens/param is above max_tokens_per_param "
                      f"({cfg.max_tpp:g})")
        if (reason is None and corpus_train_tokens and cfg.max_epochs is not None
                and tokens > cfg.max_epochs * corpus_train_tokens):
            reason = (f"{tokens:.3g} tokens is {tokens / corpus_train_tokens:.2f} epochs of the "
                      f"training corpus, above max_epochs ({cfg.max_epochs:g})")
        if reason:
            dropped.append({"compute_budget": budget, "target_model_size": float(target),
                            "model_size": n, "reason": reason})
            continue
        planned = float(fpt) * tokens
        records.append({
            "experiment_id": experiment_id(budget, shape, cfg.batch_size, tokens),
            "compute_budget": float(budget),
            "target_model_size": float(target),
            "model_size": n,
            "num_tokens": int(tokens),
            "tokens_per_param": tpp,
            **shape.to_dict(),
            "batch_size": cfg.batch_size,
            "num_steps": steps,
            "flops_formula": cfg.flops_formula,
            "flops_per_token": int(fpt),
            "planned_flops": planned,
            "flops_6nd": training_flops(shape, tokens, "6nd"),
            "embedding_params": embedding_param_count(shape),
            "total_params": total_params(shape),
            "corpus_epochs": (tokens / corpus_train_tokens) if corpus_train_tokens else None,
            "max_epochs": cfg.max_epochs,
        })
    return records, dropped


def plan_sweep(cfg: PlanningConfig, corpus_train_tokens: int | None = None):
    """Plan every budget; returns (records, dropped). Raises PlanningError for a thin budget."""
    all_records: list[dict[str, Any]] = []
    all_dropped: list[dict[str, Any]] = []
    for budget in cfg.compute_budgets.budgets():
        records, dropped = plan_budget(cfg, budget, corpus_train_tokens)
        for d in dropped:
            log.info("Budget %s: dropped target N=%.3g (%s)", budget_tag(budget),
                     d["target_model_size"], d["reason"])
        if len(records) < MIN_SIZES_PER_BUDGET:
            reasons = "; ".join(sorted({d["reason"] for d in dropped})) or "none"
            raise PlanningError(
                f"compute budget {budget:.3g} FLOPs keeps only {len(records)} model size(s) "
                f"(need {MIN_SIZES_PER_BUDGET}); dropped because: {reasons}. Change "
                f"params:planning.model_sizes (centre/span or fixed_range), the tokens-per-param "
                f"limits, model_family widths, or the budget itself."
            )
        for r in records:
            if corpus_train_tokens and r["num_tokens"] > corpus_train_tokens:
                log.warning("%s sees %.2f epochs of the training corpus (data repeats)",
                            r["experiment_id"], r["num_tokens"] / corpus_train_tokens)
        all_records.extend(records)
        all_dropped.extend(dropped)
    ids = [r["experiment_id"] for r in all_records]
    if len(set(ids)) != len(ids):
        raise PlanningError("two planned runs share an experiment_id; budgets must be distinct")
    return all_records, all_dropped


def summarise_plan(records: list[dict[str, Any]], dropped: list[dict[str, Any]],
                   throughput_flops_per_second: float) -> dict[str, Any]:
    per_budget: dict[str, dict[str, Any]] = {}
    for r in records:
        b = per_budget.setdefault(budget_tag(r["compute_budget"]), {
            "compute_budget": r["compute_budget"], "runs": 0, "planned_flops": 0.0,
            "min_model_size": r["model_size"], "max_model_size": r["model_size"]})
        b["runs"] += 1
        b["planned_flops"] += r["planned_flops"]
        b["min_model_size"] = min(b["min_model_size"], r["model_size"])
        b["max_model_size"] = max(b["max_model_size"], r["model_size"])
    total = float(sum(r["planned_flops"] for r in records))
    return {
        "runs": len(records),
        "budgets": len(per_budget),
        "total_planned_flops": total,
        "estimated_wall_seconds": total / throughput_flops_per_second,
        "throughput_flops_per_second": throughput_flops_per_second,
        "per_budget": list(per_budget.values()),
        "dropped": dropped,
    }
