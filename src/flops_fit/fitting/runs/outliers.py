"""The outlier screen: runs whose log-loss lies too far off their budget's IsoFLOP curve for
the study's own noise (`find_outliers`, configured by `params:analysis.outliers`).

The study is one linear model: per budget with at least `min_points` used runs, log(loss) is a
polynomial in log10 N, and all budgets share one noise level. A run's score is its externally
studentized residual: its log-loss minus the curve fitted to its budget's other runs, divided
by that difference's standard deviation, with the noise estimated from every screened budget's
residual sum of squares leaving the run itself out (floored at `min_scale`). Under Gaussian
noise that is Student-t with the pooled degrees of freedom, so the limit is Bonferroni's: the
t quantile at `alpha / (2 n)` for the n screened runs, i.e. an honest study loses any run with
probability about `alpha`. Pooling is the point: a per-budget scale from ~9 residuals of a
4-parameter robust fit was too small and too noisy (at 3 % noise the old per-budget MAD rule
removed honest runs in ~40 of 100 synthetic studies). The runs left out are found together (so
that two bad runs, in one budget or two, do not hide each other through the noise estimate): a
start by worst-first deletion within each budget at a robust noise estimate (1.4826 x the
median standardized residual of all screened runs), then rounds that re-fit the kept runs,
re-estimate the noise and re-test every run until the set stops changing; worst first, at most
`max_fraction` of a budget.

The curve is a quadratic: its misfit to a Chinchilla profile stays within the pooled noise (no
honest run removed on sweeps of up to 3 decades at 0.5-2 % noise), and a run at the end of a
sweep has leverage 0.66 on a 9-size quadratic but 0.86 on a cubic, so an end run is predicted
from the others with 1.7x rather than 2.7x the noise SD. But a quadratic misfits profiles that
rise more steeply on one side of their minimum than on the other (a classifier's loss against
its capacity), and predicts their end runs far from where honest runs land. So with `degree:
auto` (the default) the screen asks whether the profiles lean one way on balance
(`shared_skew`, on the runs the quadratic screen keeps, so that diverged runs it catches do
not make the profiles look skewed); if they do, every budget with CUBIC_MIN_SIZES sizes or more
is screened again with a cubic, and the log says so. `degree: 2` or `3` pins the curve.

Calibration (100 synthetic studies per design and noise level; 5 budgets x 9 sizes around
N_opt, x 9 off-centre at N_opt/2-32 N_opt, x 7, and 3 x 5; tests/fitting/runs/test_outliers.py
repeats it with 75): at 1, 2, 3 and 5 % log-normal noise one honest run was removed in all
1,600 studies (3 x 5 at 5 %); 2,000 studies per cell remove 0-2 runs per thousand studies, as
alpha says. A run at 2x the loss is caught in every study anywhere inside a 9- or 7-size
sweep, at its ends in 99-100 % (9 sizes) and 81 % (7 sizes, 5 % noise; 100 % up to 3 %). On
3 x 5 the noise has 6 degrees of freedom: 2x is caught everywhere at 1 % noise, inside the
sweep at 2 %, in 91 % at 3 % and 30 % at 5 %, at the ends in 44 % at 2 % and rarely above. A
10 % spike at 1 % noise is caught inside the sweep of 5 x 7 and 5 x 9 studies (94 % of 3 x 8).
An end run that is only mildly off partly bends the curve to itself; then, rarely (2 of 100
for 2x at 5 % noise on 5 x 7), its neighbour is flagged instead. On the digitised Chinchilla
runs the rule flags the four highest losses of all, the steep large-model wall of the 9.4e18
budget (Epoch AI drop the five highest); a cubic (`degree: 3`) flags two of them.
"""

from __future__ import annotations

import functools
import logging
import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
from scipy.stats import norm
from scipy.stats import t as student_t

from flops_fit.parameters.analysis import OutlierRule

log = logging.getLogger(__name__)

#: `degree: auto` screens with cubics when the profiles' skew score is beyond this two-sided
#: normal quantile (1 %)
SKEW_LIMIT = float(norm.isf(0.01 / 2))
#: the skew is judged only on at least this many budgets (the most skewed one set aside)
SKEW_MIN_BUDGETS = 4
#: a budget's profile counts towards the skew, and is screened with a cubic, only with this
#: many distinct sizes: 4 determine a cubic, 2 more leave its residuals room, and a cubic
#: screen keeps degree + 2 = 5 runs, so it can still leave one out
CUBIC_MIN_SIZES = 6


@dataclass
class _Budget:
    """One screened budget: its runs' index, curve design matrix, log-losses."""

    index: np.ndarray
    design: np.ndarray
    y: np.ndarray
    budget: float
    max_flag: int


