"""Warnings about fits, and the agreement check between approaches."""

from __future__ import annotations

import numpy as np

from flops_fit.fitting.bootstrap import BootstrapReport, bootstrap_warnings
from flops_fit.fitting.checks.agreement import MAX_AGREEMENT_SPAN, agreement, study_warnings
from flops_fit.fitting.checks.extrapolation import ExtrapolationCheck, ExtrapolationEntry
from flops_fit.fitting.surface.fit import ParametricFit
from flops_fit.fitting.surface.surface_warnings import (
    surface_bootstrap_warnings,
    surface_fit_warnings,
)
from flops_fit.parameters.analysis import Approach3Params


def test_agreement_message_names_the_configured_confidence_level():
    values = {"approach_1": 0.5, "approach_2": 0.51}
    ivs = {"approach_1": [0.4, 0.6], "approach_2": [0.45, 0.55]}
    out = agreement("exponent_a", values, ivs, 0.9)
    assert out["agree"] is True and "90% intervals" in out["message"]
    assert "95%" not in out["message"]
    assert np.isfinite(out["intervals"]["approach_1"][0])



def test_disagreement_and_missing_intervals():
    out = agreement("x", {"a": 1, "b": 2}, {"a": [0.0, 1.0], "b": [2.0, 3.0]}, 0.95)
    assert out["agree"] is False and "DISAGREE" in out["message"]
    out = agreement("x", {"a": 1, "b": 2}, {"a": [0.0, 1.0], "b": None}, 0.95)
    assert out["agree"] is None and "fewer than two" in out["message"]


def test_surface_warnings():
    clean = BootstrapReport("residuals", draws=10, failed_draws=0)
    assert surface_bootstrap_warnings(np.zeros(10, bool), clean) == []
    one = BootstrapReport("residuals", draws=10, failed_draws=1)
    warned = surface_bootstrap_warnings(np.ones(10, bool), one)
    assert "several basins" in warned[0]
    assert warned[1].startswith("approach_3: 1 of 10 bootstrap draws (10.0%) failed")
    assert "UNRELIABLE" not in warned[1]  # 10% <= UNRELIABLE_SHARE
    two = BootstrapReport("residuals", draws=10, failed_draws=2)
    assert "UNRELIABLE" in surface_bootstrap_warnings(np.zeros(10, bool), two)[0]  # 20%
    fit = ParametricFit(E=1.0, A=400.0, B=400.0, alpha=3.5, beta=0.3, objective=0.0, n_runs=9)
    warned = surface_fit_warnings(fit, np.array([2.0, 3.0]), Approach3Params())
    assert "alpha = 3.5 lies outside the start grid (0, 3]" in warned[0]
    assert not any("E " in w for w in warned)
    fit.E = 2.5
    assert surface_fit_warnings(fit, np.array([2.0, 3.0]), Approach3Params())[-1] == (
        "E = 2.5 is implausible: an irreducible loss above the lowest loss 2 that a run reached")
    fit.E = 0.3
    assert surface_fit_warnings(fit, np.array([2.0, 3.0]), Approach3Params())[-1].startswith(
        "E = 0.3, under a fifth of the lowest loss 2: the runs do not show the floor")
    fit.E = 1.364e-157  # at its bound: MNIST-1D's cross entropy, which falls towards 0
    assert surface_fit_warnings(fit, np.array([0.0631, 3.0]), Approach3Params())[-1].startswith(
        "E ≈ 0, under a fifth of the lowest loss 0.0631:")


def test_bootstrap_warnings_count_failed_draws_and_budget_draws():
    assert bootstrap_warnings("approach_2", BootstrapReport("runs", 100, 0, 0, 500)) == []
    few = bootstrap_warnings("approach_2", BootstrapReport("runs", 1000, 20, 25, 5000))
    assert few == [
        "approach_2: 20 of 1000 bootstrap draws (2.0%) failed with a budget whose parabola "
        "failed (25 of 5000 budget-draws: no minimum, vertex outside the sampled sizes or too "
        "few distinct sizes) or fewer than two budgets and are left out of the intervals"
    ]
    many = bootstrap_warnings("approach_2", BootstrapReport("runs", 1000, 201, 260, 3000))
    assert "more than 15% failed, so its intervals are UNRELIABLE" in many[0]


