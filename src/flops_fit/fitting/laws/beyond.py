"""The law's own error beyond the fit, measured by rollout, and the intervals that carry it.

A bootstrap interval carries the noise of the fitted parameters only: it takes the law as
right. Away from its data, a law that is only nearly right drifts from the truth, the more the
further it extrapolates. Rollout measures that drift on the study itself. For each
rollout fold (`choice.rollout_folds`: a budget with enough runs, predicted from the budgets
below it), the answering family fitted to the budgets below predicts

- the mean log loss of the fold budget's runs, against their measured losses, and
- N_opt at the fold budget, against the full fit's N_opt there.

Part of each miss is noise that a right law shows too: the fold fit's parameter noise (its
Gauss-Newton covariance s^2 (J^T J)^-1, propagated by the delta method) and, for the loss, the
runs' own noise averaged over the fold's m runs (s^2 / m). The law's error is what is left when
the misses are larger than that noise explains (a chi-square test at 5%): the moment estimate
s^2 = sum(miss^2 - noise variance) / sum(lever arm^2), the lever arm ln(C_fold / C_centre) with
C_centre the centre of the fold's fitted runs (the mean of their ln C): a law with a slightly
wrong exponent misses by that error times the distance from where its data sits, which is why
the error is measured from the centre and not from the largest budget fitted (on a study
whose budgets are nearly continuous that last distance is tiny, and dividing by it would turn
in-range noise into a steep growth). s is the error per unit of ln C.

Rollout sees only the study's own budgets, and a drift that begins beyond them escapes it: on
public scaling ladders (Epoch's Chinchilla runs, Llama 3's IsoFLOP runs) the folds inside each
split missed by under 1% while the law fitted there missed larger budgets' L_opt by 0.2 - 0.5%
of the loss per unit of ln C. So the loss's error per unit of ln C is never taken below
`analysis.law_error_floor` (calibrated on those ladders: `benchmarks/bench_laws.py`), measured
or not; N_opt's has no floor (no public ladder measures its drift).

A prediction at a budget C above the study's own centre carries sigma = s ln(C / C_centre) in
ln L and in ln N_opt: each bootstrap draw's ln L and ln N_opt move by a standard normal deviate
(one per draw, so a draw's curve stays smooth; seeded by `bootstrap.seed`) times sigma, D_opt
follows N_opt under the compute model, and the percentile interval is taken as before. Below
the centre nothing changes; a well-specified law's measured error comes out near 0, so its
widening is the loss's floor alone.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
from scipy import stats

from flops_fit.fitting.laws.choice import Fold, fit_folds
from flops_fit.fitting.laws.families import log_loss_and_jacobian, theta_to_named
from flops_fit.fitting.laws.solver import FamilyFit
from flops_fit.fitting.surface.compute_model import ComputeModel, allocation_of_family

_STREAM = 0x1A3E  # the law error's deviates: their own stream of the bootstrap's seed
_FD_STEP = 1e-5  # the finite-difference step in theta for N_opt's gradient
#: the folds' misses count as the law's error only when noise explains them with at most this
#: probability: a right law is then widened in 5% of studies, not in every one by chance misses
SIGNIFICANCE = 0.05


@dataclass(frozen=True)
class FoldError:
    """One rollout fold: how far the fold fit's predictions missed, and the noise in that."""

    budget: float
    distance: float  # ln(budget / the centre of the runs fitted below it)
    loss_miss: float  # mean over the fold's runs of ln(predicted / measured)
    loss_noise_sd: float
    n_opt_miss: float  # ln(fold fit's N_opt / full fit's N_opt) at `budget`
    n_opt_noise_sd: float


