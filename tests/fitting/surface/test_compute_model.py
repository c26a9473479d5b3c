"""The compute model C = f(N) D and the compute-optimal allocation under it."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from flops_fit.fitting.isoflop.approaches import fit_isoflop_approaches
from flops_fit.fitting.outputs.optimal_points import optimal_points_table
from flops_fit.fitting.runs.prepare import prepare_runs
from flops_fit.fitting.runs.simulated import synthetic_results
from flops_fit.fitting.surface.compute_model import (
    ComputeModel,
    ComputeModelError,
    allocation_laws,
    compute_model_of,
    compute_model_warnings,
    from_points,
    optimal_allocation,
)
from flops_fit.fitting.surface.law import CHINCHILLA_APPROACH_3 as TRUTH
from flops_fit.fitting.surface.law import allocation_power_laws_6nd, parametric_loss
from flops_fit.fitting.surface.law import optimal_allocation_6nd as closed_form
from flops_fit.fitting.surface.study import fit_surface
from flops_fit.parameters.analysis import AnalysisConfig

BUDGETS = np.logspace(17, 25, 9)
#: a transformer-like overhead: f / 6N falls from 1.8 at 1e6 parameters to 1.05 at 1e10
OVERHEAD = ComputeModel("interpolated", "test", tuple(np.log([1e6, 1e8, 1e10])),
                        tuple(np.log([1.8, 1.3, 1.05])))


def brute_force(c, params, model):
    n = np.geomspace(1e3, 1e14, 400_001)
    return n[np.argmin(parametric_loss(n, model.units(c, n), params))]


def test_a_ratio_of_one_is_the_closed_form_exactly():
    flat = ComputeModel("interpolated", "flat", (0.0, 40.0), (0.0, 0.0))
    n, d = optimal_allocation(BUDGETS, TRUTH, flat)
    n0, d0 = closed_form(BUDGETS, TRUTH)
    np.testing.assert_allclose(n, n0, rtol=1e-12)
    np.testing.assert_allclose(d, d0, rtol=1e-12)
    six = from_points([1e6, 1e7], [6e6, 6e7], "planned as 6nd")
    assert six.is_6nd  # f = 6 N exactly: the closed form itself
    n6, d6 = optimal_allocation(BUDGETS, TRUTH, six)
    assert np.array_equal(n6, n0) and np.array_equal(d6, d0)


def test_the_optimum_minimises_the_loss_on_the_isoflop_curve():
    for c in (1e18, 1e21, 1e24):
        n, d = optimal_allocation(c, TRUTH, OVERHEAD)
        assert float(n) == pytest.approx(brute_force(c, TRUTH, OVERHEAD), rel=1e-4)
        assert float(OVERHEAD.flops_per_unit(n) * d) == pytest.approx(c, rel=1e-12)


def test_the_frontier_has_no_staircase():
    """f must have a continuous slope in N: with a kink at every planned size (a piecewise-linear
    ratio) N_opt(C) sticks at the size over a range of budgets, and the frontier steps."""
    c = np.logspace(17, 27, 801)
    n, _ = optimal_allocation(c, TRUTH, OVERHEAD)
    local = np.diff(np.log(n)) / np.diff(np.log(c))  # the frontier's local exponent
    # no plateau (a staircase's exponent drops to 0 at every planned size); the curvature of
    # log r may still change at a size (PCHIP has a continuous slope, not curvature), which
    # moves the exponent by a few hundredths at most
    assert local.min() > 0.4 and np.abs(np.diff(local)).max() < 0.05
    # across the planned sizes and beyond them, r is smooth and keeps the sizes' values
    x = np.log(np.geomspace(1e4, 1e12, 2001))
    log_r, slope = OVERHEAD.log_ratio_at(x)
    np.testing.assert_allclose(np.diff(log_r) / np.diff(x), 0.5 * (slope[1:] + slope[:-1]),
                               atol=2e-4)
    np.testing.assert_allclose(OVERHEAD.ratio([1e6, 1e8, 1e10]), [1.8, 1.3, 1.05], rtol=1e-12)
    # beyond the ends the end slope fades out: log r levels off, monotone, no overshoot
    far = OVERHEAD.ratio([1e10, 1e11, 1e13, 1e16])
    assert np.all(np.diff(far) < 0) and far[-1] == pytest.approx(far[-2], rel=1e-3)
    near = OVERHEAD.ratio([1e3, 1e2])
    assert near[0] > 1.8 and near[1] == pytest.approx(near[0], rel=1e-3)


def test_vectorised_over_draws_and_budgets():
    rng = np.random.default_rng(0)
    draws = {k: v * np.exp(0.05 * rng.standard_normal(40)) for k, v in TRUTH.items()}
    draws["alpha"][3] = np.nan
    n, d = optimal_allocation(BUDGETS, draws, OVERHEAD)
    assert n.shape == d.shape == (40, BUDGETS.size)
    assert np.isnan(n[3]).all() and np.isfinite(np.delete(n, 3, axis=0)).all()
    one = {k: float(v[7]) for k, v in draws.items()}
    np.testing.assert_allclose(n[7], optimal_allocation(BUDGETS, one, OVERHEAD)[0], rtol=1e-12)


def test_allocation_laws():
    exact = allocation_laws(TRUTH, ComputeModel.six_nd(), BUDGETS)
    assert exact == allocation_power_laws_6nd(TRUTH)
    fitted = allocation_laws(TRUTH, OVERHEAD, BUDGETS[:4])
    n_opt, _ = optimal_allocation(BUDGETS[:4], TRUTH, OVERHEAD)
    slope = np.polyfit(np.log10(BUDGETS[:4]), np.log10(n_opt), 1)[0]
    assert fitted["n_opt"]["exponent"] == pytest.approx(slope, rel=1e-9)
    # the overhead falls with N, so N_opt grows faster than the 6N exponent over these budgets
    assert fitted["n_opt"]["exponent"] > exact["n_opt"]["exponent"]


def test_model_of_runs_and_its_round_trip():
    runs = synthetic_results(sizes_per_budget=5)
    assert compute_model_of(runs, "auto").is_6nd  # no flops_per_token column: 6 N
    with pytest.raises(ComputeModelError, match="no usable flops_per_token.*'6nd'"):
        compute_model_of(runs, "plan")
    runs["flops_per_token"] = 6 * runs["model_size"] * OVERHEAD.ratio(runs["model_size"])
    runs["flops_formula"] = "full"
    model = compute_model_of(runs, "plan")
    assert model.kind == "interpolated" and "flops_per_token (full)" in model.source
    np.testing.assert_allclose(model.flops_per_unit(runs["model_size"]), runs["flops_per_token"],
                               rtol=1e-12)
    back = ComputeModel.from_dict(model.to_dict())
    np.testing.assert_allclose(back.log_n, model.log_n, rtol=1e-12)
    np.testing.assert_allclose(back.log_ratio, model.log_ratio, atol=1e-12)
    assert ComputeModel.from_dict(None).is_6nd
    assert compute_model_of(runs, "6nd").is_6nd
    runs["compute"] = 2 * 6 * runs["model_size"] * runs["num_tokens"]
    table = compute_model_of(runs, "table")
    np.testing.assert_allclose(table.ratio(runs["model_size"]), 2.0, rtol=1e-12)
    with pytest.raises(ComputeModelError, match="analysis.compute_model must be one of"):
        compute_model_of(runs, "flops")


def test_a_6n_model_on_runs_whose_compute_disagrees_says_so():
    runs = synthetic_results(sizes_per_budget=5)
    runs["compute"] = 1.5 * 6 * runs["model_size"] * runs["num_tokens"]
    (warning,) = compute_model_warnings(runs, ComputeModel.six_nd())
    assert "1.5 x 6 N D" in warning and "compute_model: table" in warning


def study_with_overhead(noise=0.0):
    """Chinchilla's surface on IsoFLOP sweeps whose compute is f(N) D, as a full-FLOP study."""
    rows = []
    for c in (1e18, 1e19, 1e20, 1e21):
        centre = brute_force(c, TRUTH, OVERHEAD)
        for i, n in enumerate(np.geomspace(centre / 8, centre * 8, 9)):
            d = float(OVERHEAD.units(c, n))
            rows.append({"experiment_id": f"C{c:.0e}-{i}", "compute_budget": c,
                         "model_size": n, "num_tokens": d, "planned_flops": c,
                         "flops_per_token": float(OVERHEAD.flops_per_unit(n)),
                         "final_loss": float(parametric_loss(n, d, TRUTH)),
                         "status": "completed", "error_message": ""})
    return pd.DataFrame(rows)


