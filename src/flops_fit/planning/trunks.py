"""Trunks and branches: one constant-learning-rate run per model size, a cooldown per budget.

Under a warm-up / stable / decay schedule (`flops_fit.nn.schedule`), every step of a run before
its cooldown is the same for any length: the warm-up, then the peak rate. So each model size is
trained once, as a *trunk* at the peak rate, and every planned (N, D) of that size is a
*branch*: it starts from the trunk's state at its `branch_step` (the first step of its cooldown)
and decays to its own D. A branch is a run record like any other, plus
(`schema.TRUNK_PLAN_FIELDS`):

- `trunk_id`: the trunk it comes from (the model, the batch size: what the trunk's steps are);
- `branch_step`: where it leaves the trunk, `num_steps - cooldown_steps_for(num_steps, f)`;
- `warmup_steps`: the trunk's warm-up, shared by all its branches (a run's warm-up is a share of
  its own length, so branches of different lengths need one agreed value: `trunk_warmup`);
- `trunk_steps`: the longest branch of the trunk in the plan (its curve's steps are spaced on it).

Framework-free; `plan_sweep` calls `assign_trunks` under `planning.design: trunks`.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import numpy as np

from flops_fit.nn.schedule import cooldown_steps_for, warmup_steps_for
from flops_fit.schema import TRUNK_PLAN_FIELDS

log = logging.getLogger(__name__)


class TrunkPlanError(ValueError):
    """Trunks cannot be planned with these settings; the message names the key to change."""


def check_schedule(schedule: Any) -> None:
    """Branches are cooldowns of a constant-rate trunk: only a `wsd` schedule has them."""
    if getattr(schedule, "kind", None) != "wsd":
        raise TrunkPlanError(
            "params:planning.design is 'trunks' but params:torch_backend.schedule.kind is "
            f"{getattr(schedule, 'kind', None)!r}: a branch is the cooldown of a constant-rate "
            "trunk, which needs kind: wsd (or set planning.design: points)")


def snap_targets(targets: Sequence[float], anchor: float, ratio: float) -> list[float]:
    """Each target moved to the nearest size of one log grid (`anchor` · `ratio`^k) shared by
    every budget and round, so that a size recurs across budgets and is trained once."""
    step = math.log(ratio)
    if step <= 0:
        raise TrunkPlanError(f"the size ratio between neighbours must be above 1, got {ratio:g}")
    base = math.log(anchor)
    snapped = [math.exp(base + round((math.log(float(t)) - base) / step) * step)
               for t in targets]
    return list(dict.fromkeys(snapped))  # neighbours that snap together count once


def trunk_id(record: Mapping[str, Any]) -> str:
    """Stable id of the trunk a run belongs to: the model (factory and kwargs) and the batch
    size; never the budget or D, which only choose the branch."""
    key = json.dumps({"factory": record.get("model_factory"),
                      "kwargs": record.get("model_kwargs"),
                      "batch": int(record["batch_size"])}, sort_keys=True, default=str)
    digest = hashlib.sha1(key.encode()).hexdigest()[:8]
    label = str(record["experiment_id"]).split("-", 1)[-1].rsplit("-", 1)[0]
    return f"T-{label}-{digest}"


def branch_step(num_steps: int, cooldown_fraction: float) -> int:
    """The step at which a run of `num_steps` starts its cooldown, i.e. leaves its trunk."""
    return int(num_steps) - cooldown_steps_for(int(num_steps), float(cooldown_fraction))


def assign_trunks(records: Sequence[Mapping[str, Any]], schedule: Any,
                  existing: Iterable[Mapping[str, Any]] = ()) -> list[dict[str, Any]]:
    """The plan records as branches of trunks (see the module doc).

    `existing`: runs already planned (a study's earlier rounds). A trunk they name keeps its
    warm-up, so a new, longer branch extends that trunk instead of starting another, unless
    that warm-up is too short for it (under `trunk_warmup_fraction` of its steps). A run whose
    cooldown would start inside its trunk's warm-up (`trunk_warmup`), or that its trunk's
    warm-up is too short for, stays a run of its own (logged)."""
    check_schedule(schedule)
    known: dict[str, dict[str, int]] = {}
    for r in existing:
        if r.get("trunk_id") is not None and r.get("warmup_steps") is not None:
            entry = known.setdefault(str(r["trunk_id"]), {"warmup": int(r["warmup_steps"]),
                                                          "steps": 0})
            entry["steps"] = max(entry["steps"], int(r["num_steps"]))
    out = [dict(r) for r in records]
    groups: dict[str, list[dict[str, Any]]] = {}
    for r in out:
        groups.setdefault(trunk_id(r), []).append(r)
    for tid, branches in groups.items():
        lengths = [int(r["num_steps"]) for r in branches]
        if tid in known:
            warmup = known[tid]["warmup"]
        else:
            warmup = trunk_warmup(min(lengths), max(lengths), schedule)
        members = []
        for r in branches:
            steps = int(r["num_steps"])
            start = branch_step(steps, schedule.cooldown_fraction)
            if start < warmup:
                log.info("%s stays a run of its own: its cooldown would start at step %d, "
                         "inside the warm-up of trunk %s (%d steps)", r["experiment_id"], start,
                         tid, warmup)
            elif warmup < _least_warmup(steps, schedule):  # an earlier round's trunk
                log.info("%s stays a run of its own: %d steps need a warm-up of at least %d, "
                         "trunk %s has %d", r["experiment_id"], steps,
                         _least_warmup(steps, schedule), tid, warmup)
            else:
                members.append((r, start))
        longest = max([int(r["num_steps"]) for r, _ in members]
                      + [known.get(tid, {}).get("steps", 0)], default=0)
        for r, start in members:
            r.update(trunk_id=tid, branch_step=start, warmup_steps=warmup, trunk_steps=longest)
    return out


def reassign(records: Sequence[Mapping[str, Any]], schedule: Any,
             existing: Iterable[Mapping[str, Any]] = ()) -> list[dict[str, Any]]:
    """`records` as branches anew, against `existing` alone: a round's chosen runs, whose trunk
    fields were set while candidates that were not chosen were planned beside them (a new
    trunk's warm-up must come from the runs that will train on it)."""
    unique = {str(r["experiment_id"]): r for r in records}.values()
    bare = [{k: v for k, v in r.items() if k not in TRUNK_PLAN_FIELDS} for r in unique]
    return assign_trunks(bare, schedule, existing)


def _least_warmup(steps: int, schedule: Any) -> int:
    """The shortest warm-up a trunk of `steps` may have: `trunk_warmup_fraction` of it, or the
    run's own warm-up where that is shorter."""
    own = warmup_steps_for(steps, schedule.warmup_fraction, schedule.max_warmup_steps)
    return min(own, max(1, int(round(schedule.trunk_warmup_fraction * steps))))


def trunk_warmup(shortest: int, longest: int, schedule: Any) -> int:
    """The warm-up all branches of a trunk share: the one its longest branch would have on its
    own, cut to end where the shortest branch's cooldown starts, but never shorter than
    `schedule.trunk_warmup_fraction` of the trunk. A long trunk needs a long warm-up: on the
    built-in GPT, 5% of a 1,413-step trunk left its last branch 9% above its cosine run, 10%
    matched it on three seeds. A branch whose cooldown would start inside the warm-up trains as
    a run of its own (`assign_trunks`)."""
    own = warmup_steps_for(longest, schedule.warmup_fraction, schedule.max_warmup_steps)
    return max(_least_warmup(longest, schedule),
               min(own, branch_step(shortest, schedule.cooldown_fraction)))


def is_branch(record: Mapping[str, Any]) -> bool:
    return record.get("trunk_id") is not None


def check_branches(records: Iterable[Mapping[str, Any]], schedule: Any) -> None:
    """Before training branches: the schedule must still place each cooldown where planning
    did (a changed `cooldown_fraction` moves every branch point)."""
    branches = [r for r in records if is_branch(r)]
    if branches:
        check_schedule(schedule)
    for r in branches:
        start = branch_step(int(r["num_steps"]), schedule.cooldown_fraction)
        if start != int(r["branch_step"]):
            raise TrunkPlanError(
                f"{r['experiment_id']}: planned to leave its trunk at step {r['branch_step']}, "
                f"but params:torch_backend.schedule.cooldown_fraction "
                f"({schedule.cooldown_fraction:g}) puts its cooldown at step {start}; re-run "
                "planning")


def trained_steps(records: Sequence[Mapping[str, Any]]) -> dict[str, int]:
    """Steps each planned run trains when the branches of a trunk run in order (shortest
    first): its share of the trunk (from the previous branch point to its own) plus its
    cooldown. A run outside any trunk trains all its steps."""
    out: dict[str, int] = {}
    groups: dict[str, list[Mapping[str, Any]]] = {}
    for r in records:
        if is_branch(r):
            groups.setdefault(str(r["trunk_id"]), []).append(r)
        else:
            out[str(r["experiment_id"])] = int(r["num_steps"])
    for branches in groups.values():
        reached = 0
        for r in sorted(branches, key=lambda r: int(r["branch_step"])):
            start = int(r["branch_step"])
            out[str(r["experiment_id"])] = max(0, start - reached) + int(r["num_steps"]) - start
            reached = max(reached, start)
    return out


def added_flops(records: Sequence[Mapping[str, Any]],
                existing: Iterable[Mapping[str, Any]] = ()) -> float:
    """FLOPs that training `records` adds to a plan that holds `existing` already: a branch
    costs its cooldown and its trunk's steps beyond the furthest branch point planned so far; a
    run of its own costs all its planned FLOPs; a run planned already, nothing."""
    existing = list({str(r["experiment_id"]): r for r in existing}.values())
    seen = {str(r["experiment_id"]) for r in existing}
    records = [r for r in {str(r["experiment_id"]): r for r in records}.values()
               if str(r["experiment_id"]) not in seen]
    trunks = {str(r["trunk_id"]) for r in records if is_branch(r)}
    if not trunks:
        return float(sum(float(r["planned_flops"]) for r in records))
    related = [r for r in existing if is_branch(r) and str(r["trunk_id"]) in trunks]
    before = design_flops(related)["trained_flops"] if related else 0.0
    return design_flops([*related, *records])["trained_flops"] - before


def design_flops(records: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """FLOPs of training the plan as trunks with branches against the same points trained one
    by one (each its own run from step 0)."""
    one_by_one = float(sum(float(r["planned_flops"]) for r in records))
    steps = trained_steps(records)
    trained = float(sum(float(r["planned_flops"]) * steps[str(r["experiment_id"])]
                        / int(r["num_steps"]) for r in records))
    trunks = {str(r["trunk_id"]) for r in records if is_branch(r)}
    sizes = np.array([sum(1 for r in records if r.get("trunk_id") == t) for t in trunks])
    return {
        "design": "trunks" if trunks else "points",
        "trunks": len(trunks),
        "branches_per_trunk": float(sizes.mean()) if sizes.size else 0.0,
        "runs_of_their_own": sum(1 for r in records if not is_branch(r)),
        "one_by_one_flops": one_by_one,
        "trained_flops": trained,
        "trained_share": trained / one_by_one if one_by_one > 0 else float("nan"),
    }
