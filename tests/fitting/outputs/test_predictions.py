"""Predictions at the target budgets and the curves, with their intervals, for every approach."""

from __future__ import annotations

import numpy as np
import pytest

from flops_fit.fitting.outputs.predictions import predict
from flops_fit.fitting.surface.compute_model import ComputeModel
from flops_fit.fitting.surface.law import optimal_allocation_6nd, parametric_loss
from flops_fit.fitting.surface.study import SurfaceFit
from flops_fit.schema import APPROACHES, CURVE_COLUMNS, PREDICTION_COLUMNS


def test_tables_and_intervals(small_study):
    preds, curves = small_study.predictions, small_study.curves
    assert list(preds.columns) == list(PREDICTION_COLUMNS)
    assert list(curves.columns) == list(CURVE_COLUMNS)
    assert preds["approach"].tolist() == [a for a in APPROACHES for _ in range(3)]
    assert len(curves) == 3 * 12
    a1 = preds["approach"] == "approach_1"  # Approach 1 gives no interval
    for col in ("model_size", "num_tokens", "tokens_per_param", "loss"):
        assert preds.loc[a1, f"{col}_lo"].isna().all() and preds.loc[a1, f"{col}_hi"].isna().all()
        p = preds[~a1]
        assert (p[f"{col}_lo"] <= p[col]).all() and (p[col] <= p[f"{col}_hi"]).all()
    np.testing.assert_allclose(preds["tokens_per_param"], preds["num_tokens"] / preds["model_size"])


def test_approach_3_is_the_surface_allocation(small_study):
    preds = small_study.predictions
    fit = small_study.surface.fit
    a3 = preds[preds["approach"] == "approach_3"]
    n, d = optimal_allocation_6nd(a3["compute_budget"].to_numpy(), fit)
    assert np.array_equal(a3["model_size"], n) and np.array_equal(a3["num_tokens"], d)
    assert np.array_equal(a3["loss"], parametric_loss(n, d, fit))
    draws = small_study.surface.draws
    n_draws, _ = optimal_allocation_6nd(a3["compute_budget"].to_numpy(), draws)
    lo, hi = np.nanpercentile(n_draws, [2.5, 97.5], axis=0)
    np.testing.assert_allclose(a3["model_size_lo"], lo, rtol=1e-12)
    np.testing.assert_allclose(a3["model_size_hi"], hi, rtol=1e-12)


def test_approaches_1_2_evaluate_their_power_laws(small_study):
    preds = small_study.predictions
    for approach in ("approach_1", "approach_2"):
        law = small_study.isoflop[approach].laws["n_opt"]
        rows = preds[preds["approach"] == approach]
        expected = law.coefficient * rows["compute_budget"] ** law.exponent
        np.testing.assert_allclose(rows["model_size"], expected, rtol=1e-12)


def test_unfitted_surface_predicts_nothing(small_study):
    empty = SurfaceFit(fit=None, draws=None, warnings=[], n_runs=0)
    preds, _ = predict(small_study.isoflop, empty, small_study.runs, small_study.cfg,
                       ComputeModel.six_nd())
    a3 = preds[preds["approach"] == "approach_3"]
    assert a3.drop(columns=["approach", "compute_budget"]).isna().all().all()
    assert preds.loc[preds["approach"] == "approach_2", "model_size"].notna().all()
    assert small_study.cfg.confidence_level == pytest.approx(0.95)