def test_approach_3_optima_lie_on_their_isoflop_curves():
    cfg = AnalysisConfig.from_params({"bootstrap": {"enabled": False}})
    runs, _ = prepare_runs(study_with_overhead(), cfg)
    model = compute_model_of(runs, "auto")
    assert not model.is_6nd
    surface = fit_surface(runs, cfg, model)
    table = optimal_points_table(fit_isoflop_approaches(runs, cfg), surface, runs, model)
    a3 = table[table["approach"] == "approach_3"]
    compute = model.flops_per_unit(a3["model_size"]) * a3["num_tokens"]
    np.testing.assert_allclose(compute, a3["compute_budget"], rtol=1e-10)
    for row in a3.itertuples():
        assert row.model_size == pytest.approx(brute_force(row.compute_budget, TRUTH, OVERHEAD),
                                               rel=0.02)
        # the optimum's loss is the fitted surface at (N, C / f(N)): on the budget's curve
        assert row.loss == pytest.approx(
            float(parametric_loss(row.model_size, row.num_tokens, surface.fit)), rel=1e-12)


@pytest.mark.parametrize("call", [
    lambda: optimal_allocation(BUDGETS, TRUTH, None),
    lambda: allocation_laws(TRUTH, None, BUDGETS),
])
def test_no_allocation_assumes_6nd_silently(call):
    with pytest.raises(ComputeModelError, match=r"compute model is required.*six_nd\(\)"):
        call()
