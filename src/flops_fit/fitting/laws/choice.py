"""Which law family answers: chosen by how well each predicts budgets it did not see.

Rollout (as OLMo-core scores its ladder laws): for each of the `held_out` largest budgets in
turn, every family is fitted to the runs of the smaller budgets only and predicts the held-out
budget's losses. A family's held-out error is the RMS log error of those predictions, pooled
over the folds. The family with the lowest error answers; a family with fewer parameters wins
when its error is within `tie` (relative) of the best, because it will extrapolate no worse and
its interval is narrower. The bootstrap repeats the whole choice in every draw (`draw_choice`),
so an interval carries the uncertainty of which family is right.

`analysis.law` pins a family instead (no choice, every draw refits that family).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from flops_fit.fitting.laws.families import DEFAULT_LAW, FAMILIES, log_loss_and_jacobian
from flops_fit.fitting.laws.solver import (
    ROLLOUT_FTOL,
    ROLLOUT_MAX_ITER,
    FamilyFit,
    fit_family,
    minimise,
)


@dataclass(frozen=True)
class Fold:
    """Fit on `train` (the runs of budgets below `budget`), predict `test` (the budget's)."""

    budget: float
    train: np.ndarray  # (n,) bool
    test: np.ndarray  # (n,) bool


def rollout_folds(budget: np.ndarray, held_out: int, min_runs: int = 1) -> list[Fold]:
    """One fold per held-out budget: the largest `held_out` of the budgets with at least
    `min_runs` runs (a budget of one or two runs judges a law by its noise), with at least two
    such budgets always left below to fit; none with fewer than three such budgets. A fold
    fits every run below its budget."""
    budget = np.asarray(budget, dtype=float)
    levels, counts = np.unique(budget, return_counts=True)
    eligible = levels[counts >= min_runs]
    if eligible.size < 3:
        return []
    h = max(1, min(int(held_out), eligible.size - 2))
    return [Fold(float(c), budget < c, budget == c) for c in eligible[-h:]]


def choose(errors: np.ndarray, n_params: np.ndarray, tie: float) -> np.ndarray:
    """Index of the answering family along axis 0 of `errors` (F, ...): the lowest error, or
    one with fewer parameters within `tie` of it (the fewest, then the lowest error); -1 where
    no family has a finite error."""
    err = np.where(np.isfinite(errors), errors, np.inf)
    best = err.min(axis=0)
    close = err <= best * (1.0 + tie)
    p = np.asarray(n_params, dtype=float).reshape((-1,) + (1,) * (err.ndim - 1))
    fewest = np.where(close, p, np.inf).min(axis=0)
    pick = np.argmin(np.where(close & (p == fewest), err, np.inf), axis=0)
    return np.where(np.isfinite(best), pick, -1)


@dataclass
class LawChoice:
    """The families fitted to a study, their held-out errors and the one that answers."""

    mode: str  # "auto" or "pinned"
    chosen: str
    reason: str
    fits: dict[str, FamilyFit]
    folds: list[Fold] = field(default_factory=list)
    fold_fits: dict[str, list[FamilyFit]] = field(default_factory=dict)
    held_out_rms: dict[str, float | None] = field(default_factory=dict)
    #: share of bootstrap draws in which each family answered (None without a bootstrap)
    draw_shares: dict[str, float] | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "mode": self.mode,
            "chosen": self.chosen,
            "reason": self.reason,
            "held_out_budgets": [f.budget for f in self.folds],
            "draw_shares": self.draw_shares,
            "families": {
                name: {
                    "formula": FAMILIES[name].formula,
                    "n_params": FAMILIES[name].n_params,
                    "params": fit.params if fit.ok else None,
                    "objective": fit.objective if fit.ok else None,
                    "held_out_rms_log_error": self.held_out_rms.get(name),
                }
                for name, fit in self.fits.items()
            },
        }


def held_out_error(name: str, theta: np.ndarray, x, y, log_l, weights=None) -> np.ndarray:
    """RMS log error (K,) of theta rows (K, p) on runs (x, y) against log_l (n,) or (K, n)."""
    f, _ = log_loss_and_jacobian(name, theta, x, y, jacobian=False)
    w = np.ones_like(f) if weights is None else np.broadcast_to(weights, f.shape)
    with np.errstate(all="ignore"):
        return np.sqrt(np.sum(w * (f - log_l) ** 2, axis=-1) / np.sum(w, axis=-1))


