"""IsoFLOP sweep planning: model sizes per budget, concrete shapes and token counts.

Framework-free: a notebook user calls `plan_sweep(PlanningConfig.from_params(...))` directly
(`flops_fit.parameters.planning` validates the parameters and chooses the budgets).
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from flops_fit.parameters.planning import MIN_SIZES_PER_BUDGET, PlanningConfig
from flops_fit.planning.flops import compute_6nd
from flops_fit.planning.shapes import ModelShape
from flops_fit.planning.trunks import TrunkPlanError, assign_trunks, check_schedule, design_flops
from flops_fit.schema import DEFAULT_LOSS_UNIT, PLAN_FIELDS

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


def plugin_experiment_id(budget: float, factory: str, kwargs: dict[str, Any], label: str,
                         batch_size: int, num_units: int) -> str:
    """The same, for a plugin model: its factory and every kwarg are part of the identity, so a
    different model never reuses another's stored results."""
    key = json.dumps({"C": float(budget), "factory": factory, "kwargs": kwargs,
                      "batch": batch_size, "D": int(num_units)}, sort_keys=True, default=str)
    digest = hashlib.sha1(key.encode()).hexdigest()[:8]
    return f"C{budget_tag(budget)}-{label}-{digest}"


@dataclass
class StudyModel:
    """What planning needs to know of the model and the data, whichever they are."""

    sizer: Any  # flops_fit.plugins.sizing.GPTLadder | FactorySizes
    flops_per_unit: Callable[[Any], float]
    formula: str  # the resolved flops formula (full, 6nd, measured)
    unit: str = "tokens"  # what D counts
    units_per_example: int = 1  # units in one batch row
    train_units: int | None = None  # the training set's size (None: fresh data every step)
    loss_unit: str = DEFAULT_LOSS_UNIT  # what the loss measures (its declared unit)

    @classmethod
    def builtin(cls, cfg: PlanningConfig, train_units: int | None = None) -> StudyModel:
        """The built-in GPT on the byte corpus with an analytic formula (no torch needed); its
        loss is next-token cross entropy, in nats."""
        from flops_fit.plugins.models import BUILTIN_GPT, ModelPlugin
        from flops_fit.plugins.sizing import FlopsPerUnit, GPTLadder, resolve_formula

        sizer = GPTLadder(cfg.model_family, ModelPlugin(BUILTIN_GPT))
        formula = resolve_formula(cfg.flops_formula, builtin=True)
        return cls(sizer, FlopsPerUnit(sizer, formula), formula, "tokens",
                   cfg.model_family.context_length, train_units, "nats")


def plan_budget(cfg: PlanningConfig, budget: float, study: StudyModel,
                targets: Sequence[float] | None = None, round_index: int = 0):
    """Plan one budget: (records, dropped) where dropped lists {target, reason}.

    `targets`: the target sizes (default: `cfg.model_sizes`' for this budget; snapped to the
    shared grid of sizes under the trunk design); `round_index`: the study round the runs
    belong to (0: the pilot, `flops_fit.study` plans the later ones). Trunks are assigned over
    the whole plan (`flops_fit.planning.trunks.assign_trunks`), not here."""
    units_per_step = cfg.batch_size * study.units_per_example
    unit = study.unit
    records: list[dict[str, Any]] = []
    dropped: list[dict[str, Any]] = []
    seen: set[str] = set()
    plugin = study.sizer.plugin
    for target in cfg.targets(budget, targets):
        model = study.sizer.model_for(float(target))
        n = model.model_size
        if model.identity in seen:
            dropped.append({"compute_budget": budget, "target_model_size": float(target),
                            "model_size": n, "reason": "same model as a neighbouring target"})
            continue
        seen.add(model.identity)
        fpu = study.flops_per_unit(model)
        steps = int(round(budget / (fpu * units_per_step)))
        reason = None
        if steps < 1:
            reason = "budget buys less than one optimiser step"
        units = steps * units_per_step
        tpp = units / n
        if reason is None and tpp < cfg.min_tokens_per_param:
            reason = (f"{tpp:.3g} {unit}/param is below min_tokens_per_param "
                      f"({cfg.min_tokens_per_param:g})")
        if reason is None and tpp > cfg.max_tpp:
            reason = (f"{tpp:.3g} {unit}/param is above max_tokens_per_param "
                      f"({cfg.max_tpp:g})")
        train_units = study.train_units
        if (reason is None and train_units and cfg.max_epochs is not None
                and units > cfg.max_epochs * train_units):
            reason = (f"{units:.3g} {unit} is {units / train_units:.2f} epochs of the "
                      f"training set, above max_epochs ({cfg.max_epochs:g})")
        if reason:
            dropped.append({"compute_budget": budget, "target_model_size": float(target),
                            "model_size": n, "reason": reason})
            continue
        if plugin.builtin:
            eid = experiment_id(budget, ModelShape(**model.kwargs), cfg.batch_size, units)
        else:
            eid = plugin_experiment_id(budget, plugin.factory_path, model.kwargs, model.label,
                                       cfg.batch_size, units)
        record = {
            "experiment_id": eid,
            "round": int(round_index),
            "compute_budget": float(budget),
            "target_model_size": float(target),
            "model_size": n,
            "num_tokens": int(units),
            "tokens_per_param": tpp,
            "data_unit": unit,
            "loss_unit": study.loss_unit,
            "units_per_example": study.units_per_example,
            "model_factory": plugin.factory_path,
            "model_kwargs": dict(model.kwargs),
            **model.fields,
            "batch_size": cfg.batch_size,
            "num_steps": steps,
            "flops_formula": study.formula,
            "flops_per_token": fpu if study.formula == "measured" else int(fpu),
            "planned_flops": float(fpu) * units,
            "flops_6nd": float(compute_6nd(n, units)),
            "corpus_epochs": (units / train_units) if train_units else None,
            "max_epochs": cfg.max_epochs,
        }
        # The contract's field order (schema.PLAN_FIELDS), then anything a sizer adds.
        records.append({**{k: record[k] for k in PLAN_FIELDS if k in record}, **record})
    return records, dropped


