"""Which law family answers: chosen by how well each predicts budgets it did not see.

Rollout (as OLMo-core scores its ladder laws): for each of the `held_out` largest budgets
with `min_runs` runs or more in turn, every family is fitted to the runs of the smaller budgets
only (`fit_folds`: never from a fit that saw the held-out budget) and predicts the held-out
budget's losses. A family's held-out error is the RMS log error of those predictions, pooled
over the folds. The family with the lowest error answers; a family with fewer parameters wins
when its error is within `tie` (relative) of the best, because it will extrapolate no worse and
its interval is narrower. The bootstrap repeats the whole choice (`draw_choice`: in a pilot of
draws, then in every draw unless the pilot all agreed), so an interval carries the uncertainty
of which family is right.

`analysis.law` pins a family instead (no choice, every draw refits that family).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from flops_fit.fitting.laws.families import (
    DEFAULT_LAW,
    FAMILIES,
    log_loss_and_jacobian,
    vanished,
)
from flops_fit.fitting.laws.solver import (
    ROLLOUT_FTOL,
    ROLLOUT_MAX_ITER,
    FamilyFit,
    fit_family,
    fit_subsets,
    minimise,
)


@dataclass(frozen=True)
class Fold:
    """Fit on `train` (the runs of budgets below `budget`), predict `test` (the budget's)."""

    budget: float
    train: np.ndarray  # (n,) bool
    test: np.ndarray  # (n,) bool


def _eligible(budget: np.ndarray, min_runs: int) -> np.ndarray:
    """The budgets (sorted) with at least `min_runs` runs."""
    levels, counts = np.unique(budget, return_counts=True)
    return levels[counts >= min_runs]


#: budgets a fold fits at the least: each IsoFLOP budget is one slice through L(N, D), and on
#: two slices a five-parameter law's N and D terms trade against each other, so a fold fitted
#: to two budgets scores a family by how it fills that freedom, not by how it predicts (on
#: Epoch's runs, fits to two budgets chose the saturating family, which then missed every
#: larger budget's L_opt by up to 16%)
MIN_FIT_BUDGETS = 3


def rollout_folds(budget: np.ndarray, held_out: int, min_runs: int = 1) -> list[Fold]:
    """One fold per held-out budget: the largest `held_out` of the budgets with at least
    `min_runs` runs (a budget of one or two runs judges a law by its noise), with at least
    `MIN_FIT_BUDGETS` such budgets always left below to fit; none with fewer budgets than
    that plus one. A fold fits every run below its budget."""
    budget = np.asarray(budget, dtype=float)
    eligible = _eligible(budget, min_runs)
    if eligible.size <= MIN_FIT_BUDGETS:
        return []
    h = max(1, min(int(held_out), eligible.size - MIN_FIT_BUDGETS))
    return [Fold(float(c), budget < c, budget == c) for c in eligible[-h:]]


def lead_fold(budget: np.ndarray, folds: list[Fold], min_runs: int = 1) -> Fold | None:
    """The eligible budget just below the smallest held-out one, as a fold that is fitted but
    not scored: the chain of fold fits starts there, so that a check fitted on the budgets
    below the largest (the extrapolation check) finds every fit it needs already made. None
    when fewer than `MIN_FIT_BUDGETS` eligible budgets would be left below it."""
    if not folds:
        return None
    budget = np.asarray(budget, dtype=float)
    eligible = _eligible(budget, min_runs)
    below = eligible[eligible < folds[0].budget]
    if below.size <= MIN_FIT_BUDGETS:
        return None
    c = float(below[-1])
    return Fold(c, budget < c, budget == c)


def fit_folds(name: str, x, y, log_l, folds: list[Fold], *, delta: float, objective: str,
              known: dict[float, FamilyFit] | None = None,
              full: np.ndarray | None | bool = False
              ) -> tuple[FamilyFit | None, list[FamilyFit | None]]:
    """Family `name` fitted to each fold's runs (those below its budget): the smallest fold
    from `known[budget]` where a fit of exactly those runs exists, else from its start grid;
    every larger fold from its own `known` fit, else from the smallest fold's fit, whose runs
    it contains. No fold starts from a fit that saw its held-out budget: on a flat valley a
    solver stops near its start, and a start that knew the answer would make the held-out
    error look better than it is. With `full` (True: from the start grid; or a theta) the fit
    of all runs is made in the same batched solves. Returns (the full fit or None, one fit per
    fold: None where a fold has no more runs than the family has parameters)."""
    known = known or {}
    usable = [f for f in folds if f.train.sum() > FAMILIES[name].n_params]
    kw = {"delta": delta, "objective": objective}
    first: list[tuple[np.ndarray, np.ndarray | None]] = []
    if full is not False:
        first.append((np.ones(x.size, dtype=bool), None if full is True else full))
    if usable:
        seen = known.get(usable[0].budget)
        first.append((usable[0].train, seen.theta if seen is not None and seen.ok else None))
    fits = (fit_subsets(name, x, y, log_l, [m for m, _ in first], [s for _, s in first], **kw)
            if first else [])
    full_fit = fits[0] if full is not False else None
    made = {usable[0].budget: fits[-1]} if usable else {}
    rest = usable[1:]
    if rest:
        base = fits[-1].theta if fits[-1].ok else None
        starts_ = []
        for f in rest:
            seen = known.get(f.budget)
            starts_.append(seen.theta if seen is not None and seen.ok else base)
        made.update(zip([f.budget for f in rest],
                        fit_subsets(name, x, y, log_l, [f.train for f in rest], starts_, **kw),
                        strict=True))
    return full_fit, [made.get(f.budget) for f in folds]


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
    held_out_rms: dict[str, float | None] = field(default_factory=dict)
    #: every fit of the runs below a budget made for the folds (the lead fold's too), by
    #: family then budget: a check on those runs starts from them (`choose_law(below=...)`)
    below: dict[str, dict[float, FamilyFit]] = field(default_factory=dict)

    def fold_fits(self, name: str) -> list[FamilyFit | None]:
        """Family `name`'s fit of each scored fold (None where it could not be fitted)."""
        mine = self.below.get(name, {})
        return [mine.get(f.budget) for f in self.folds]
    #: share of bootstrap draws in which each family answered (None without a bootstrap)
    draw_shares: dict[str, float] | None = None
    #: families whose fit to all runs lost its term in N or in D (`families.vanished`): they
    #: cannot answer, in the full data or in a draw
    left_out: list[str] = field(default_factory=list)

    @property
    def unchosen(self) -> bool:
        """`law: auto` with no budget to hold out: Chinchilla's form answers, not chosen."""
        return self.mode == "auto" and not self.folds

    def to_dict(self) -> dict[str, Any]:
        return {
            "mode": self.mode,
            "chosen": self.chosen,
            "reason": self.reason,
            "held_out_budgets": [f.budget for f in self.folds],
            "draw_shares": self.draw_shares,
            "left_out": list(self.left_out),
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
               starts: dict[str, np.ndarray] | None = None,
               below: dict[str, dict[float, FamilyFit]] | None = None) -> LawChoice:
    """Fit every family (or only the pinned one) and choose which answers.

    `chinchilla` is Chinchilla's fit from Approach 3's own solver, used as that family's
    full-data fit so that a study whose answer is Chinchilla's is unchanged. A family in
    `starts` is fitted from that theta instead of its start grid; `below` (a `LawChoice.below`
    of a larger study of the same runs) holds fits of the runs below a budget, the starts of
    the folds they match."""
    kw = {"delta": delta, "objective": objective}
    # Chinchilla's form is fitted under every choice: its parameters are always reported
    names = list(FAMILIES) if law == "auto" else list(dict.fromkeys([law, DEFAULT_LAW]))
    given = {DEFAULT_LAW: chinchilla} if chinchilla is not None else {}
    starts = starts or {}
    folds = rollout_folds(budget, held_out, min_runs) if law == "auto" else []
    if not folds:
        fits = {name: given.get(name) or fit_family(name, x, y, log_l, start=starts.get(name),
                                                    **kw) for name in names}
        if law != "auto":
            return LawChoice("pinned", law, f"pinned by analysis.law = {law}", fits)
        return LawChoice("auto", DEFAULT_LAW, f"fewer than {MIN_FIT_BUDGETS + 1} budgets with "
                         f"{min_runs}+ runs (analysis.budgets.min_runs): no budget can be held "
                         f"out with {MIN_FIT_BUDGETS} below it to fit, so Chinchilla's form "
                         "answers", fits)
    # a check on a subset (given `below`) is itself checked no further: no lead fold
    lead = lead_fold(budget, folds, min_runs) if below is None else None
    chain = ([lead] if lead is not None else []) + folds
    fits, errors, made = {}, {}, {}
    for name in names:
        full = False if name in given else starts.get(name, True)
        full_fit, fits_ = fit_folds(name, x, y, log_l, chain, known=(below or {}).get(name),
                                    full=full, **kw)
        fits[name] = given.get(name, full_fit)
        made[name] = {f.budget: fit for f, fit in zip(chain, fits_, strict=True)
                      if fit is not None}
        sq, count = 0.0, 0
        for fold, fit in zip(folds, fits_[len(chain) - len(folds):], strict=True):
            if fit is None or not fit.ok:
                sq = np.inf
                continue
            err = held_out_error(name, fit.theta, x[fold.test], y[fold.test], log_l[fold.test])
            sq += float(err[0]) ** 2 * int(fold.test.sum())
            count += int(fold.test.sum())
        errors[name] = float(np.sqrt(sq / count)) if count and np.isfinite(sq) else None
    # a family whose fit to all runs lost its term in N or in D cannot answer (`vanished`);
    # Chinchilla's form, the fallback, has identification checks of its own
    smaller = [n for n in names if n != DEFAULT_LAW and fits[n] is not None and fits[n].ok
               and bool(vanished(n, fits[n].theta, x, y)[0])]
    err = np.array([np.inf if errors[n] is None or n in smaller else errors[n] for n in names])
    pick = int(choose(err, [FAMILIES[n].n_params for n in names], tie))
    gone = (f"; {', '.join(smaller)} left out: {'its fit' if len(smaller) == 1 else 'their fits'}"
            " to all runs lost a term in N or in D, a smaller law than the family"
            if smaller else "")
    if pick < 0:
        return LawChoice("auto", DEFAULT_LAW, "no family could be fitted on the smaller "
                         f"budgets alone: Chinchilla's form answers{gone}", fits, folds, errors,
                         below=made, left_out=smaller)
    chosen = names[pick]
    best = names[int(np.argmin(err))]
    why = (f"the lowest held-out error ({errors[chosen]:.2%} RMS) predicting the "
           f"{_budgets(folds)} from the smaller budgets")
    if chosen != best:
        why = (f"within {tie:.0%} of the lowest held-out error ({errors[chosen]:.2%} against "
               f"{best}'s {errors[best]:.2%} RMS) with fewer parameters, predicting the "
               f"{_budgets(folds)} from the smaller budgets")
    return LawChoice("auto", chosen, why + gone, fits, folds, errors, below=made,
                     left_out=smaller)


def _budgets(folds: list[Fold]) -> str:
    cs = ", ".join(f"{f.budget:.3g}" for f in folds)
    return f"budget {cs}" if len(folds) == 1 else f"budgets {cs}"


def rollout_errors(choice: LawChoice, name: str, x, y, log_l_draws: np.ndarray,
                   weights: np.ndarray | None, delta: float, objective: str) -> np.ndarray:
    """Family `name`'s held-out error (B,) in each draw (a row of `log_l_draws` and of
    `weights`): every rollout fold refitted to the draw, warm-started from its fold fit. All
    folds are refined in one batch: a fold's problem counts only its own runs (weight 0 on the
    others), which halves the solver's steps over two folds. A family the choice left out
    (`LawChoice.left_out`) or without a fit of every fold scores inf: it answers no draw."""
    draws, n = log_l_draws.shape
    fits = choice.fold_fits(name)
    if name in choice.left_out or any(f is None or not f.ok for f in fits):
        return np.full(draws, np.inf)
    folds = choice.folds
    base = np.ones((draws, n)) if weights is None else np.asarray(weights, dtype=float)
    train = np.concatenate([base * f.train for f in folds])  # (F B, n)
    start = np.concatenate([np.repeat(f.theta[None, :], draws, axis=0) for f in fits])
    theta, _ = minimise(name, start, x, y, np.tile(log_l_draws, (len(folds), 1)), weights=train,
                        delta=delta, objective=objective, ftol=ROLLOUT_FTOL,
                        max_iter=ROLLOUT_MAX_ITER)
    sq, count = np.zeros(draws), np.zeros(draws)
    for i, fold in enumerate(folds):
        w_te = base[:, fold.test]
        e = held_out_error(name, theta[i * draws:(i + 1) * draws], x[fold.test], y[fold.test],
                           log_l_draws[:, fold.test], w_te)
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
