"""Approaches 1 and 2 over a study: power laws that recover known exponents, flagged budgets."""

from __future__ import annotations

import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from flops_fit.fitting.analysis_runs import prepare_runs
from flops_fit.fitting.isoflop_laws import IsoflopFit, LawFit, fit_isoflop_approaches
from flops_fit.fitting.synthetic import CHINCHILLA_TRUTH, synthetic_results
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
        lo, hi = laws["n_opt"].interval["exponent"]
        assert lo <= a + 1e-9 and a - 1e-9 <= hi


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
        assert fit.laws["n_opt"] == LawFit(coefficient=None, exponent=None)
        assert "only 0 usable budget(s): no power law can be fitted" in fit.warnings


def test_law_document_entry():
    assert LawFit(coefficient=None, exponent=None).to_dict() == {
        "coefficient": None,
        "exponent": None,
        "r2": None,
        "interval": {"coefficient": [None, None], "exponent": [None, None]},
    }
