"""Approaches 1 and 2 over a study: power laws that recover known exponents, flagged budgets."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from flops_fit.fitting.bootstrap import UNRELIABLE_SHARE, plan_draws
from flops_fit.fitting.isoflop.approaches import (
    APPROACH_1_NO_INTERVAL,
    IsoflopFit,
    LawFit,
    approach2_bootstrap,
    fit_isoflop_approaches,
)
from flops_fit.fitting.isoflop.estimators import budget_groups
from flops_fit.fitting.runs.prepare import prepare_runs
from flops_fit.fitting.runs.simulated import CHINCHILLA_TRUTH, synthetic_results
from flops_fit.parameters.analysis import AnalysisConfig

BUDGETS = (1e17, 1e18, 1e19, 1e20, 1e21)


def parabolic_results(
    a: float, k: float, curvature: float, loss_exp: float, sizes: int = 7, step_dex: float = 0.2
) -> pd.DataFrame:
    """IsoFLOP profiles that are exact parabolas in log10 N around N* = k C^a, with a grid point
    on N* itself: both approaches must return exactly the known exponents."""
    rows = []
    for c in BUDGETS:
        n_star = k * c**a
        l_star = 10.0 * c**loss_exp
        for j in range(-(sizes // 2), sizes // 2 + 1):
            n = n_star * 10 ** (j * step_dex)
            rows.append(
                {
                    "experiment_id": f"{c:.0e}-{j}",
                    "compute_budget": c,
                    "model_size": n,
                    "num_tokens": c / (6 * n),
                    "final_loss": l_star + curvature * (j * step_dex) ** 2,
                    "status": "completed",
                }
            )
    return pd.DataFrame(rows)


def _cfg(**overrides):
    return AnalysisConfig.from_params({"bootstrap": {"draws": 200, "seed": 1}, **overrides})


@settings(max_examples=25, deadline=None)
@given(
    a=st.floats(0.3, 0.7),
    k=st.floats(0.01, 10.0),
    curvature=st.floats(0.01, 1.0),
    loss_exp=st.floats(-0.1, -0.02),
)
def test_approaches_1_and_2_recover_a_known_exponent(a, k, curvature, loss_exp):
    cfg = _cfg(outliers={"enabled": False})
    runs, _ = prepare_runs(parabolic_results(a, k, curvature, loss_exp), cfg)
    fits = fit_isoflop_approaches(runs, cfg)
    for approach in ("approach_1", "approach_2"):
        laws = fits[approach].laws
        assert laws["n_opt"].exponent == pytest.approx(a, abs=1e-7)
        assert laws["d_opt"].exponent == pytest.approx(1 - a, abs=1e-7)
        assert laws["l_opt"].exponent == pytest.approx(loss_exp, abs=1e-7)
        assert laws["n_opt"].coefficient == pytest.approx(k, rel=1e-5)
        assert laws["n_opt"].r2 == pytest.approx(1.0)
    # exact parabolas leave no residuals: Approach 2's interval collapses onto the exponent
    lo, hi = fits["approach_2"].laws["n_opt"].interval["exponent"]
    assert lo == pytest.approx(a, abs=1e-7) and hi == pytest.approx(a, abs=1e-7)
    assert fits["approach_1"].laws["n_opt"].interval["exponent"] == [None, None]


def test_approach_2_on_the_chinchilla_surface_is_close_to_the_truth():
    """Noisy synthetic runs around the true optimum: the parabola bias stays small and the
    bootstrap interval covers the truth a = beta / (alpha + beta)."""
    truth_a = CHINCHILLA_TRUTH["beta"] / (CHINCHILLA_TRUTH["alpha"] + CHINCHILLA_TRUTH["beta"])
    cfg = _cfg()
    for seed in range(3):
        runs, _ = prepare_runs(synthetic_results(noise=0.005, seed=seed, span=4.0), cfg)
        law = fit_isoflop_approaches(runs, cfg)["approach_2"].laws["n_opt"]
        assert abs(law.exponent - truth_a) < 0.02
        lo, hi = law.interval["exponent"]
        assert lo - 0.005 <= truth_a <= hi + 0.005


def test_vertex_outside_the_sampled_range_is_flagged_and_left_out(caplog):
    df = parabolic_results(0.5, 1.0, 0.2, -0.05)
    # budget 1e19: keep only the 3 sizes above its optimum, so the vertex lies below the range
    n_star = 1.0 * 1e19**0.5
    drop = (df["compute_budget"] == 1e19) & (df["model_size"] < 1.01 * n_star)
    df = df[~drop].reset_index(drop=True)
    cfg = _cfg(outliers={"enabled": False})
    runs, _ = prepare_runs(df, cfg)
    with caplog.at_level("WARNING"):
        fits = fit_isoflop_approaches(runs, cfg)
    excluded = fits["approach_2"].excluded
    assert [e.compute_budget for e in excluded] == [1e19]
    assert "outside the sampled range" in excluded[0].reason
    assert any(
        "budget 1e+19 FLOPs left out of the approach_2 fit" in w
        for w in fits["approach_2"].warnings
    )
    assert "budget 1e+19" in caplog.text
    assert fits["approach_2"].laws["n_opt"].n_budgets == 4



def test_too_few_runs_per_budget_leave_the_budget_out():
    df = parabolic_results(0.5, 1.0, 0.2, -0.05)
    cfg = _cfg(outliers={"enabled": False}, budgets={"min_runs": 8})
    runs, _ = prepare_runs(df, cfg)
    fits = fit_isoflop_approaches(runs, cfg)
    for fit in fits.values():
        assert isinstance(fit, IsoflopFit) and len(fit.excluded) == len(BUDGETS)
        assert "analysis.budgets.min_runs = 8" in fit.excluded[0].reason
        note = APPROACH_1_NO_INTERVAL if fit.approach == "approach_1" else None
        assert fit.laws["n_opt"] == LawFit(coefficient=None, exponent=None, interval_note=note)
        assert "only 0 usable budget(s): no power law can be fitted" in fit.warnings


def test_law_document_entry():
    assert LawFit(coefficient=None, exponent=None).to_dict() == {
        "coefficient": None,
        "exponent": None,
        "r2": None,
        "interval": {"coefficient": [None, None], "exponent": [None, None]},
        "interval_note": None,
    }


def test_approach_1_has_no_interval_and_says_why():
    cfg = _cfg()
    runs, _ = prepare_runs(synthetic_results(noise=0.01, seed=2), cfg)
    fit = fit_isoflop_approaches(runs, cfg)["approach_1"]
    assert fit.bootstrap is None and fit.interval_note == APPROACH_1_NO_INTERVAL
    for law in fit.laws.values():
        assert law.coefficient is not None and law.exponent_draws is None
        assert law.interval == {"coefficient": [None, None], "exponent": [None, None]}
        assert law.interval_note == APPROACH_1_NO_INTERVAL


def test_approach_2_reports_its_residual_bootstrap():
    cfg = _cfg()
    runs, _ = prepare_runs(synthetic_results(noise=0.01, seed=2), cfg)
    fit = fit_isoflop_approaches(runs, cfg)["approach_2"]
    report = fit.bootstrap
    assert report.scheme == "residuals" and report.draws == 200
    assert report.residual_dof == 5 * (9 - 3)
    assert report.small_sample_factor == pytest.approx(2.0423 / 1.9600, abs=1e-3)  # t_30 / z
    assert report.failed_draws == 0 and report.failed_budget_draws == 0
    assert report.budget_draws == 200 * 5 and not report.unreliable
    assert fit.interval_note is None
    lo, hi = fit.laws["n_opt"].interval["exponent"]
    assert lo < fit.laws["n_opt"].exponent < hi
    assert 0.005 < hi - lo < 0.1


def test_the_residual_bootstrap_is_seeded():
    runs, _ = prepare_runs(synthetic_results(noise=0.01, seed=2), _cfg())

    def exponent_draws(seed):
        cfg = _cfg(bootstrap={"draws": 50, "seed": seed})
        return fit_isoflop_approaches(runs, cfg)["approach_2"].laws["n_opt"].exponent_draws

    assert np.array_equal(exponent_draws(1), exponent_draws(1))
    assert not np.array_equal(exponent_draws(1), exponent_draws(2))


def test_failed_budgets_fail_their_whole_draw_and_are_counted():
    """3 budgets x 5 sizes at 5% noise: parabolas often fail in a draw; such a draw is left
    out whole, never fitted on the other budgets, and every failure is counted."""
    results = synthetic_results(
        budgets=(1e18, 1e19, 1e20), sizes_per_budget=5, span=8.0, noise=0.05, seed=0
    )
    for resample in ("residuals", "runs"):
        cfg = _cfg(bootstrap={"draws": 300, "seed": 1, "resample": resample})
        runs, _ = prepare_runs(results, cfg)
        groups = [g for g in budget_groups(runs)]
        report, per_budget, _ = approach2_bootstrap(groups, plan_draws(runs, cfg.bootstrap), 0.95)
        assert report.failed_budget_draws > 0 and report.failed_draws > 0
        n_opt = per_budget["model_size"]
        # a draw has an optimum for every budget or for none
        assert set(np.isfinite(n_opt).sum(axis=1)) <= {0, len(groups)}
        assert int(np.isfinite(n_opt).all(axis=1).sum()) == report.draws - report.failed_draws
        assert report.failed_budget_draws >= report.failed_draws
        fit = fit_isoflop_approaches(runs, cfg)["approach_2"]
        if len(fit.excluded):
            continue  # the point estimate itself left a budget out: other budgets, other draws
        draws = fit.laws["n_opt"].exponent_draws
        assert int(np.isnan(draws).sum()) == fit.bootstrap.failed_draws == report.failed_draws
        warning = next(w for w in fit.warnings if "bootstrap draws" in w)
        assert f"{report.failed_draws} of 300 bootstrap draws" in warning
        assert f"{report.failed_budget_draws} of {report.budget_draws} budget-draws" in warning
        if fit.bootstrap.failed_draw_share > UNRELIABLE_SHARE:
            assert fit.bootstrap.unreliable and "UNRELIABLE" in warning
            assert fit.laws["n_opt"].interval_note.startswith("unreliable:")
        if resample == "runs":
            assert fit.bootstrap.unreliable  # 5 runs per budget: many draws keep < 3 sizes


def test_resampling_whole_budgets_still_works():
    cfg = _cfg(bootstrap={"draws": 100, "seed": 1, "resample": "budgets"})
    runs, _ = prepare_runs(synthetic_results(noise=0.01, seed=2), cfg)
    fit = fit_isoflop_approaches(runs, cfg)["approach_2"]
    assert fit.bootstrap.scheme == "budgets" and fit.bootstrap.residual_dof is None
    lo, hi = fit.laws["n_opt"].interval["exponent"]
    assert lo < fit.laws["n_opt"].exponent < hi


def test_a_budget_with_too_few_runs_is_logged_as_information_not_a_warning(caplog):
    """A steered study's one-run edge budgets are left out of Approaches 1-2 every round by
    design: said at INFO (scaling_laws.json's warnings count them); a failed parabola warns."""
    df = parabolic_results(0.5, 1.0, 0.2, -0.05)
    df = df[(df["compute_budget"] != 1e19) | (df.index == df.index[df["compute_budget"] == 1e19][0])]
    cfg = _cfg(outliers={"enabled": False})
    runs, _ = prepare_runs(df.reset_index(drop=True), cfg)
    with caplog.at_level("INFO", logger="flops_fit.fitting.isoflop.approaches"):
        fits = fit_isoflop_approaches(runs, cfg)
    left_out = [r for r in caplog.records if "budget 1e+19 FLOPs left out" in r.getMessage()]
    assert left_out and all(r.levelname == "INFO" for r in left_out)
    assert [e.compute_budget for e in fits["approach_2"].excluded] == [1e19]
