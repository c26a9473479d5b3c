"""IsoFLOP sweep planning: budgets, model sizes per budget, concrete shapes and token counts.

Framework-free: a notebook user calls `plan_sweep(PlanningConfig.from_params(...))` directly.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from flops_fit.flops import check_formula, training_flops, training_flops_per_token
from flops_fit.shapes import (
    ModelShape,
    ShapeFamily,
    non_embedding_params,
    shape_for_target,
    total_params,
)
from flops_fit.shapes import embedding_params as embedding_param_count

log = logging.getLogger(__name__)

MIN_SIZES_PER_BUDGET = 3


class PlanningError(ValueError):
    """The planning parameters cannot produce a usable sweep; the message says what to change."""


def _require_keys(section: str, given: dict[str, Any], allowed: set[str]) -> None:
    if not isinstance(given, dict):
        raise PlanningError(f"params:{section} must be a mapping, got {type(given).__name__}")
    unknown = sorted(set(given) - allowed)
    if unknown:
        raise PlanningError(
            f"unknown key(s) {unknown} in params:{section}; allowed keys: {sorted(allowed)}"
        )


def _positive(section: str, key: str, value: Any, *, integer: bool = False) -> float:
    ok = isinstance(value, (int, float)) and not isinstance(value, bool)
    if ok and integer:
        ok = float(value).is_integer()
    if not ok or not math.isfinite(float(value)) or value <= 0:
        kind = "a positive integer" if integer else "a positive number"
        raise PlanningError(f"params:{section}.{key} must be {kind}, got {value!r}")
    return int(value) if integer else float(value)


@dataclass(frozen=True)
class PlanningConfig:
    budgets: tuple[float, ...]
    sizes_per_budget: int
    centre: str
    power_law_coefficient: float
    power_law_exponent: float
    span_factor: float
    fixed_min: float
    fixed_max: float
    family: ShapeFamily
    batch_size: int
    flops_formula: str = "full"
    min_tokens_per_param: float = 0.0
    max_tokens_per_param: float = math.inf
    max_epochs: float | None = None
    throughput_flops_per_second: float = 1e9
    sizes_note: str = field(default="", compare=False)

    @classmethod
    def from_params(cls, params: dict[str, Any]) -> PlanningConfig:
        """Validate `params:planning` and build the config; every error names the key."""
        top = {
            "compute_budgets", "model_sizes", "model_family", "batch_size", "flops_formula",
            "min_tokens_per_param", "max_tokens_per_param", "max_epochs",
            "throughput_flops_per_second",
        }
        _require_keys("planning", params, top)
        missing = sorted({"compute_budgets", "model_sizes", "batch_size"} - set(params))
        if missing:
            raise PlanningError(f"params:planning is missing required key(s) {missing}")

        budgets = compute_budgets_from_params(params["compute_budgets"])

        sizes = params["model_sizes"]
        _require_keys("planning.model_sizes", sizes,
                      {"num", "centre", "power_law", "span_factor", "fixed_range"})
        num = _positive("planning.model_sizes", "num", sizes.get("num"), integer=True)
        if num < MIN_SIZES_PER_BUDGET:
            raise PlanningError(
                f"params:planning.model_sizes.num is {num}: an IsoFLOP profile needs at least "
                f"{MIN_SIZES_PER_BUDGET} sizes per budget to locate a minimum"
            )
        centre = sizes.get("centre", "power_law")
        if centre not in ("power_law", "fixed_range"):
            raise PlanningError(
                f"params:planning.model_sizes.centre must be 'power_law' or 'fixed_range', "
                f"got {centre!r}"
            )
        law = sizes.get("power_law") or {}
        _require_keys("planning.model_sizes.power_law", law, {"coefficient", "exponent"})
        fixed = sizes.get("fixed_range") or {}
        _require_keys("planning.model_sizes.fixed_range", fixed, {"min", "max"})
        coef = exponent = 0.0
        fmin = fmax = 0.0
        span = 1.0
        if centre == "power_law":
            coef = _positive("planning.model_sizes.power_law", "coefficient", law.get("coefficient"))
            exponent = _positive("planning.model_sizes.power_law", "exponent", law.get("exponent"))
            span = _positive("planning.model_sizes", "span_factor", sizes.get("span_factor"))
            if span <= 1:
                raise PlanningError(
                    f"params:planning.model_sizes.span_factor must be > 1 (sizes run from "
                    f"centre/span to centre*span), got {span}"
                )
        else:
            fmin = _positive("planning.model_sizes.fixed_range", "min", fixed.get("min"))
            fmax = _positive("planning.model_sizes.fixed_range", "max", fixed.get("max"))
            if fmin >= fmax:
                raise PlanningError(
                    f"params:planning.model_sizes.fixed_range: min ({fmin:g}) must be below "
                    f"max ({fmax:g})"
                )

        fam = params.get("model_family") or {}
        allowed_family = set(ShapeFamily.__dataclass_fields__)
        _require_keys("planning.model_family", fam, allowed_family)
        try:
            family = ShapeFamily(**fam)
        except (TypeError, ValueError) as exc:
            raise PlanningError(f"params:planning.model_family: {exc}") from exc

        formula = params.get("flops_formula", "full")
        try:
            check_formula(formula)
        except ValueError as exc:
            raise PlanningError(f"params:planning.{exc}") from exc

        min_tpp = params.get("min_tokens_per_param", 0) or 0
        max_tpp = params.get("max_tokens_per_param")
        max_tpp = math.inf if max_tpp is None else _positive(
            "planning", "max_tokens_per_param", max_tpp)
        if min_tpp < 0 or min_tpp >= max_tpp:
            raise PlanningError(
                f"params:planning.min_tokens_per_param ({min_tpp}) must be >= 0 and below "
                f"max_tokens_per_param ({max_tpp})"
            )
        max_epochs = params.get("max_epochs")
        if max_epochs is not None:
            max_epochs = _positive("planning", "max_epochs", max_epochs)
        throughput = params.get("throughput_flops_per_second", 1e9)
        return cls(
            budgets=budgets,
            sizes_per_budget=num,
            centre=centre,
            power_law_coefficient=coef,
            power_law_exponent=exponent,
            span_factor=span,
            fixed_min=fmin,
            fixed_max=fmax,
            family=family,
            batch_size=_positive("planning", "batch_size", params.get("batch_size"), integer=True),
            flops_formula=formula,
            min_tokens_per_param=float(min_tpp),
            max_tokens_per_param=float(max_tpp),
            max_epochs=max_epochs,
            throughput_flops_per_second=_positive(
                "planning", "throughput_flops_per_second", throughput),
        )


def compute_budgets_from_params(spec: dict[str, Any]) -> tuple[float, ...]:
    """An explicit list (`values`) or `num` log-spaced budgets between `min` and `max`."""
    _require_keys("planning.compute_budgets", spec, {"values", "min", "max", "num"})
    values = spec.get("values")
    if values is not None:
        if not isinstance(values, (list, tuple)) or not values:
            raise PlanningError(
                f"params:planning.compute_budgets.values must be a non-empty list, got {values!r}"
            )
        budgets = [
            _positive("planning.compute_budgets", f"values[{i}]", v) for i, v in enumerate(values)
        ]
        if len(set(budgets)) != len(budgets):
            raise PlanningError("params:planning.compute_budgets.values has duplicate budgets")
        return tuple(sorted(budgets))
    lo = _positive("planning.compute_budgets", "min", spec.get("min"))
    hi = _positive("planning.compute_budgets", "max", spec.get("max"))
    num = _positive("planning.compute_budgets", "num", spec.get("num"), integer=True)
    if lo > hi:
        raise PlanningError(
            f"params:planning.compute_budgets: min ({lo:g}) is above max ({hi:g})"
        )
    if num == 1 or lo == hi:
        if lo != hi or num != 1:
            raise PlanningError(
                "params:planning.compute_budgets: use num: 1 with min == max for a single budget"
            )
        return (lo,)
    # Three significant figures keep budget labels (and experiment IDs) readable.
    return tuple(float(f"{x:.3g}") for x in np.geomspace(lo, hi, num))


def target_sizes(cfg: PlanningConfig, budget: float) -> np.ndarray:
    """Log-spaced target sizes centred on the prior N_opt(C) (or spanning a fixed range)."""
    if cfg.centre == "power_law":
        centre = cfg.power_law_coefficient * budget**cfg.power_law_exponent
        return np.geomspace(centre / cfg.span_factor, centre * cfg.span_factor,
                            cfg.sizes_per_budget)
    return np.geomspace(cfg.fixed_min, cfg.fixed_max, cfg.sizes_per_budget)


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
    tokens_per_step = cfg.batch_size * cfg.family.context_length
    records: list[dict[str, Any]] = []
    dropped: list[dict[str, Any]] = []
    seen: set[ModelShape] = set()
    for target in target_sizes(cfg, budget):
        shape = shape_for_target(float(target), cfg.family)
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
        if reason is None and tpp > cfg.max_tokens_per_param:
            reason = (f"{tpp:.3g} tokens/param is above max_tokens_per_param "
                      f"({cfg.max_tokens_per_param:g})")
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
    for budget in cfg.budgets:
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