@dataclass
class _Scores:
    """Per run of a budget, against the curve fitted to its kept runs."""

    deleted: np.ndarray  # log-loss minus the curve fitted without the run
    var: np.ndarray  # variance of `deleted` in units of the noise variance
    own: np.ndarray  # the run's share of the kept runs' RSS (0 for a left-out run)
    rss: float  # RSS of the kept runs
    dof: int  # kept runs minus curve parameters
    coef: np.ndarray  # the curve through the kept runs, highest power first
    coef_var: np.ndarray  # their variances in units of the noise variance: diag (X'X)^+

    @property
    def standardized(self) -> np.ndarray:
        """Deleted residuals in units of the noise SD."""
        return self.deleted / np.sqrt(self.var)


def _curve_design(log_n: np.ndarray, degree: int) -> np.ndarray:
    """Polynomial basis in log10 N, centred and scaled to the budget's range (well conditioned)."""
    u = log_n - log_n.mean()
    width = float(np.ptp(u))
    return np.vander(u / width if width > 0 else u, degree + 1)


def _robust_sd(standardized: np.ndarray, floor: float) -> float:
    """1.4826 x the median |standardized residual|, floored: a noise scale that a few bad runs
    do not inflate."""
    return max(1.4826 * float(np.median(np.abs(standardized))), floor)


def _cubic_fits(log_n: np.ndarray) -> bool:
    """Whether a budget has the CUBIC_MIN_SIZES distinct sizes a cubic needs."""
    return np.unique(log_n).size >= CUBIC_MIN_SIZES


def _deleted_residuals(b: _Budget, left_out: np.ndarray) -> _Scores:
    """Each run's residual from the least-squares curve through the budget's other kept runs.

    A kept run with leverage h: residual e / (1 - h), variance 1 / (1 - h); a left-out run: its
    prediction error, variance 1 + x'(X'X)^-1 x (X: the kept runs). The fit is by SVD: a budget
    with fewer distinct N than the curve has parameters gets the minimum-norm fit of its rank.
    """
    kept = ~left_out
    u, sv, vt = np.linalg.svd(b.design[kept], full_matrices=False)
    rank = int((sv > sv[0] * 1e-10).sum())  # < degree + 1 when the budget has few distinct N
    u, sv, vt = u[:, :rank], sv[:rank], vt[:rank]
    scaled_v = vt.T / sv  # (X'X)^+ = scaled_v @ scaled_v.T
    coef = scaled_v @ (u.T @ b.y[kept])
    resid = b.y - b.design @ coef
    lev = ((b.design @ scaled_v) ** 2).sum(axis=1)  # x'(X'X)^+ x
    room = np.maximum(1.0 - lev, 1e-12)  # a kept run at leverage 1 cannot be tested: score ~0
    deleted = np.where(kept, resid / room, resid)
    var = np.where(kept, 1.0 / room, 1.0 + lev)
    own = np.where(kept, resid**2 / room, 0.0)
    return _Scores(deleted, var, own, float(resid[kept] @ resid[kept]), int(kept.sum()) - rank,
                   coef, (scaled_v**2).sum(axis=1))


def shared_skew(profiles: list[tuple[np.ndarray, np.ndarray]], min_scale: float
                ) -> tuple[float, int]:
    """How far the IsoFLOP profiles (log10 N, log-loss per budget) lean one way on balance, as
    a standard normal score, and how many budgets it was judged on; NaN with fewer than
    SKEW_MIN_BUDGETS profiles of CUBIC_MIN_SIZES distinct sizes or more.

    Each budget's cubic coefficient over its standard error (the noise a robust scale of all
    budgets' cubic residuals, floored at `min_scale` as the screen's is) is a z; their Stouffer
    sum over the budgets, the one with the largest |z| set aside, is the score. A lone diverged
    run makes one profile lean, and that budget is set aside; a steep wall on one side of every
    budget's minimum makes them all lean the same way."""
    fits = [_deleted_residuals(_Budget(np.arange(log_n.size), _curve_design(log_n, 3), log_loss,
                                       math.nan, 0), np.zeros(log_n.size, bool))
            for log_n, log_loss in profiles if _cubic_fits(log_n)]
    if len(fits) < SKEW_MIN_BUDGETS:
        return float("nan"), len(fits)
    noise = _robust_sd(np.concatenate([f.standardized for f in fits]), min_scale)
    coef = np.array([f.coef[0] for f in fits])
    var = np.array([f.coef_var[0] for f in fits])
    z = coef / (noise * np.sqrt(np.maximum(var, 1e-300)))
    rest = np.delete(z, int(np.argmax(np.abs(z))))
    return float(rest.sum() / math.sqrt(rest.size)), len(fits)


def _budget_rows(runs: pd.DataFrame, rule: OutlierRule):
    """(index, log10 N, log-loss, budget) of the used runs of every budget with at least
    `rule.min_points` of them (NumPy, no groupby: the calibration test calls this thousands of
    times)."""
    used = runs.loc[runs["used_in_fit"].to_numpy(bool)]
    codes, _ = pd.factorize(used["budget_id"], sort=True)  # no budget: -1, never screened
    index = used.index.to_numpy()
    log_n = np.log10(used["model_size"].to_numpy(float))
    log_loss = np.log(used["final_loss"].to_numpy(float))
    budget = used["budget"].to_numpy(float)
    return [(index[rows], log_n[rows], log_loss[rows], float(budget[rows[0]]))
            for code in range(int(codes.max(initial=-1)) + 1)
            if len(rows := np.flatnonzero(codes == code)) >= rule.min_points]