@dataclass
class LawError:
    """The answering law's error per unit of ln C beyond `c_centre`, in ln L and ln N_opt."""

    law: str
    c_centre: float  # exp(mean ln C of the fitted runs)
    loss_per_ln_c: float
    n_opt_per_ln_c: float
    seed: int
    floor: float = 0.0  # the least loss error per unit of ln C, measured or not
    folds: list[FoldError] = field(default_factory=list)

    @property
    def loss_used_per_ln_c(self) -> float:
        return max(self.loss_per_ln_c, self.floor)

    def sigma(self, compute: Any) -> tuple[np.ndarray, np.ndarray]:
        """The law's error (sd of ln L, sd of ln N_opt) at budgets C: 0 up to c_centre."""
        with np.errstate(divide="ignore", invalid="ignore"):
            dist = np.maximum(0.0, np.log(np.asarray(compute, dtype=float) / self.c_centre))
        dist = np.where(np.isfinite(dist), dist, 0.0)
        return self.loss_used_per_ln_c * dist, self.n_opt_per_ln_c * dist

    def _deviates(self, draws: int) -> np.ndarray:
        """(2, B): a draw's deviate for N_opt and for the loss, the same at every budget."""
        return np.random.default_rng([self.seed, _STREAM]).standard_normal((2, draws))

    def widen(self, compute: np.ndarray, n_draws: np.ndarray, l_draws: np.ndarray,
              model: ComputeModel) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Draws (B, m) of N_opt, D_opt and the loss at budgets C (m,), each draw moved by
        the law's error (see the module)."""
        _, sig_n = self.sigma(compute)
        z = self._deviates(n_draws.shape[0])
        with np.errstate(all="ignore"):
            n = n_draws * np.exp(z[0][:, None] * sig_n[None, :])
            d = model.units(np.broadcast_to(compute, n.shape), n)
        return n, d, self.widen_loss(compute, l_draws)

    def widen_loss(self, compute: np.ndarray, l_draws: np.ndarray) -> np.ndarray:
        """Loss draws (B, m) at budgets C (m,) moved by the law's error, as `widen` moves them
        (a validation run's loss at its own N and D)."""
        sig_l, _ = self.sigma(compute)
        z = self._deviates(l_draws.shape[0])
        with np.errstate(all="ignore"):
            return l_draws * np.exp(z[1][:, None] * sig_l[None, :])

    def to_dict(self) -> dict[str, Any]:
        return {
            "law": self.law,
            "centre_budget": self.c_centre,
            "loss_error_per_ln_c": self.loss_per_ln_c,
            "n_opt_error_per_ln_c": self.n_opt_per_ln_c,
            "loss_error_floor_per_ln_c": self.floor,
            "seed": self.seed,
            "folds": [asdict(f) for f in self.folds],
        }

    @classmethod
    def from_dict(cls, doc: Any, seed: int = 0) -> LawError | None:
        """What a scaling_laws document's `approach_3.law_error` widens with (None for null or
        a document without one): its rates, centre and seed (`seed` where the document
        predates its own); the folds stay in the document. A value that cannot be the
        analysis's raises ValueError naming the key."""
        if not isinstance(doc, Mapping) or doc.get("centre_budget") is None:
            return None

        def number(key: str, default: float = 0.0, positive: bool = False,
                   integer: bool = False) -> float:
            raw = doc.get(key)
            try:
                value = float(default if raw is None else raw)
            except (TypeError, ValueError):
                value = float("nan")
            if (not np.isfinite(value) or value < 0 or (positive and value == 0)
                    or (integer and not value.is_integer())):
                kind = "an integer" if integer else "a finite number"
                raise ValueError(f"scaling_laws approach_3.law_error.{key} is {raw!r}: expected "
                                 f"{kind} {'above' if positive else 'of at least'} 0")
            return value

        return cls(law=str(doc.get("law") or "unknown"),
                   c_centre=number("centre_budget", positive=True),
                   loss_per_ln_c=number("loss_error_per_ln_c"),
                   n_opt_per_ln_c=number("n_opt_error_per_ln_c"),
                   seed=int(number("seed", default=seed, integer=True)),
                   floor=number("loss_error_floor_per_ln_c"))


def _covariance(name: str, theta: np.ndarray, x, y, log_l) -> tuple[np.ndarray, float]:
    """The Gauss-Newton covariance of theta at a fit, and the residual variance s^2."""
    f, jac = log_loss_and_jacobian(name, theta[None, :], x, y)
    r, j = log_l - f[0], jac[0]
    dof = max(1, x.size - j.shape[1])
    s2 = float(r @ r) / dof
    return s2 * np.linalg.pinv(j.T @ j), s2


