"""The next round's runs: those expected to narrow N_opt(C*) the most per FLOP.

Candidates come in units a fit can use (a budget needs three sizes for its parabola):

- **recentre**: a budget whose sweep is off-centre or whose optimum sits at its edge (the
  analysis's diagnostics) gets the sizes a sweep centred on its fitted optimum would add;
- **extend**: a new budget above the study's largest, toward C* (half-steps of the pilot's
  budget spacing, the largest budget three runs of the round's allowance can buy, and C*
  itself), with a full sweep or a narrow one of three sizes around the predicted optimum;
- **refine**: two sizes half a grid step either side of an existing budget's fitted optimum;
- **edges**: two sizes at the ends of the study's span around a budget's optimum (an existing
  budget, one halfway between two, or a new one above the largest), where the loss is furthest
  above its minimum: the runs that tell the N term of the loss from the D term best, so the
  ones that pin the surface's exponents (and N_opt's slope) per FLOP.

Each candidate run is planned for real (the caller's `planner`: the exact model size and D),
and costs what it adds to train: its planned FLOPs, or for a branch of a trunk the study has
(`planning.trunks`) its cooldown and the trunk's steps beyond its furthest branch point so
far. The value of a set of runs is the variance of log N_opt(C*) it is expected to remove:
over the surface's bootstrap draws, the predicted log-losses of the candidates and
log N_opt(C*) are treated as jointly Gaussian (their sample covariance), and a run observed
with the study's noise (the per-budget parabolas' RMS log-residual) removes
Cov(theta, y)^2 / (Var y + noise^2), a block of runs the matrix version (a Kalman update).
Runs are chosen greedily by value per FLOP, conditioning on each unit chosen, until the
round's allowance is spent: a run where the draws disagree about the loss, in a way that tells
which N_opt(C*) is right, is worth the most; a run whose loss every draw already agrees on is
worth nothing, whatever it costs. Re-centring units are taken first (a biased parabola vertex
is not a variance the draws can see).

Approach 3's answer also carries the law's own error beyond the fit (`fitting.laws.beyond`),
s ln(C* / C_centre) in ln N_opt(C*). Its variance is added to both the variance before and the
one expected after, as measured: the forecast credits no run with shrinking it. Runs above the
run-weighted centre C_centre would shorten that lever arm, but the cheapest way to do so is a
cheap run just above the centre, which moves the average without extrapolating any less; and
new budgets change s itself at the next analysis. So the expected gain is a share of the
answer's variance, and a study whose variance is mostly the law's stops on min_expected_gain.

Without surface draws (Approach 3 not fitted, no bootstrap) nothing can be scored: re-centring
units, then the nearest new budgets, fill the allowance.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from flops_fit.fitting.outputs.draws import surface_draws
from flops_fit.fitting.surface.compute_model import optimal_allocation
from flops_fit.fitting.surface.law import parametric_loss
from flops_fit.planning.flops import readable_budget
from flops_fit.planning.trunks import added_flops
from flops_fit.reporting.inputs import compute_model as compute_model_of_doc
from flops_fit.study.target import law_error_of

log = logging.getLogger(__name__)

#: (budget, target sizes) -> planned run records (model_size, num_tokens, planned_flops, ...)
Planner = Callable[[float, Sequence[float]], list[dict[str, Any]]]

MIN_DRAWS = 20  # fewer valid surface draws than this: runs are not scored
NOISE_FLOOR = 0.005  # the study's noise SD in log-loss is at least this (a near-noiseless study)
MAX_NEW_BUDGETS = 8  # half-steps of the pilot's spacing tried above the largest fitted budget
SAME_BUDGET = 0.1  # runs within this of a budget in ln C are its runs
WINSOR = (2.5, 97.5)  # percentiles each draw column is clipped to (outlying draws of a weak fit)


@dataclass
class Unit:
    """Runs that are chosen together: one budget's worth."""

    kind: str  # recentre | extend | refine | edges
    budget: float
    records: list[dict[str, Any]]
    why: str
    forced: bool = False
    group: str = ""  # units of one group exclude each other (variants of one new budget)
    gain: float = 0.0  # variance of log N_opt(C*) it removed when chosen
    trained: float = 0.0  # FLOPs it adds to train, after the study's runs and the units before

    @property
    def cost(self) -> float:
        return float(sum(r["planned_flops"] for r in self.records))

    def to_dict(self) -> dict[str, Any]:
        return {"kind": self.kind, "compute_budget": self.budget, "runs": len(self.records),
                "planned_flops": self.cost, "trained_flops": self.trained,
                "expected_variance_removed": self.gain, "why": self.why}


