"""bench_laws' synthetic studies: drawn from each law family, analysed with `law: auto`.

A study is an IsoFLOP sweep on a family's surface (`fitting.runs.simulated.synthetic_results`
with `FAMILY_TRUTHS`: 5 budgets 1e17-1e21, 7 sizes a factor 8 either side of N_opt, C = 6 N D,
log-normal noise), put through `analyse` twice:

- on all its budgets: which family answered, and N_opt(TARGET) with its interval (the truth is
  the family's own optimum);
- without its largest budget: L_opt and N_opt predicted at that budget (beyond the fit), with
  their intervals, against the truth there.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np
from bench_coverage import Z

from flops_fit import analyse
from flops_fit.fitting.runs.simulated import FAMILY_TRUTHS, synthetic_results
from flops_fit.fitting.surface.compute_model import ComputeModel, allocation_of_family
from flops_fit.fitting.surface.law import loss_of_family
from flops_fit.fitting.threads import limit_blas_threads

BUDGETS = (1e17, 1e18, 1e19, 1e20, 1e21)
TARGET = 1e23  # N_opt(C*): two decades beyond the largest budget
SIZES, SPAN = 7, 8.0
SIX_ND = ComputeModel.six_nd()


@dataclass
class Study:
    law: str
    noise: float
    seed: int
    chosen: str
    n_opt: tuple[float, float, float]  # N_opt(TARGET): estimate, lo, hi
    held_loss: tuple[float, float, float]  # L_opt at the largest budget, fitted without it
    held_n_opt: tuple[float, float, float]


def truth(law: str, budget: float) -> tuple[float, float]:
    """The true N_opt and L_opt of family `law` at `budget`."""
    named = FAMILY_TRUTHS[law]
    n, d = allocation_of_family(law, budget, named, SIX_ND)
    return float(n), float(loss_of_family(law, n, d, named))


def _row(result, budget: float) -> dict:
    table = result.predict([budget], approach="approach_3")
    return table.iloc[0].to_dict()


def one_study(law: str, noise: float, seed: int, draws: int) -> Study:
    runs = synthetic_results(budgets=BUDGETS, sizes_per_budget=SIZES, span=SPAN, noise=noise,
                             seed=seed, law=law)
    params = {"law": "auto", "bootstrap": {"draws": draws, "seed": seed},
              "target_budgets": [TARGET]}
    full = analyse(runs, params, compute_model="6nd")
    row = _row(full, TARGET)
    held = analyse(runs[runs["compute_budget"] < BUDGETS[-1]], params, compute_model="6nd")
    h = _row(held, BUDGETS[-1])
    return Study(
        law, noise, seed, full.surface.law,
        (row["model_size"], row["model_size_lo"], row["model_size_hi"]),
        (h["loss"], h["loss_lo"], h["loss_hi"]),
        (h["model_size"], h["model_size_lo"], h["model_size_hi"]),
    )


def studies(rank: int, cells: list[tuple[str, float, int]], draws: int) -> list[Study]:
    """Worker: every (law, noise, seed) of `cells`, one thread of BLAS."""
    del rank
    logging.disable(logging.WARNING)
    with limit_blas_threads(1):
        return [one_study(law, noise, seed, draws) for law, noise, seed in cells]


def hits(values: list[tuple[float, float, float]], true: float) -> list[bool]:
    """Per (estimate, lo, hi) with a finite interval: does it hold `true`?"""
    return [bool(lo <= true <= hi) for _, lo, hi in values if np.isfinite(lo) and np.isfinite(hi)]


def covered(values: list[tuple[float, float, float]], true: float) -> float:
    ok = hits(values, true)
    return float(np.mean(ok)) if ok else float("nan")


def width_over_spread(values: list[tuple[float, float, float]]) -> float:
    """Mean log width of the intervals over the width a normal estimator with the estimates'
    spread would have (2 x 1.96 x SD of their logs)."""
    est = np.log([v for v, _, _ in values])
    widths = [np.log(hi / lo) for _, lo, hi in values if np.isfinite(lo) and np.isfinite(hi)]
    spread = 2 * Z * np.std(est, ddof=1) if len(est) > 1 else float("nan")
    return float(np.mean(widths) / spread) if widths and spread > 0 else float("nan")


def held_loss_hits(records: list[Study]) -> list[bool]:
    """Per study with an interval: does its held-out L_opt interval hold the truth?"""
    return [h for r in records for h in hits([r.held_loss], truth(r.law, BUDGETS[-1])[1])]


def summary(records: list[Study], law: str) -> dict[str, float]:
    """One family's cell: right-family rate, N_opt(TARGET) coverage and width / spread, and
    beyond the fit the coverage of L_opt and N_opt at the held-out largest budget."""
    mine = [r for r in records if r.law == law]
    n_true, _ = truth(law, TARGET)
    n_held, l_held = truth(law, BUDGETS[-1])
    return {
        "studies": len(mine),
        "right_family": float(np.mean([r.chosen == law for r in mine])),
        "n_opt_coverage": covered([r.n_opt for r in mine], n_true),
        "n_opt_width": width_over_spread([r.n_opt for r in mine]),
        "held_loss_coverage": covered([r.held_loss for r in mine], l_held),
        "held_n_opt_coverage": covered([r.held_n_opt for r in mine], n_held),
    }
