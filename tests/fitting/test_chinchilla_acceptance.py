"""Acceptance: Approach 3 on the digitised Chinchilla runs lands on Epoch AI's re-fit.

Besiroglu et al. (2024), Table 1 (240 runs, the 5 highest losses dropped, Huber delta 1e-3):
E = 1.8172 (SE 0.03), A = 482.01 (124.58), B = 2085.43 (1293.23), alpha = 0.3478 (0.02),
beta = 0.3658 (0.02). Their 95% intervals are about 3.92 SE wide.
"""

from __future__ import annotations

import time

import pandas as pd
import pytest

from flops_fit.fitting.checks.extrapolation import ExtrapolationCheck
from flops_fit.fitting.isoflop.approaches import IsoflopFit, LawFit
from flops_fit.fitting.outputs.scaling_laws import summarise
from flops_fit.fitting.runs.prepare import prepare_runs
from flops_fit.fitting.surface.compute_model import ComputeModel
from flops_fit.fitting.surface.study import fit_surface
from flops_fit.parameters.analysis import AnalysisConfig
from tests.fitting.tables import CHINCHILLA_COLUMNS, CHINCHILLA_CSV, needs_chinchilla

pytestmark = needs_chinchilla

EPOCH = {"E": 1.8172, "A": 482.01, "B": 2085.43, "alpha": 0.3478, "beta": 0.3658}
EPOCH_SE = {"E": 0.03, "A": 124.58, "B": 1293.23, "alpha": 0.02, "beta": 0.02}


@pytest.fixture(scope="module")
def chinchilla_fit():
    # Epoch AI's standard errors come from resampling runs (a pairs bootstrap): compare like
    # with like. The default residual bootstrap holds the design fixed and resamples noise only;
    # on these real runs (a misspecified surface) its intervals are 0.3-0.6x Epoch's.
    cfg = AnalysisConfig.from_params(
        {
            "columns": CHINCHILLA_COLUMNS,
            "drop_highest_loss": 5,
            "outliers": {"enabled": False},
            "bootstrap": {"resample": "runs"},
        }
    )
    table = pd.read_csv(CHINCHILLA_CSV)
    runs, summary = prepare_runs(table, cfg, source=str(CHINCHILLA_CSV))
    t0 = time.process_time()  # CPU time: neighbours on a shared machine do not count
    surface = fit_surface(runs, cfg, ComputeModel.six_nd())
    seconds = time.process_time() - t0
    return runs, summary, surface, seconds, cfg


def test_uses_epochs_240_runs(chinchilla_fit):
    runs, *_ = chinchilla_fit
    assert runs["used_in_fit"].sum() == 240


def test_lands_within_one_percent_of_epoch(chinchilla_fit):
    _, _, surface, _, _ = chinchilla_fit
    fit = surface.fit
    for key in ("E", "alpha", "beta"):
        assert getattr(fit, key) == pytest.approx(EPOCH[key], rel=0.01), key
    for key in ("A", "B"):  # weakly identified: Epoch's own SE is 26 % and 62 %
        assert getattr(fit, key) == pytest.approx(EPOCH[key], rel=0.05), key
    assert fit.a == pytest.approx(EPOCH["beta"] / (EPOCH["alpha"] + EPOCH["beta"]), rel=0.01)


def test_intervals_are_as_wide_as_epochs(chinchilla_fit):
    runs, summary, surface, _, cfg = chinchilla_fit
    doc = summarise(
        summary,
        runs,
        {"approach_1": _empty("approach_1"), "approach_2": _empty("approach_2")},
        surface,
        ExtrapolationCheck(),
        pd.DataFrame(
            columns=["approach", "compute_budget", "model_size", "model_size_lo", "model_size_hi"]
        ),
        cfg,
        ComputeModel.six_nd(),
    )
    for key, se in EPOCH_SE.items():
        lo, hi = doc["approach_3"]["intervals"][key]
        assert lo < getattr(surface.fit, key) < hi
        ratio = (hi - lo) / (3.92 * se)
        assert 0.5 < ratio < 2.0, (key, lo, hi, ratio)


def test_bootstrap_of_1000_draws_is_fast(chinchilla_fit):
    """Fit + 1,000-draw bootstrap in under 10 s of CPU (BLAS capped at one thread)."""
    *_, seconds, cfg = chinchilla_fit
    assert cfg.bootstrap.draws == 1000
    assert seconds < 10.0


def _empty(approach: str) -> IsoflopFit:
    law = LawFit(coefficient=None, exponent=None)
    return IsoflopFit(approach=approach, points=[], laws={"n_opt": law, "d_opt": law, "l_opt": law})
