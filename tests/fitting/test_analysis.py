"""The whole-analysis functions of `flops_fit.fitting.analysis`: regression tests."""

from __future__ import annotations

import numpy as np
import pytest

from flops_fit.fitting import analysis as fa
from flops_fit.fitting.parametric import fit_parametric, optimal_allocation
from flops_fit.fitting.synthetic import synthetic_results


def test_extrapolation_check_never_fits_on_budgets_above_the_held_out_one():
    """A largest budget with too few runs for Approaches 1-2 is skipped as the held-out one;
    it must not leak into Approach 3's refit, or the check interpolates instead."""
    results = synthetic_results(noise=0.01, seed=5)
    top = results["compute_budget"].max()
    drop = results.index[results["compute_budget"] == top][2:]  # keep 2 runs: below min_runs
    results = results.drop(index=drop).reset_index(drop=True)
    cfg = fa.AnalysisConfig.from_params({"bootstrap": {"enabled": False}})
    runs, _ = fa.prepare_runs(results, cfg)
    check = fa.extrapolation_check(runs, cfg)
    held = check["held_out_budget"]
    assert held == pytest.approx(1e20)
    below = runs[runs["used_in_fit"] & (runs["budget"] < held)]
    fit = fit_parametric(below["model_size"], below["num_tokens"], below["final_loss"], cfg.fit)
    n_pred, _ = optimal_allocation(held, fit.params)
    a3 = check["approach_3"]
    assert a3["budgets_fitted"] == 3
    assert a3["predicted_n_opt"] == pytest.approx(float(n_pred), rel=1e-6)
    for approach in ("approach_1", "approach_2"):
        assert check[approach]["budgets_fitted"] == 3


def test_agreement_message_names_the_configured_confidence_level():
    values = {"approach_1": 0.5, "approach_2": 0.51}
    ivs = {"approach_1": [0.4, 0.6], "approach_2": [0.45, 0.55]}
    out = fa._agreement("exponent_a", values, ivs, 0.9)
    assert out["agree"] is True and "90% intervals" in out["message"]
    assert "95%" not in out["message"]
    assert np.isfinite(out["intervals"]["approach_1"][0])