def test_a_held_out_miss_in_n_opt_or_in_the_loss_is_warned_about():
    check = ExtrapolationCheck(1e21, approaches={
        "approach_1": ExtrapolationEntry(loss_rel_error=-0.51, n_opt_rel_error=0.2),
        "approach_2": ExtrapolationEntry(loss_rel_error=0.05, n_opt_rel_error=0.6),
        "approach_3": ExtrapolationEntry(loss_rel_error=0.099, n_opt_rel_error=-0.49)})
    warnings = study_warnings(n_runs=10, n_excluded=0, runs_per_budget=[5, 5], min_runs=3,
                              agreements={}, check=check, budgets=[1e20, 1e21],
                              target_budgets=[1e22])
    assert warnings == [
        "approach_1 misses the held-out budget 1e+21's optimal loss by -51%: treat its "
        "predicted losses with care",
        "approach_2 misses the held-out budget 1e+21's N_opt by +60%: treat its extrapolations "
        "with care"]


def test_an_agreement_that_rests_on_an_unreliable_interval_says_so():
    ivs = {"approach_2": [0.4, 0.6], "approach_3": [0.45, 0.5]}
    out = agreement("exponent_a", {}, ivs, 0.95, unreliable=["approach_2"])
    assert out["agree"] is True
    assert out["message"].endswith("though the interval of approach_2 is flagged unreliable "
                                   "(too many failed bootstrap draws)")
    assert "unreliable" not in agreement("exponent_a", {}, ivs, 0.95)["message"]


def test_intervals_that_overlap_only_by_spanning_orders_of_magnitude_cannot_tell():
    """N_opt at 1e25 FLOPs of a toy study: values 5 orders apart, intervals 6 orders wide."""
    values = {"approach_1": 1.07e18, "approach_2": 1.67e16, "approach_3": 4.5e13}
    ivs = {"approach_1": None, "approach_2": [3.52e12, 3.6e18], "approach_3": [1.64e10, 3.94e16]}
    out = agreement("N_opt at 1e+25 FLOPs", values, ivs, 0.95, max_span=MAX_AGREEMENT_SPAN)
    assert out["agree"] is None and out["too_wide"] == ["approach_2", "approach_3"]
    assert out["message"] == (
        "N_opt at 1e+25 FLOPs: cannot tell: the 95% intervals overlap, but approach_2 "
        "[3.52e+12, 3.6e+18] spans 6 orders of magnitude, approach_3 [1.64e+10, 3.94e+16] spans "
        "6.4 orders of magnitude; an interval wider than 10x cannot show that the approaches "
        "agree")


def test_narrow_intervals_keep_their_verdict_and_a_wide_one_is_set_aside():
    narrow = {"approach_2": [1.07e11, 2.22e11], "approach_3": [1.02e11, 1.86e11]}
    out = agreement("N_opt", {}, narrow, 0.95, max_span=MAX_AGREEMENT_SPAN)
    assert out == {**agreement("N_opt", {}, narrow, 0.95), "too_wide": []}
    assert out["agree"] is True and out["message"].startswith(
        "N_opt: approach_2, approach_3 agree (their 95% intervals overlap on [1.07e+11, 1.86e+11])")
    out = agreement("N_opt", {}, {**narrow, "approach_1": [1e9, 1e13]}, 0.95,
                    max_span=MAX_AGREEMENT_SPAN)
    assert out["agree"] is True and out["too_wide"] == ["approach_1"]
    assert out["message"].endswith("; too wide to judge (wider than 10x): approach_1 "
                                   "[1e+09, 1e+13] spans 4 orders of magnitude")
    # wide intervals that do not overlap still disagree
    out = agreement("N_opt", {}, {"a": [1e9, 1e12], "b": [1e13, 1e16]}, 0.95, max_span=10)
    assert out["agree"] is False and "DISAGREE" in out["message"]