def _screened(groups, rule: OutlierRule, degree: int) -> list[_Budget]:
    """The budgets' screening curves of `degree` (a cubic only where a budget has
    CUBIC_MIN_SIZES distinct sizes, else a quadratic)."""
    out = []
    for index, log_n, log_loss, budget in groups:
        deg = 2 if degree == 3 and not _cubic_fits(log_n) else degree
        if len(index) < max(rule.min_points, deg + 2):
            continue
        out.append(_Budget(  # at most max_fraction, and always deg + 2 kept
            index, _curve_design(log_n, deg), log_loss, budget,
            min(int(math.floor(rule.max_fraction * len(index))), len(index) - deg - 2)))
    return out


def find_outliers(runs: pd.DataFrame, rule: OutlierRule | None = None) -> dict[Any, str]:
    """Runs too far off their budget's IsoFLOP curve for the study's own noise (index ->
    reason); `rule` is `params:analysis.outliers` (see the module)."""
    rule = rule or OutlierRule()
    groups = _budget_rows(runs, rule)
    if rule.degree != "auto":
        return _flag(_screened(groups, rule, int(rule.degree)), rule)
    flagged = _flag(_screened(groups, rule, 2), rule)
    score, judged = shared_skew(
        [(log_n[keep], log_loss[keep]) for index, log_n, log_loss, _ in groups
         if (keep := ~np.isin(index, list(flagged))).any()], rule.min_scale)
    if not abs(score) > SKEW_LIMIT:
        return flagged
    log.info("Outlier screen: the IsoFLOP profiles lean one way on balance (skew score %.1f over "
             "%d of %d budgets, the most skewed set aside), so each budget with %d+ sizes is "
             "screened with a cubic in log10 N (analysis.outliers.degree: auto)",
             score, judged - 1, judged, CUBIC_MIN_SIZES)
    return _flag(_screened(groups, rule, 3), rule)


def _flag(budgets: list[_Budget], rule: OutlierRule) -> dict[Any, str]:
    """The screen itself on `budgets` (see the module): index -> reason."""
    if not budgets:
        return {}
    n_runs = sum(len(b.y) for b in budgets)

    @functools.cache
    def limit(dof: int) -> float:  # Bonferroni: two-sided alpha over the n screened runs
        return float(student_t.isf(rule.alpha / (2 * n_runs), dof)) if dof >= 1 else math.inf

    left = [np.zeros(len(b.y), bool) for b in budgets]
    scores = [_deleted_residuals(b, f) for b, f in zip(budgets, left, strict=True)]
    robust = _robust_sd(np.concatenate([s.standardized for s in scores]), rule.min_scale)
    start_limit = limit(sum(s.dof for s in scores) - 1)
    for b, f in zip(budgets, left, strict=True):  # start: worst first within each budget
        while f.sum() < b.max_flag:
            s = _deleted_residuals(b, f)
            z = np.where(f, 0.0, np.abs(s.deleted) / (robust * np.sqrt(s.var)))
            j = int(np.argmax(z))
            if z[j] <= start_limit:
                break
            f[j] = True
    for _ in range(20):
        scores = [_deleted_residuals(b, f) for b, f in zip(budgets, left, strict=True)]
        rss, dof = sum(s.rss for s in scores), sum(s.dof for s in scores)
        tested, new_left = [], []
        for b, f, s in zip(budgets, left, scores, strict=True):
            dof_i = dof - (~f).astype(int)
            noise = np.sqrt(np.maximum(rss - s.own, 0.0) / np.maximum(dof_i, 1))
            noise = np.maximum(noise, rule.min_scale)
            t = np.abs(s.deleted) / (noise * np.sqrt(s.var))
            lim = np.where(f, limit(dof), limit(dof - 1))
            over = np.flatnonzero(t > lim)
            worst = over[np.argsort(-t[over])][: b.max_flag]
            new_left.append(np.isin(np.arange(len(t)), worst))
            tested.append((t, lim, noise))
        done = all((a == c).all() for a, c in zip(new_left, left, strict=True))
        left = new_left
        if done:
            break
    flagged: dict[Any, str] = {}
    for b, f, s, (t, lim, noise) in zip(budgets, left, scores, tested, strict=True):
        for j in np.flatnonzero(f):
            flagged[b.index[j]] = (
                f"outlier: log-loss {s.deleted[j]:+.3f} off the budget {b.budget:.3g} IsoFLOP "
                f"curve, {t[j]:.1f} noise SDs (limit {lim[j]:.1f}; noise {noise[j]:.4f} from all "
                f"{len(budgets)} screened budgets; analysis.outliers)"
            )
    return flagged
