"""A synthetic study analysed as the pipeline does, and a planner that buys (N, D) by 6 N D."""

from __future__ import annotations

import numpy as np
import pytest

from flops_fit import analyse
from flops_fit.fitting.runs.simulated import CHINCHILLA_TRUTH, synthetic_results
from flops_fit.fitting.surface.law import parametric_loss
from flops_fit.planning.flops import tokens_6nd

ANALYSIS = {"bootstrap": {"draws": 120, "seed": 0}, "target_budgets": [1e22]}


def six_nd_planner(round_index: int = 1):
    def planner(budget, targets):
        return [{"experiment_id": f"C{budget:.3g}-N{n:.4g}", "round": round_index,
                 "compute_budget": float(budget), "model_size": float(n),
                 "num_tokens": float(tokens_6nd(budget, n)), "planned_flops": float(budget)}
                for n in targets]
    return planner


def simulate(records, noise=0.01, seed=0, truth=None):
    """Results rows for planned records, losses from the truth with log-normal noise."""
    truth = truth or CHINCHILLA_TRUTH
    rng = np.random.default_rng(seed)
    rows = []
    for r in records:
        true = float(parametric_loss(r["model_size"], r["num_tokens"], truth))
        rows.append({**r, "final_loss": true * float(np.exp(noise * rng.standard_normal())),
                     "status": "completed", "error_message": ""})
    return rows


@pytest.fixture(scope="package")
def pilot_analysis():
    """Three budgets of a pilot whose sizes sit 3x below the true optimum (off-centre)."""
    results = synthetic_results(budgets=(1e18, 1e19, 1e20), sizes_per_budget=5, span=6.0,
                                noise=0.01, seed=1, centre_bias=1 / 3)
    results["round"] = 0
    return results, analyse(results, ANALYSIS, compute_model="6nd")
