"""Planning trunks: sizes shared across budgets, branch points where the cooldowns start, the
trunk's warm-up agreed by its branches, and the FLOPs of the design against runs of their own."""

from __future__ import annotations

import math

import pytest

from flops_fit.parameters.planning import PlanningConfig
from flops_fit.parameters.torch_backend import ScheduleParams
from flops_fit.planning.sweep import PlanningError, plan_sweep
from flops_fit.planning.trunks import (
    TrunkPlanError,
    added_flops,
    assign_trunks,
    branch_step,
    design_flops,
    reassign,
    snap_targets,
    trained_steps,
)
from flops_fit.schema import SchemaError, validate_plan

WSD = ScheduleParams(kind="wsd", cooldown_fraction=0.2, warmup_fraction=0.1,
                     trunk_warmup_fraction=0.05)


def _record(tag: str, steps: int, width: int = 8) -> dict:
    """A run of model `m<width>` (its label in the id, as planning writes it)."""
    return {"experiment_id": f"C{tag}-m{width}-00000000", "compute_budget": 1e9,
            "model_size": 100,
            "num_tokens": steps * 4, "batch_size": 4, "num_steps": steps,
            "flops_formula": "6nd", "planned_flops": 6.0 * 100 * steps * 4,
            "model_factory": "m:f", "model_kwargs": {"width": width}}


def test_the_issue_arithmetic_one_trunk_of_five_budgets_trains_61_percent():
    # D = 1, 2, 4, 8, 16 units: 31 as five runs; one trunk with 20% cooldowns: 12.8 + 6.2 = 19
    records = assign_trunks([_record(f"d{k}", 1000 * 2**k) for k in range(5)], WSD)
    assert len({r["trunk_id"] for r in records}) == 1
    flops = design_flops(records)
    assert flops["trained_share"] == pytest.approx(19 / 31, abs=1e-3)
    assert flops["trunks"] == 1 and flops["branches_per_trunk"] == 5
    steps = trained_steps(records)
    assert steps[records[0]["experiment_id"]] == 1000  # the first branch trains its whole run
    assert steps[records[1]["experiment_id"]] == 2000 - 800  # from 800 to 1600, then 400


def test_branches_share_the_longest_ones_warmup_ended_by_the_shortest_branch_point():
    records = assign_trunks([_record("a", 300), _record("b", 100), _record("c", 50, width=16)],
                            WSD)
    by_id = {r["experiment_id"].split("-")[0][1:]: r for r in records}
    assert by_id["a"]["trunk_id"] == by_id["b"]["trunk_id"] != by_id["c"]["trunk_id"]
    assert by_id["a"]["warmup_steps"] == by_id["b"]["warmup_steps"] == 30  # 10% of 300
    assert by_id["c"]["warmup_steps"] == 5  # 10% of its only branch, 50
    short = assign_trunks([_record("a", 3000), _record("b", 200)], WSD)
    assert {r["warmup_steps"] for r in short} == {160}  # 300 would outlast b's branch point
    assert by_id["a"]["branch_step"] == branch_step(300, 0.2) == 240
    assert by_id["a"]["trunk_steps"] == by_id["b"]["trunk_steps"] == 300
    assert validate_plan(records)


def test_a_trunk_warms_up_over_a_share_of_its_steps_and_too_short_runs_stand_alone():
    # the built-in GPT's d48 trunk: 5% (the shortest branch point, 70) was too short a warm-up
    steps = [88, 177, 353, 706, 1413]
    records = assign_trunks([_record(f"d{k}", n) for k, n in enumerate(steps)],
                            ScheduleParams(kind="wsd"))
    alone = [r for r in records if r.get("trunk_id") is None]
    assert [r["num_steps"] for r in alone] == [88]  # would leave the trunk at step 70
    assert {r["warmup_steps"] for r in records if r.get("trunk_id")} == {141}  # 10% of 1413
    flops = design_flops(records)
    assert flops["runs_of_their_own"] == 1 and flops["branches_per_trunk"] == 4
    assert "trunk_warmup_fraction" not in ScheduleParams(kind="wsd").model_dump()


def test_a_later_round_extends_the_trunk_with_its_warmup_while_it_is_long_enough():
    first = assign_trunks([_record("a", 100)], WSD)
    later = assign_trunks([_record("b", 200), _record("c", 800)], WSD, existing=first)
    assert later[0]["trunk_id"] == first[0]["trunk_id"]
    assert later[0]["warmup_steps"] == first[0]["warmup_steps"] == 10  # not 10% of 200
    assert later[0]["trunk_steps"] == 200
    assert later[1].get("trunk_id") is None  # 800 steps need a warm-up of 40 (5%)


