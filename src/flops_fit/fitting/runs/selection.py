"""Which runs the fits use, and why the others are left out.

`select_runs` marks failed runs, runs without a finite positive loss (`schema.loss_problem`, the
rule training applies too; one WARNING counts and names them) or a budget, the
`analysis.drop_highest_loss` highest losses and outliers (`find_outliers`, configured by
`params:analysis.outliers`), each with its reason; `check_enough_budgets` refuses a table whose
usable runs span too few budgets, saying which runs were left out and why.
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

from flops_fit.fitting.runs.table import RunsTableError
from flops_fit.parameters.analysis import AnalysisConfig, OutlierRule
from flops_fit.schema import loss_problem

log = logging.getLogger(__name__)

#: how many left-out runs a WARNING names before "and k more"
MAX_NAMED = 20


def check_enough_budgets(runs: pd.DataFrame, minimum: int, source: str) -> None:
    """Raise RunsTableError if the usable runs span fewer than `minimum` budgets."""
    used = runs[runs["used_in_fit"]] if "used_in_fit" in runs.columns else runs
    count = int(used["budget_id"].dropna().nunique())
    if count < minimum:
        column = (
            runs.attrs.get("columns_used", {}).get("compute_budget")
            or runs.attrs.get("columns_used", {}).get("compute")
            or "C = 6 N D"
        )
        budgets = ", ".join(f"{b:.3g}" for b in sorted(used["budget"].dropna().unique()))
        raise RunsTableError(
            f"{source}: the usable runs span {count} compute budget(s) ({budgets or 'none'}), "
            f"grouped from column '{column}'; at least {minimum} are needed to fit a scaling "
            f"law (analysis.min_budgets). Add runs at more budgets, or check "
            f"analysis.budgets.gap_dex"
            + _left_out_summary(runs)
        )


#: the fewest distinct model sizes among the usable runs: with one, nothing says how the loss
#: moves with N (a budget's parabola needs three; `analysis.budgets` and the fits say so)
MIN_MODEL_SIZES = 2


def check_runs_vary(runs: pd.DataFrame, source: str) -> None:
    """Raise RunsTableError if the usable runs cannot show how the loss moves with N: one
    model size, or one loss, for every run."""
    used = runs[runs["used_in_fit"]] if "used_in_fit" in runs.columns else runs
    sizes = np.unique(used["model_size"].to_numpy(float))
    if sizes.size < MIN_MODEL_SIZES:
        column = runs.attrs.get("columns_used", {}).get("model_size", "model_size")
        shown = ", ".join(f"{n:.4g}" for n in sizes) or "none"
        raise RunsTableError(
            f"{source}: every usable run has the same model size ({shown}, column "
            f"'{column}'): nothing says how the loss moves with N. An IsoFLOP analysis needs "
            f"several sizes per budget (check analysis.columns.model_size)"
            + _left_out_summary(runs)
        )
    losses = np.unique(used["final_loss"].to_numpy(float))
    if losses.size == 1:
        column = runs.attrs.get("columns_used", {}).get("loss", "final_loss")
        raise RunsTableError(
            f"{source}: every usable run has the same loss ({losses[0]:.6g}, column "
            f"'{column}'): nothing moves with N or D, so there is no scaling law to fit. "
            f"Check analysis.columns.loss" + _left_out_summary(runs)
        )


def _left_out_summary(runs: pd.DataFrame) -> str:
    """'. 57 of 57 runs are left out: 57 status failed (e.g. ...)' -- empty when none are."""
    if "reason" not in runs.columns or "used_in_fit" not in runs.columns:
        return ""
    reasons = runs.loc[~runs["used_in_fit"].astype(bool), "reason"].astype(str)
    if reasons.empty:
        return ""
    kinds = reasons.str.split(":", n=1).str[0].str.split("(", n=1).str[0].str.strip()
    parts = []
    for kind, count in kinds.value_counts().items():
        example = reasons[kinds == kind].iloc[0]
        parts.append(f"{count} {kind} (e.g. {example[:160]!r})" if example != kind
                     else f"{count} {kind}")
    return f". {len(reasons)} of {len(runs)} runs are left out: " + "; ".join(parts)


def select_runs(runs: pd.DataFrame, cfg: AnalysisConfig | None = None) -> pd.DataFrame:
    """Add `used_in_fit` and `reason` (why a run is left out; empty when used).

    In order: failed runs, runs without a finite positive loss, runs with no budget, the
    `cfg.drop_highest_loss` highest losses (Epoch AI dropped Chinchilla's 5 highest), then
    outliers: runs too far off their budget's IsoFLOP curve for the study's pooled noise
    (`find_outliers`, `cfg.outliers`).
    """
    cfg = cfg or AnalysisConfig()
    out = runs.copy()
    reason = pd.Series("", index=out.index, dtype=object)
    status = out["status"].astype(str).str.lower()
    failed = status != "completed"
    msgs = out["error_message"] if "error_message" in out else pd.Series("", index=out.index)
    reason[failed] = [
        f"status {s}: {m}" if isinstance(m, str) and m.strip() else f"status {s}"
        for s, m in zip(status[failed], msgs[failed], strict=True)
    ]
    loss = pd.to_numeric(out["final_loss"], errors="coerce").astype(float)
    problems = pd.Series([loss_problem(v) for v in loss], index=out.index, dtype=object)
    bad_loss = (reason == "") & problems.notna()
    reason[bad_loss] = [f"no finite positive loss ({p})" for p in problems[bad_loss]]
    _warn_bad_losses(out, loss, bad_loss)
    if "budget_id" in out.columns:
        no_budget = (reason == "") & out["budget_id"].isna()
        reason[no_budget] = "no compute budget (C, D or compute_budget missing)"
    k = cfg.drop_highest_loss
    if k > 0:
        candidates = loss[reason == ""].sort_values(ascending=False)
        top = candidates.index[:k]
        reason[top] = f"among the {k} highest losses (analysis.drop_highest_loss = {k})"
    out["reason"] = reason
    out["used_in_fit"] = reason == ""
    if cfg.outliers.enabled and "budget_id" in out.columns:
        flagged = find_outliers(out, cfg.outliers)
        for idx, why in flagged.items():
            out.loc[idx, "reason"] = why
            out.loc[idx, "used_in_fit"] = False
    out["used_in_fit"] = out["used_in_fit"].astype(bool)
    return out


def _warn_bad_losses(runs: pd.DataFrame, loss: pd.Series, bad: pd.Series) -> None:
    """One WARNING that counts and names the runs left out for their loss (schema.loss_problem)."""
    if not bad.any():
        return
    ids = runs.loc[bad, "experiment_id"].astype(str) if "experiment_id" in runs else None
    named = [
        f"{ids[i] if ids is not None else f'row {i + 1}'} ({_shown_loss(loss[i])})"
        for i in runs.index[bad.to_numpy()]
    ]
    shown = ", ".join(named[:MAX_NAMED])
    if len(named) > MAX_NAMED:
        shown += f" and {len(named) - MAX_NAMED} more"
    source = runs.attrs.get("source", "the runs table")
    log.warning(
        "%s: %d of %d runs left out, their final_loss is not a positive finite number: %s",
        source, len(named), len(runs), shown,
    )


def _shown_loss(value: float) -> str:
    if math.isnan(value):
        return "NaN"
    return f"{value:g}"


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


def _curve_design(log_n: np.ndarray, degree: int) -> np.ndarray:
    """Polynomial basis in log10 N, centred and scaled to the budget's range (well conditioned)."""
    u = log_n - log_n.mean()
    width = float(np.ptp(u))
    return np.vander(u / width if width > 0 else u, degree + 1)


def _deleted_residuals(b: _Budget, left_out: np.ndarray) -> _Scores:
    """Each run's residual from the least-squares curve through the budget's other kept runs.

    A kept run with leverage h: residual e / (1 - h), variance 1 / (1 - h); a left-out run: its
    prediction error, variance 1 + x'(X'X)^-1 x (X: the kept runs).
    """
    kept = ~left_out
    u, sv, vt = np.linalg.svd(b.design[kept], full_matrices=False)
    rank = int((sv > sv[0] * 1e-10).sum())  # < degree + 1 when the budget has few distinct N
    u, sv, vt = u[:, :rank], sv[:rank], vt[:rank]
    resid = b.y - b.design @ (vt.T @ ((u.T @ b.y[kept]) / sv))
    lev = ((b.design @ vt.T / sv) ** 2).sum(axis=1)  # x'(X'X)^+ x
    room = np.maximum(1.0 - lev, 1e-12)  # a kept run at leverage 1 cannot be tested: score ~0
    deleted = np.where(kept, resid / room, resid)
    var = np.where(kept, 1.0 / room, 1.0 + lev)
    own = np.where(kept, resid**2 / room, 0.0)
    return _Scores(deleted, var, own, float(resid[kept] @ resid[kept]), int(kept.sum()) - rank)


#: `outliers.degree: auto` screens with a cubic when the profiles' skew is this unlikely under
#: quadratic profiles (two-sided)
SKEW_ALPHA = 0.01
#: the skew is judged only on at least this many budgets (one of them set aside)
SKEW_MIN_BUDGETS = 4


def shared_skew(profiles: list[tuple[np.ndarray, np.ndarray]], min_scale: float) -> float:
    """How far the study's IsoFLOP profiles (log10 N, log-loss per budget) lean one way, as a
    standard normal score; NaN with fewer than SKEW_MIN_BUDGETS budgets of 5+ runs.
    `min_scale` floors the noise, as it floors the screen's.

    Each budget's cubic coefficient over its standard error (the noise a robust scale of every
    budget's cubic residuals) is a z; their Stouffer sum over the budgets, setting aside the one
    with the largest |z|, is the score. A lone diverged run makes one budget's profile lean,
    and that budget is set aside; a steep wall on one side of every budget's minimum (a
    classifier's loss against its capacity) makes them all lean the same way, and a quadratic
    through such a profile predicts its end runs far too low."""
    fits, scaled = [], []
    for log_n, log_loss in profiles:
        if log_n.size < 5:
            continue
        x = _curve_design(log_n, 3)
        inv = np.linalg.pinv(x.T @ x)
        coef = inv @ x.T @ log_loss
        lev = np.einsum("ij,jk,ik->i", x, inv, x)
        scaled.append((log_loss - x @ coef) / np.sqrt(np.maximum(1.0 - lev, 1e-12)))
        fits.append((coef[0], inv[0, 0]))
    if len(fits) < SKEW_MIN_BUDGETS:
        return float("nan")
    coef, var = (np.array(v, dtype=float) for v in zip(*fits, strict=True))
    # robust (the median of the residuals over the noise they carry), so that a diverged run
    # does not inflate the noise and hide the other budgets' skew
    noise = max(1.4826 * float(np.median(np.abs(np.concatenate(scaled)))), min_scale)
    z = coef / (noise * np.sqrt(np.maximum(var, 1e-300)))
    rest = np.delete(z, int(np.argmax(np.abs(z))))
    return float(rest.sum() / math.sqrt(rest.size))


def screen_degree(rule: OutlierRule, profiles: list[tuple[np.ndarray, np.ndarray]]
                  ) -> tuple[int, float]:
    """The degree of the screening curves (`rule.degree`, or for auto 2 unless `shared_skew`
    is beyond the two-sided SKEW_ALPHA quantile, then 3), and the skew score (NaN if unjudged)."""
    if rule.degree != "auto":
        return int(rule.degree), float("nan")
    score = shared_skew(profiles, rule.min_scale)
    limit = float(norm.isf(SKEW_ALPHA / 2))
    return (3 if abs(score) > limit else 2), score


def _screened_budgets(runs: pd.DataFrame, rule: OutlierRule) -> list[_Budget]:
    """The used runs of every budget with at least `rule.min_points` of them (NumPy, no groupby:
    the calibration test calls this thousands of times)."""
    used = runs.loc[runs["used_in_fit"].to_numpy(bool)]
    codes, _ = pd.factorize(used["budget_id"], sort=True)  # no budget: -1, never screened
    index = used.index.to_numpy()
    log_n = np.log10(used["model_size"].to_numpy(float))
    log_loss = np.log(used["final_loss"].to_numpy(float))
    budget = used["budget"].to_numpy(float)
    groups = [rows for code in range(int(codes.max(initial=-1)) + 1)
              if len(rows := np.flatnonzero(codes == code)) >= rule.min_points]
    degree, score = screen_degree(rule, [(log_n[rows], log_loss[rows]) for rows in groups])
    if degree == 3 and rule.degree == "auto":
        log.info("Outlier screen: the IsoFLOP profiles share a skew (score "
                 "%.1f over %d budgets, the most skewed set aside), so each budget's curve is a "
                 "cubic in log10 N (analysis.outliers.degree: auto)", score,
                 sum(len(rows) >= 5 for rows in groups) - 1)
    out = []
    for rows in groups:
        if len(rows) < degree + 2:
            continue
        out.append(_Budget(
            index[rows], _curve_design(log_n[rows], degree), log_loss[rows],
            float(budget[rows[0]]),  # at most max_fraction, and always degree + 2 kept
            min(int(math.floor(rule.max_fraction * len(rows))), len(rows) - degree - 2),
        ))
    return out


def find_outliers(runs: pd.DataFrame, rule: OutlierRule | None = None) -> dict[Any, str]:
    """Runs whose log-loss lies too far off their budget's IsoFLOP curve for the study's own
    noise (index -> reason); `rule` is `params:analysis.outliers`.

    The study is one linear model: per budget with at least `min_points` used runs, log(loss)
    is a polynomial of degree `degree` in log10 N (auto: a quadratic, or cubics where the
    profiles share a skew, `screen_degree`), and all budgets share one noise level. A run's
    score is its externally studentized residual: its log-loss minus the curve fitted to its
    budget's other runs, divided by that difference's standard deviation, with
    the noise estimated from every screened budget's residual sum of squares leaving the run
    itself out (floored at `min_scale`). Under Gaussian noise that is Student-t with the pooled
    degrees of freedom, so the limit is Bonferroni's: the t quantile at `alpha / (2 n)` for
    the n screened runs, i.e. an honest study loses any run with probability about `alpha`.
    Pooling is the point: a per-budget scale from ~9 residuals of a 4-parameter robust fit was
    too small and too noisy (at 3 % noise the old per-budget MAD rule removed honest runs in ~40
    of 100 synthetic studies). The runs left out are found together (so that two bad runs, in
    one budget or two, do not hide each other through the noise estimate): a start by
    worst-first deletion within each budget at a robust noise estimate (1.4826 x the median
    standardized residual of all screened runs), then rounds that re-fit the kept runs,
    re-estimate the noise and re-test every run until the set stops changing; worst first, at
    most `max_fraction` of a budget. A quadratic rather than a cubic: its misfit to the profile stays within the
    pooled noise (no honest run removed on sweeps of up to 3 decades at 0.5-2 % noise), and a run at the end of a sweep has leverage
    0.66 on a 9-size quadratic but 0.86 on a cubic, so an end run is predicted from the others
    with 1.7x rather than 2.7x the noise SD.

    Calibration (100 synthetic studies per design and noise level; 5 budgets x 9 sizes around
    N_opt, x 9 off-centre at N_opt/2-32 N_opt, x 7, and 3 x 5; tests/fitting/test_selection.py
    repeats it with 75): at 1, 2, 3 and 5 % log-normal noise one honest run was removed in all
    1,600 studies (3 x 5 at 5 %); 2,000 studies per cell remove 0-2 runs per thousand
    studies, as alpha says. A run at 2x the loss is caught in every study anywhere inside a 9- or 7-size sweep,
    at its ends in 99-100 % (9 sizes) and 81 % (7 sizes, 5 % noise; 100 % up to 3 %). On 3 x 5
    the noise has 6 degrees of freedom: 2x is caught everywhere at 1 % noise, inside the sweep
    at 2 %, in 91 % at 3 % and 30 % at 5 %, at the ends in 44 % at 2 % and rarely above. A
    10 % spike at 1 % noise is caught inside the sweep of 5 x 7 and 5 x 9 studies (94 % of
    3 x 8). An end run that is only mildly off partly bends the curve to itself; then, rarely
    (2 of 100 for 2x at 5 % noise on 5 x 7), its neighbour is flagged instead. On the digitised
    Chinchilla runs the rule flags the four highest losses of all, the steep large-model wall
    of the 9.4e18 budget (Epoch AI drop the five highest); a cubic (`degree: 3`) flags two of
    them.
    """
    rule = rule or OutlierRule()
    budgets = _screened_budgets(runs, rule)
    if not budgets:
        return {}
    n_runs = sum(len(b.y) for b in budgets)

    @functools.cache
    def limit(dof: int) -> float:  # Bonferroni: two-sided alpha over the n screened runs
        return float(student_t.isf(rule.alpha / (2 * n_runs), dof)) if dof >= 1 else math.inf

    left = [np.zeros(len(b.y), bool) for b in budgets]
    scores = [_deleted_residuals(b, f) for b, f in zip(budgets, left, strict=True)]
    standardized = np.concatenate([s.deleted / np.sqrt(s.var) for s in scores])
    robust = max(1.4826 * float(np.median(np.abs(standardized))), rule.min_scale)
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