@dataclass
class RoundDesign:
    units: list[Unit]
    candidates: int  # candidate units considered
    allowance: float
    variance_before: float | None  # of log N_opt(C*): the surface draws' and the law error's
    variance_after: float | None  # expected, once the chosen runs are observed
    noise: float | None
    notes: list[str] = field(default_factory=list)

    @property
    def records(self) -> list[dict[str, Any]]:
        return [r for u in self.units for r in u.records]

    @property
    def cost(self) -> float:
        return float(sum(u.cost for u in self.units))

    @property
    def trained(self) -> float:
        return float(sum(u.trained for u in self.units))

    @property
    def expected_gain(self) -> float | None:
        """The share of log N_opt(C*)'s variance the round is expected to remove."""
        if not self.variance_before or self.variance_after is None:
            return None
        return float(max(0.0, 1.0 - self.variance_after / self.variance_before))

    def expected_ratio(self, level: float) -> float | None:
        """hi / lo of a normal interval of N_opt(C*) at the expected variance after the round."""
        if self.variance_after is None:
            return None
        from scipy.stats import norm

        return float(np.exp(2 * norm.ppf(0.5 + level / 2) * np.sqrt(self.variance_after)))

    def summary(self) -> dict[str, Any]:
        return {"units": [u.to_dict() for u in self.units], "candidate_units": self.candidates,
                "allowance": self.allowance, "planned_flops": self.cost,
                "trained_flops": self.trained,
                "variance_before": self.variance_before, "variance_after": self.variance_after,
                "expected_gain": self.expected_gain, "noise_sd": self.noise, "notes": self.notes}


def noise_sd(doc: Mapping[str, Any]) -> float:
    """The study's run-to-run noise in log-loss: the parabolas' RMS residual, else the surface's."""
    diag = doc.get("diagnostics") or {}
    for key in ("parabola_rms_log_residual", "surface_rms_log_residual"):
        value = diag.get(key)
        if value is not None and np.isfinite(value):
            return float(max(value, NOISE_FLOOR))
    return NOISE_FLOOR


def centre_law(doc: Mapping[str, Any], approach: str | None) -> Callable[[float], float] | None:
    """N_opt(C) to centre new sizes on: the recommended approach's law, else any fitted one."""
    order = [a for a in (approach, "approach_3", "approach_2", "approach_1") if a]
    for name in order:
        law = (doc.get(name) or {}).get("n_opt") or {}
        k, e = law.get("coefficient"), law.get("exponent")
        if k is not None and e is not None and np.isfinite(k) and np.isfinite(e) and k > 0:
            return lambda c, k=float(k), e=float(e): k * c**e
    return None


