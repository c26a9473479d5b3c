"""The paper's recipe for Approach 3 (its comparison with flops-fit is in test_parametric.py)."""

from __future__ import annotations

import numpy as np

from benchmarks.reference_fit import fit_parametric_reference, reference_starts
from flops_fit.fitting.runs.simulated import synthetic_results


def test_the_grid_has_4500_starts():
    starts = reference_starts()
    assert starts.shape == (4500, 5)
    assert set(np.unique(starts[:, 3])) == {0.0, 0.5, 1.0, 1.5, 2.0}


def test_reports_every_start_it_ran():
    df = synthetic_results(noise=0.01, seed=1, sizes_per_budget=5)
    fit, report = fit_parametric_reference(
        df["model_size"], df["num_tokens"], df["final_loss"], analytic_gradient=True, every=900
    )
    assert report["starts"] == 5 and report["objectives"].shape == (5,)
    assert fit.objective == np.nanmin(report["objectives"])
    assert fit.method["starts"] == 5 and fit.n_runs == len(df)
