"""Results-shaped tables from a known surface."""

from __future__ import annotations

import numpy as np

from flops_fit.fitting.runs.simulated import CHINCHILLA_TRUTH, synthetic_results
from flops_fit.fitting.surface.law import optimal_allocation_6nd, parametric_loss
from flops_fit.planning.flops import compute_6nd


def test_runs_lie_on_their_isoflop_line_around_the_optimum():
    df = synthetic_results(budgets=(1e18, 1e20), sizes_per_budget=5, noise=0.0)
    assert len(df) == 10 and df["status"].eq("completed").all()
    np.testing.assert_allclose(compute_6nd(df["model_size"], df["num_tokens"]), df["compute_budget"])
    np.testing.assert_allclose(df["flops_6nd"], df["planned_flops"])
    np.testing.assert_allclose(
        df["final_loss"], parametric_loss(df["model_size"], df["num_tokens"], CHINCHILLA_TRUTH)
    )
    middle = df.iloc[2]
    n_opt, _ = optimal_allocation_6nd(1e18, CHINCHILLA_TRUTH)
    assert np.isclose(middle["model_size"], n_opt)


def test_noise_is_seeded():
    a, b = synthetic_results(seed=4), synthetic_results(seed=4)
    assert a.equals(b) and not a.equals(synthetic_results(seed=5))