def candidate_units(runs: pd.DataFrame, doc: Mapping[str, Any], target: float,
                    planner: Planner, sizes_per_budget: int, span: float,
                    known_ids: set[str], allowance: float | None = None) -> list[Unit]:
    """Every candidate unit, planned; runs already in the study (`known_ids`) are left out."""
    approach = (doc.get("recommended_approach") or {}).get("approach")
    law = centre_law(doc, approach)
    if law is None:
        return []
    rows = (doc.get("diagnostics") or {}).get("budgets") or []
    budgets = sorted(float(r["compute_budget"]) for r in rows)
    grid = span ** (2.0 / (sizes_per_budget - 1))  # size ratio between neighbours of a sweep
    units: list[Unit] = []

    def add(kind, budget, targets, why, forced=False, group=""):
        targets = list(targets)
        records = [r for r in planner(budget, targets) if r["experiment_id"] not in known_ids]
        if 0 < len(records) < len(targets):  # say what the round really trains
            why = (f"{why}; {len(records)} of the {len(targets)} sizes: the others are trained "
                   "already or outside planning's limits")
        if records:
            units.append(Unit(kind, budget, records, why, forced, group or f"{kind}:{budget:g}"))

    log_c = np.log(runs["compute_budget"].to_numpy(float)) if len(runs) else np.array([])
    log_n = np.log(runs["model_size"].to_numpy(float)) if len(runs) else np.array([])
    for row in rows:
        c = float(row["compute_budget"])
        optimum = row.get("fitted_optimum")
        centre = float(optimum) if optimum and np.isfinite(optimum) else law(c)
        have = log_n[np.abs(log_c - np.log(c)) < SAME_BUDGET]
        if row.get("off_centre") or row.get("optimum_at_edge"):
            targets = [t for t in np.geomspace(centre / span, centre * span, sizes_per_budget)
                       if not have.size or np.min(np.abs(have - np.log(t))) > np.log(grid) / 2]
            if targets:
                add("recentre", c, targets, f"the sweep at {c:.3g} FLOPs is not centred on its "
                    f"fitted optimum N = {centre:.3g}", forced=True)
            continue
        add("refine", c, [centre / np.sqrt(grid), centre * np.sqrt(grid)],
            f"two sizes either side of the fitted optimum N = {centre:.3g} at {c:.3g} FLOPs")
        add("edges", c, [centre / span, centre * span], _edges_why(c, centre, span))
    for lo, hi in zip(budgets, budgets[1:], strict=False):
        if hi / lo > 1.5:  # room for a budget halfway between two fitted ones
            c = readable_budget(float(np.sqrt(lo * hi)))
            add("edges", c, [law(c) / span, law(c) * span], _edges_why(c, law(c), span))
    top = max(budgets) if budgets else None
    if top is not None and target > top * 1.01:
        ratios = np.diff(np.log(budgets))
        step = float(np.exp(np.median(ratios))) if ratios.size else 10**0.5
        new = [top * step ** (j / 2) for j in range(1, 2 * MAX_NEW_BUDGETS + 1)]
        if allowance:  # the largest budget a narrow sweep of three sizes can afford this round
            new.append(allowance / 3)
        new = sorted({readable_budget(c) for c in new if top * 1.2 < c < target * 0.99})
        for c in [*new, float(target)]:
            centre = law(c)
            group = f"extend:{c:g}"
            add("extend", c, np.geomspace(centre / span, centre * span, sizes_per_budget),
                f"a new budget {c:.3g} FLOPs toward C* (a full sweep around N = {centre:.3g})",
                group=group)
            add("extend", c, np.geomspace(centre / np.sqrt(span), centre * np.sqrt(span), 3),
                f"a new budget {c:.3g} FLOPs toward C* (three sizes around N = {centre:.3g})",
                group=group)
            add("edges", c, [centre / span, centre * span], _edges_why(c, centre, span),
                group=group)
    return units


def _edges_why(budget: float, centre: float, span: float) -> str:
    return (f"two sizes at the ends of the span, N = {centre / span:.3g} and "
            f"{centre * span:.3g}, at {budget:.3g} FLOPs (around the optimum N = {centre:.3g})")


def _winsorised(x: np.ndarray) -> np.ndarray:
    lo, hi = np.percentile(x, WINSOR, axis=0)
    return np.clip(x, lo, hi)


def _ensemble(doc: Mapping[str, Any], draws: pd.DataFrame, target: float,
              records: list[dict[str, Any]]) -> np.ndarray | None:
    """Draws x (1 + runs): log N_opt(C*) and each candidate run's predicted log-loss."""
    params = surface_draws(draws)
    if params is None or not records:
        return None
    model = compute_model_of_doc(doc)
    n = np.array([r["model_size"] for r in records], dtype=float)
    d = np.array([r["num_tokens"] for r in records], dtype=float)
    with np.errstate(all="ignore"):
        n_star, _ = optimal_allocation(np.asarray([float(target)]), params, model)
        theta = np.log(n_star[:, 0])
        y = np.log(parametric_loss(n[None, :], d[None, :],
                                   {k: v[:, None] for k, v in params.items()}))
    z = np.column_stack([theta, y])
    z = z[np.all(np.isfinite(z), axis=1)]
    if len(z) < MIN_DRAWS:
        return None
    return _winsorised(z)