def plan_sweep(cfg: PlanningConfig, corpus_train_tokens: int | None = None,
               study: StudyModel | None = None, schedule: Any = None):
    """Plan every budget; returns (records, dropped). Raises PlanningError for a thin budget.

    `study` describes the model and data (default: the built-in GPT on the byte corpus, whose
    training set holds `corpus_train_tokens` tokens); `schedule` is the trainer's learning-rate
    schedule (`params:torch_backend.schedule`), which places a branch's cooldown under
    `planning.design: trunks`."""
    if cfg.design == "trunks":
        try:
            check_schedule(schedule)
        except TrunkPlanError as exc:
            raise PlanningError(str(exc)) from None
    if study is None:
        study = StudyModel.builtin(cfg, corpus_train_tokens)
    train_units = study.train_units
    all_records: list[dict[str, Any]] = []
    all_dropped: list[dict[str, Any]] = []
    for budget in cfg.compute_budgets.budgets():
        records, dropped = plan_budget(cfg, budget, study)
        for d in dropped:
            log.info("Budget %s: dropped target N=%.3g (%s)", budget_tag(budget),
                     d["target_model_size"], d["reason"])
        if len(records) < MIN_SIZES_PER_BUDGET:
            sizes_key = ("planning.model_family widths" if study.sizer.plugin.builtin
                         else "params:training.model.size (the values of the size parameter)")
            reasons = "; ".join(sorted({d["reason"] for d in dropped})) or "none"
            raise PlanningError(
                f"compute budget {budget:.3g} FLOPs keeps only {len(records)} model size(s) "
                f"(need {MIN_SIZES_PER_BUDGET}); dropped because: {reasons}. Change "
                f"params:planning.model_sizes (centre/span or fixed_range), the tokens-per-param "
                f"limits, {sizes_key}, or the budget itself."
            )
        for r in records:
            if train_units and r["num_tokens"] > train_units:
                log.warning("%s sees %.2f epochs of the training set (data repeats)",
                            r["experiment_id"], r["num_tokens"] / train_units)
        all_records.extend(records)
        all_dropped.extend(dropped)
    ids = [r["experiment_id"] for r in all_records]
    if len(set(ids)) != len(ids):
        raise PlanningError("two planned runs share an experiment_id; budgets must be distinct")
    if cfg.design == "trunks":  # the schedule was checked above
        all_records = assign_trunks(all_records, schedule)
    return all_records, all_dropped


def summarise_plan(records: list[dict[str, Any]], dropped: list[dict[str, Any]],
                   time_estimate: dict[str, Any]) -> dict[str, Any]:
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
    first = records[0] if records else {}
    return {
        **design_flops(records),
        "runs": len(records),
        "budgets": len(per_budget),
        "total_planned_flops": total,
        "data_unit": first.get("data_unit", "tokens"),
        "loss_unit": first.get("loss_unit", DEFAULT_LOSS_UNIT),
        "flops_formula": first.get("flops_formula"),
        "model_factory": first.get("model_factory"),
        "estimated_wall_seconds": float(time_estimate["estimated_wall_seconds"]),
        "time_estimate": time_estimate,
        "per_budget": list(per_budget.values()),
        "dropped": dropped,
    }