def _log_n_opt(name: str, thetas: np.ndarray, budget: float, model: ComputeModel) -> np.ndarray:
    n, _ = allocation_of_family(name, budget, theta_to_named(name, thetas), model)
    return np.log(np.asarray(n, dtype=float).reshape(-1))


def _fold_error(answer: FamilyFit, fold: Fold, fit: FamilyFit, x, y, log_l, budget,
                model: ComputeModel) -> FoldError | None:
    name, test = answer.law, fold.test
    below = budget[fold.train]
    if not fit.ok or below.size == 0:
        return None
    cov, s2 = _covariance(name, fit.theta, x[fold.train], y[fold.train], log_l[fold.train])
    f, jac = log_loss_and_jacobian(name, fit.theta[None, :], x[test], y[test])
    grad = jac[0].mean(axis=0)
    loss_var = float(grad @ cov @ grad) + s2 / int(test.sum())
    p = fit.theta.size
    thetas = np.vstack([fit.theta, fit.theta + _FD_STEP * np.eye(p), answer.theta])
    log_n = _log_n_opt(name, thetas, fold.budget, model)
    g_n = (log_n[1 : p + 1] - log_n[0]) / _FD_STEP
    return FoldError(
        budget=fold.budget,
        distance=float(np.log(fold.budget) - np.mean(np.log(below))),
        loss_miss=float(np.mean(f[0] - log_l[test])),
        loss_noise_sd=float(np.sqrt(max(loss_var, 0.0))),
        n_opt_miss=float(log_n[0] - log_n[-1]),
        n_opt_noise_sd=float(np.sqrt(max(float(g_n @ cov @ g_n), 0.0))),
    )


def _per_ln_c(misses, noise_sds, distances) -> float:
    """The law's error per unit of ln C from the folds' misses, their noise and lever arms: 0
    unless the misses are larger than noise explains (sum of (miss / noise)^2 above the
    chi-square quantile at SIGNIFICANCE), else the moment estimate
    sqrt(sum(miss^2 - noise^2) / sum(distance^2))."""
    rows = [(m, s, d) for m, s, d in zip(misses, noise_sds, distances, strict=True)
            if np.isfinite(m) and np.isfinite(s) and s > 0 and d > 0]
    if not rows:
        return 0.0
    m, s, d = (np.array(v, dtype=float) for v in zip(*rows, strict=True))
    if float(np.sum((m / s) ** 2)) <= stats.chi2.ppf(1.0 - SIGNIFICANCE, len(rows)):
        return 0.0
    return float(np.sqrt(max(0.0, float(np.sum(m**2 - s**2))) / float(np.sum(d**2))))


def measure_law_error(answer: FamilyFit, x, y, log_l, budget, folds: list[Fold],
                      fold_fits: list[FamilyFit | None] | None, model: ComputeModel, seed: int,
                      *, delta: float, objective: str, floor: float = 0.0) -> LawError | None:
    """The answering family's error beyond the fit from `folds`, the loss's never below
    `floor`. Without a fold that could be fitted: None if `floor` is 0, else the floor alone.
    Without `fold_fits` (the choice's, one per fold) the folds are fitted here
    (`choice.fit_folds`)."""
    budget = np.asarray(budget, dtype=float)
    if fold_fits is None and folds:
        _, fold_fits = fit_folds(answer.law, x, y, log_l, folds, delta=delta,
                                 objective=objective)
    errors = []
    for fold, fit in zip(folds, fold_fits or [], strict=True):
        if fit is None:
            continue
        with np.errstate(all="ignore"):
            err = _fold_error(answer, fold, fit, x, y, log_l, budget, model)
        if err is not None:
            errors.append(err)
    if not errors and floor <= 0:
        return None
    dist = [e.distance for e in errors]
    return LawError(
        law=answer.law,
        c_centre=float(np.exp(np.mean(np.log(budget)))),
        loss_per_ln_c=_per_ln_c([e.loss_miss for e in errors],
                                [e.loss_noise_sd for e in errors], dist),
        n_opt_per_ln_c=_per_ln_c([e.n_opt_miss for e in errors],
                                 [e.n_opt_noise_sd for e in errors], dist),
        seed=seed,
        floor=float(floor),
        folds=errors,
    )