def test_a_cosine_schedule_is_refused_a_run_shorter_than_a_known_warmup_stands_alone():
    with pytest.raises(TrunkPlanError, match="schedule.kind is 'cosine'"):
        assign_trunks([_record("a", 100)], ScheduleParams())
    first = assign_trunks([_record("a", 100)], WSD)  # a warm-up of 10 steps
    alone = assign_trunks([_record("b", 10)], WSD, existing=first)  # would leave at step 8
    assert alone[0].get("trunk_id") is None


def test_a_bad_branch_in_the_plan_is_named():
    record = assign_trunks([_record("a", 100)], WSD)[0]
    with pytest.raises(SchemaError, match="branch_step"):
        validate_plan([{**record, "branch_step": 0}])
    with pytest.raises(SchemaError, match="out of order"):
        validate_plan([{**record, "branch_step": 100}])


def test_targets_snap_to_one_grid_so_sizes_recur_across_budgets():
    cfg = PlanningConfig.from_params({"design": "trunks", "model_sizes": {
        "centre": "power_law", "num": 5, "span_factor": 4.0,
        "power_law": {"coefficient": 0.3, "exponent": 0.5}}})
    a, b = cfg.targets(1e11), cfg.targets(4e11)  # centres 2x apart, grid ratio 2
    assert len(set(a) & set(b)) == 4
    ratio = 4.0 ** 0.5
    assert all(math.isclose(math.log(t) / math.log(ratio), round(math.log(t) / math.log(ratio)),
                            abs_tol=1e-9) for t in a + b)
    assert snap_targets([1.0, 1.1, 4.0], 1.0, 2.0) == [1.0, 4.0]  # neighbours merge


def test_the_trunk_design_plans_the_builtin_gpt_and_needs_wsd():
    params = {"design": "trunks", "compute_budgets": {"values": [1e11, 2e11, 4e11]},
              "model_sizes": {"num": 4, "fixed_range": {"min": 4e3, "max": 6e4}}}
    cfg = PlanningConfig.from_params(params)
    records, _ = plan_sweep(cfg, corpus_train_tokens=10**9, schedule=WSD)
    sizes = {r["trunk_id"]: set() for r in records}
    for r in records:
        sizes[r["trunk_id"]].add(r["compute_budget"])
    assert len(sizes) == 4 and all(len(b) == 3 for b in sizes.values())
    assert design_flops(records)["trained_share"] < 0.75
    with pytest.raises(PlanningError, match="kind: wsd"):
        plan_sweep(cfg, corpus_train_tokens=10**9)


def test_a_branch_added_to_a_trunk_costs_its_cooldown_and_the_trunk_beyond_its_furthest_point():
    first = assign_trunks([_record("a", 1000), _record("b", 2000)], WSD)  # reaches step 1600
    per_step = first[0]["planned_flops"] / 1000
    inside, beyond = assign_trunks([_record("c", 1500), _record("d", 4000)], WSD,
                                   existing=first)
    assert added_flops([inside], first) == pytest.approx(per_step * 300)  # its cooldown
    assert added_flops([beyond], first) == pytest.approx(per_step * (3200 - 1600 + 800))
    alone = _record("e", 50, width=16)
    assert added_flops([alone], first) == alone["planned_flops"]
    assert added_flops(first) == pytest.approx(design_flops(first)["trained_flops"])


def test_chosen_runs_are_branched_anew_without_the_candidates_planned_beside_them():
    candidates = assign_trunks([_record("a", 300), _record("b", 4000)], WSD)
    assert candidates[1]["warmup_steps"] == 240  # b's own cut at a's branch point
    chosen = reassign([candidates[1], candidates[1]], WSD)
    assert len(chosen) == 1 and chosen[0]["warmup_steps"] == 400  # b's own, 10% of 4000
    assert chosen[0]["trunk_steps"] == 4000
    first = assign_trunks([_record("c", 1000), _record("d", 2000)], WSD)
    assert added_flops([first[0]], [first[1], first[1]]) == pytest.approx(
        first[0]["planned_flops"] * 200 / 1000)  # a run twice in the plan counts once
