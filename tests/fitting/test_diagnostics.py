"""Warnings about fits, and the agreement check between approaches."""

from __future__ import annotations

import numpy as np

from flops_fit.fitting.diagnostics import (
    agreement,
    compute_ratio_warnings,
    surface_bootstrap_warnings,
    surface_fit_warnings,
)
from flops_fit.fitting.parametric import ParametricFit
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
    assert compute_ratio_warnings(1.02) == [] and compute_ratio_warnings(float("nan")) == []
    assert "x 6 N D" in compute_ratio_warnings(0.5)[0]
    assert surface_bootstrap_warnings(np.zeros(10, bool), np.zeros(10, bool)) == []
    warned = surface_bootstrap_warnings(np.ones(10, bool), np.r_[True, np.zeros(9, bool)])
    assert "several basins" in warned[0] and warned[1].startswith("1 of 10 bootstrap draws")
    fit = ParametricFit(E=1.0, A=400.0, B=400.0, alpha=3.5, beta=0.3, objective=0.0, n_runs=9)
    warned = surface_fit_warnings(fit, np.array([2.0, 3.0]), Approach3Params())
    assert "alpha = 3.5 lies outside the start grid (0, 3]" in warned[0]
    assert not any("implausible" in w for w in warned)
    fit.E = 2.5
    assert "implausible" in surface_fit_warnings(fit, np.array([2.0, 3.0]), Approach3Params())[-1]
