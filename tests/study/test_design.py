"""The next round's runs: re-centring first, value per FLOP within the allowance."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from flops_fit.study.design import candidate_units, design_round, noise_sd
from tests.study.conftest import six_nd_planner

TARGET = 1e22


def _design(analysis, allowance, known=None, draws=None):
    return design_round(analysis.runs, analysis.scaling_laws,
                        analysis.draws if draws is None else draws, TARGET, allowance,
                        six_nd_planner(), 5, 6.0,
                        set(analysis.runs["experiment_id"]) if known is None else known)


def test_off_centre_budgets_are_recentred_first_and_the_round_fits_its_allowance(pilot_analysis):
    _, analysis = pilot_analysis
    assert any(r["off_centre"] for r in analysis.scaling_laws["diagnostics"]["budgets"])
    allowance = 3e20
    design = _design(analysis, allowance)
    assert design.units and design.cost <= allowance
    kinds = [u.kind for u in design.units]
    assert kinds[0] == "recentre"
    # every re-centring run is larger than what the pilot sampled at its budget (3x too small)
    for unit in design.units:
        if unit.kind == "recentre":
            pilot = analysis.runs[analysis.runs["compute_budget"] == unit.budget]
            assert min(r["model_size"] for r in unit.records) > pilot["model_size"].min()
    assert 0 < design.expected_gain <= 1
    assert design.variance_after < design.variance_before


def test_a_larger_allowance_buys_budgets_toward_the_target(pilot_analysis):
    _, analysis = pilot_analysis
    small, large = _design(analysis, 3e20), _design(analysis, 3e21)
    assert max(u.budget for u in large.units) > 1e20  # a new budget above the pilot's
    assert large.expected_gain >= small.expected_gain
    assert large.cost <= 3e21


def test_runs_already_in_the_study_are_never_planned_again(pilot_analysis):
    _, analysis = pilot_analysis
    first = _design(analysis, 3e21)
    known = set(analysis.runs["experiment_id"]) | {r["experiment_id"] for r in first.records}
    again = _design(analysis, 3e21, known=known)
    assert not {r["experiment_id"] for r in again.records} & known


def test_without_surface_draws_it_recentres_then_extends_unscored(pilot_analysis):
    _, analysis = pilot_analysis
    design = _design(analysis, 3e21, draws=pd.DataFrame({"draw": []}))
    assert design.variance_before is None and design.expected_gain is None
    assert design.units[0].kind == "recentre" and design.cost <= 3e21
    assert "no surface draws" in design.notes[0]


def test_nothing_affordable_chooses_nothing(pilot_analysis):
    _, analysis = pilot_analysis
    design = _design(analysis, 1e17)  # below the cost of any one run
    assert design.units == [] and design.candidates > 0


def test_noise_is_the_parabolas_residual_with_a_floor():
    assert noise_sd({"diagnostics": {"parabola_rms_log_residual": 0.03}}) == 0.03
    assert noise_sd({"diagnostics": {"parabola_rms_log_residual": 1e-5}}) == 0.005
    assert noise_sd({}) == 0.005


def test_edges_sit_at_the_ends_of_the_span_at_fitted_halfway_and_new_budgets(pilot_analysis):
    _, analysis = pilot_analysis
    known = set(analysis.runs["experiment_id"])
    units = candidate_units(analysis.runs, analysis.scaling_laws, TARGET, six_nd_planner(), 5,
                            6.0, known)
    edges = [u for u in units if u.kind == "edges"]
    fitted = sorted({float(c) for c in analysis.runs["compute_budget"]})
    rows = {float(r["compute_budget"]): r
            for r in analysis.scaling_laws["diagnostics"]["budgets"]}
    at = {u.budget: u for u in edges}
    for c in fitted:  # every budget a re-centring unit does not already re-plan
        if rows[c]["off_centre"] or rows[c]["optimum_at_edge"]:
            assert c not in at
            continue
        sizes = sorted(r["model_size"] for r in at[c].records)
        assert sizes[1] / sizes[0] == pytest.approx(36.0, rel=1e-6)  # span 6 each way
        assert np.sqrt(sizes[0] * sizes[1]) == pytest.approx(rows[c]["fitted_optimum"])
    halfway = [c for c in at if fitted[0] < c < fitted[-1] and c not in fitted]
    assert len(halfway) == len(fitted) - 1
    above = [u for u in edges if u.budget > fitted[-1]]
    assert above and all(u.group == f"extend:{u.budget:g}" for u in above)  # or a sweep there


def test_a_round_buys_edges_when_they_remove_the_most_variance_per_flop(pilot_analysis):
    _, analysis = pilot_analysis
    design = _design(analysis, 3e20)
    chosen = [u for u in design.units if u.kind == "edges"]
    assert chosen and all(u.gain > 0 for u in chosen)


def test_branches_of_a_trunk_trained_already_cost_their_cooldowns(pilot_analysis):
    _, analysis = pilot_analysis
    points = six_nd_planner()

    def branches(budget, targets):  # every run a branch of one trunk that reaches far beyond
        steps = int(budget / 1e15)  # 1e15 FLOPs a step (the planned FLOPs are the budget)
        return [{**r, "num_steps": steps, "trunk_id": "T", "branch_step": steps - 200,
                 "warmup_steps": 1, "trunk_steps": 10**9} for r in points(budget, targets)]

    trunk = [{"experiment_id": "far", "trunk_id": "T", "num_steps": 10**9,
              "branch_step": 10**9 - 1, "planned_flops": 1e24}]
    allowance = 3e20
    design = design_round(analysis.runs, analysis.scaling_laws, analysis.draws, TARGET,
                          allowance, branches, 5, 6.0, set(analysis.runs["experiment_id"]),
                          trunk)
    assert design.trained <= allowance < design.cost  # more runs than their FLOPs from step 0
    assert all(u.trained > 0 for u in design.units)  # a unit of runs chosen already is not
    unique = {r["experiment_id"]: r for r in design.records}.values()  # units may share a run
    assert design.trained == pytest.approx(sum(r["planned_flops"] * 200 / r["num_steps"]
                                               for r in unique))
    alone = _design(analysis, allowance)
    assert alone.trained == pytest.approx(alone.cost) and alone.cost <= allowance


def _with_law_error(doc, error=True, approach="approach_3"):
    """`doc` whose Approach 3 carries an N_opt law error of 0.1 per ln C from 1e19 (or none)."""
    law_error = {**(doc["approach_3"]["law_error"] or {}), "centre_budget": 1e19,
                 "n_opt_error_per_ln_c": 0.1, "law": "chinchilla"} if error else None
    return {**doc, "approach_3": {**doc["approach_3"], "law_error": law_error},
            "recommended_approach": {"approach": approach}}


def _round(analysis, doc):
    return design_round(analysis.runs, doc, analysis.draws, TARGET, 1e21, six_nd_planner(), 5,
                        6.0, set(analysis.runs["experiment_id"]))


def test_the_laws_own_error_stays_in_the_forecast_whatever_the_round_buys(pilot_analysis):
    """The answer's interval carries the law's error beyond the fit; runs at the study's
    budgets do not remove it, so it is in the variance before and after alike."""
    _, analysis = pilot_analysis
    plain, widened = (_round(analysis, _with_law_error(analysis.scaling_laws, error))
                      for error in (False, True))
    law_var = (0.1 * np.log(TARGET / 1e19)) ** 2
    assert widened.variance_before == pytest.approx(plain.variance_before + law_var)
    assert widened.variance_after == pytest.approx(plain.variance_after + law_var)
    assert widened.expected_gain < plain.expected_gain
    assert any("law's own error beyond the fit" in n for n in widened.notes)


def test_the_laws_error_counts_only_when_approach_3_answers(pilot_analysis):
    """Approaches 1-2's answers carry no law error: the forecast adds none to theirs."""
    _, analysis = pilot_analysis
    with_law, without = (_round(analysis, _with_law_error(analysis.scaling_laws,
                                                          approach=approach))
                         for approach in ("approach_3", "approach_2"))
    assert with_law.variance_before == pytest.approx(
        without.variance_before + (0.1 * np.log(TARGET / 1e19)) ** 2)
    assert not any("law's own error" in n for n in without.notes)