def _removed(cov: np.ndarray, idx: np.ndarray, noise: float) -> tuple[float, np.ndarray]:
    """Variance of column 0 removed by observing columns `idx`, and the gain matrix K."""
    block = cov[np.ix_(idx, idx)] + noise**2 * np.eye(idx.size)
    gain = np.linalg.solve(block, cov[idx, :]).T  # (all, idx)
    return float(gain[0] @ cov[idx, 0]), gain


def design_round(runs: pd.DataFrame, doc: Mapping[str, Any], draws: pd.DataFrame,
                 target: float, allowance: float, planner: Planner, sizes_per_budget: int,
                 span: float, known_ids: set[str],
                 plan: Sequence[Mapping[str, Any]] = ()) -> RoundDesign:
    """Choose the next round's units within `allowance` FLOPs (see the module docstring).
    `plan`: the study's runs so far; a unit's branches of their trunks cost what they add to
    train (`planning.trunks.added_flops`), not their runs' FLOPs from step 0."""
    units = candidate_units(runs, doc, target, planner, sizes_per_budget, span, known_ids,
                            allowance)
    noise = noise_sd(doc)
    records = [r for u in units for r in u.records]
    z = _ensemble(doc, draws, target, records)
    design = RoundDesign([], len(units), float(allowance), None, None, noise)
    if not units:
        design.notes.append("no candidate runs: no fitted N_opt law to centre them on")
        return design
    chosen_groups: set[str] = set()
    remaining = float(allowance)
    so_far = list(plan)

    def cost(unit: Unit) -> float:
        return added_flops(unit.records, so_far)

    def take(unit: Unit, removed: float = 0.0) -> None:
        nonlocal remaining
        unit.gain, unit.trained = removed, cost(unit)
        design.units.append(unit)
        chosen_groups.add(unit.group)
        so_far.extend(unit.records)
        remaining -= unit.trained

    if z is None:
        design.notes.append("no surface draws to score runs by: re-centring first, then the "
                            "nearest new budgets")
        order = sorted(units, key=lambda u: (not u.forced, u.kind != "extend", u.budget,
                                             -len(u.records)))
        for unit in order:
            if unit.group not in chosen_groups and 0 < cost(unit) <= remaining:
                take(unit)
        return design
    cov = np.cov(z, rowvar=False)
    law_var = _law_variance(doc, target)
    if law_var > 0:
        design.notes.append(
            f"the law's own error beyond the fit (sd {np.sqrt(law_var):.3g} in ln N_opt at "
            f"{float(target):.3g} FLOPs) is in the answer's interval; the forecast keeps it as "
            "measured, whatever runs the round adds")
    design.variance_before = float(cov[0, 0]) + law_var
    columns, start = [], 1
    for unit in units:
        columns.append(np.arange(start, start + len(unit.records)))
        start += len(unit.records)

    def condition(i: int) -> float:
        nonlocal cov
        removed, gain = _removed(cov, columns[i], noise)
        cov = cov - gain @ cov[columns[i], :]
        return removed

    for i, unit in enumerate(units):
        if unit.forced and 0 < cost(unit) <= remaining:
            take(unit, condition(i))
    while True:
        best, best_score = None, 0.0
        for i, unit in enumerate(units):
            spend = cost(unit)
            if unit.group in chosen_groups or not 0 < spend <= remaining:
                continue  # spend 0: every run of it is chosen already
            removed, _ = _removed(cov, columns[i], noise)
            score = removed / spend
            if removed > 1e-6 * design.variance_before and score > best_score:
                best, best_score = i, score
        if best is None:
            break
        take(units[best], condition(best))
    design.variance_after = float(max(cov[0, 0], 0.0)) + law_var
    return design


def _law_variance(doc: Mapping[str, Any], target: float) -> float:
    """The variance the law's own error adds to ln N_opt(C*) in the answer's interval: only
    Approach 3's answer carries it (`study.target.answer_at`)."""
    if (doc.get("recommended_approach") or {}).get("approach") != "approach_3":
        return 0.0
    error = law_error_of(doc)
    return float(error.sigma([float(target)])[1][0] ** 2) if error is not None else 0.0