def choose_law(x, y, log_l, budget, *, law: str, held_out: int, tie: float, min_runs: int,
               delta: float, objective: str, chinchilla: FamilyFit | None = None,
               starts: dict[str, np.ndarray] | None = None) -> LawChoice:
    """Fit every family (or only the pinned one) and choose which answers.

    `chinchilla` is Chinchilla's fit from Approach 3's own solver, used as that family's
    full-data fit so that a study whose answer is Chinchilla's is unchanged. A family in
    `starts` is fitted from that theta instead of its start grid."""
    kw = {"delta": delta, "objective": objective}
    # Chinchilla's form is fitted under every choice: its parameters are always reported
    names = list(FAMILIES) if law == "auto" else list(dict.fromkeys([law, DEFAULT_LAW]))
    fits = {}
    for name in names:
        fits[name] = (chinchilla if name == DEFAULT_LAW and chinchilla is not None
                      else fit_family(name, x, y, log_l, start=(starts or {}).get(name), **kw))
    if law != "auto":
        return LawChoice("pinned", law, f"pinned by analysis.law = {law}", fits)
    folds = rollout_folds(budget, held_out, min_runs)
    if not folds:
        return LawChoice("auto", DEFAULT_LAW, f"fewer than three budgets with {min_runs}+ runs "
                         "(analysis.budgets.min_runs): no budget can be held out, so "
                         "Chinchilla's form answers", fits)
    fold_fits, errors = {}, {}
    for name in names:
        fold_fits[name], sq, count = [], 0.0, 0
        for fold in folds:
            fit = (fit_family(name, x[fold.train], y[fold.train], log_l[fold.train],
                              start=_warm(fits[name]), **kw)
                   if fold.train.sum() > FAMILIES[name].n_params else None)
            fold_fits[name].append(fit)
            if fit is None or not fit.ok:
                sq = np.inf
                continue
            err = held_out_error(name, fit.theta, x[fold.test], y[fold.test], log_l[fold.test])
            sq += float(err[0]) ** 2 * int(fold.test.sum())
            count += int(fold.test.sum())
        errors[name] = float(np.sqrt(sq / count)) if count and np.isfinite(sq) else None
    err = np.array([np.inf if errors[n] is None else errors[n] for n in names])
    pick = int(choose(err, [FAMILIES[n].n_params for n in names], tie))
    if pick < 0:
        return LawChoice("auto", DEFAULT_LAW, "no family could be fitted on the smaller "
                         "budgets alone: Chinchilla's form answers", fits, folds, fold_fits,
                         errors)
    chosen = names[pick]
    best = names[int(np.argmin(err))]
    why = (f"the lowest held-out error ({errors[chosen]:.2%} RMS) predicting the "
           f"{_budgets(folds)} from the smaller budgets")
    if chosen != best:
        why = (f"within {tie:.0%} of the lowest held-out error ({errors[chosen]:.2%} against "
               f"{best}'s {errors[best]:.2%} RMS) with fewer parameters, predicting the "
               f"{_budgets(folds)} from the smaller budgets")
    return LawChoice("auto", chosen, why, fits, folds, fold_fits, errors)


def _warm(fit: FamilyFit) -> np.ndarray | None:
    """A fold's start: the family's full-data fit (a fold is a subset of the runs), or its
    start grid when that fit failed."""
    return fit.theta if fit.ok else None


def _budgets(folds: list[Fold]) -> str:
    cs = ", ".join(f"{f.budget:.3g}" for f in folds)
    return f"budget {cs}" if len(folds) == 1 else f"budgets {cs}"


def rollout_errors(choice: LawChoice, name: str, x, y, log_l_draws: np.ndarray,
                   weights: np.ndarray | None, delta: float, objective: str) -> np.ndarray:
    """Family `name`'s held-out error (B,) in each draw (a row of `log_l_draws` and of
    `weights`): every rollout fold refitted to the draw, warm-started from its fold fit."""
    draws = log_l_draws.shape[0]
    sq, count = np.zeros(draws), np.zeros(draws)
    for fold, fold_fit in zip(choice.folds, choice.fold_fits[name], strict=True):
        if fold_fit is None or not fold_fit.ok:
            return np.full(draws, np.inf)
        w_tr = None if weights is None else weights[:, fold.train]
        w_te = np.ones((draws, int(fold.test.sum()))) if weights is None else weights[:, fold.test]
        t, _ = minimise(name, np.repeat(fold_fit.theta[None, :], draws, axis=0), x[fold.train],
                        y[fold.train], log_l_draws[:, fold.train], weights=w_tr, delta=delta,
                        objective=objective, ftol=ROLLOUT_FTOL, max_iter=ROLLOUT_MAX_ITER)
        e = held_out_error(name, t, x[fold.test], y[fold.test], log_l_draws[:, fold.test], w_te)
        sq += e**2 * w_te.sum(axis=1)
        count += w_te.sum(axis=1)
    with np.errstate(all="ignore"):
        return np.sqrt(sq / count)


def draw_choice(choice: LawChoice, x, y, log_l_draws: np.ndarray, weights: np.ndarray | None,
                *, tie: float, pilot: int, delta: float, objective: str
                ) -> tuple[np.ndarray, str]:
    """The family (index into `choice.fits`) that answers in each draw, and how it was chosen.

    The first `pilot` draws repeat the whole choice (`rollout_errors` of every family, then
    `choose`). When every one of them makes the full data's choice, the other draws keep it:
    another family would answer in fewer than 3/pilot of the draws (95% confidence), a share
    that moves no percentile of the interval beyond its Monte-Carlo noise. Otherwise every
    draw repeats the choice."""
    names = list(choice.fits)
    chosen = names.index(choice.chosen)
    draws = log_l_draws.shape[0]
    pick = np.full(draws, chosen)
    if choice.mode != "auto" or not choice.folds:
        return pick, f"every draw refits {choice.chosen}"
    n_params = [FAMILIES[n].n_params for n in names]
    kw = {"delta": delta, "objective": objective}

    def repeat(rows: slice) -> np.ndarray:
        w = None if weights is None else weights[rows]
        errors = np.stack([rollout_errors(choice, name, x, y, log_l_draws[rows], w, **kw)
                           for name in names])
        got = choose(errors, n_params, tie)
        return np.where(got < 0, chosen, got)

    m = min(draws, int(pilot))
    pick[:m] = repeat(slice(0, m))
    if m == draws:
        return pick, "every draw repeats the choice by held-out error"
    if np.any(pick[:m] != chosen):
        pick[m:] = repeat(slice(m, draws))
        return pick, (f"every draw repeats the choice by held-out error (the first {m} did "
                      "not all agree)")
    return pick, (f"the first {m} draws repeated the choice by held-out error and all chose "
                  f"{choice.chosen}, so the other draws keep it (another family's share is "
                  f"below {3 / m:.0%} at 95% confidence)")
