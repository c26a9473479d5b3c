"""Helpers of bench_steering.py: synthetic steered studies and fixed IsoFLOP designs.

A steered study runs `flops_fit.study` as `kedro study` does (pilot -> fit -> answer at C* ->
stop rules -> design_round -> train -> refit ...), with training replaced by the known surface
(`CHINCHILLA_TRUTH`) and multiplicative log-normal noise drawn from the study's own generator.
Everything a study does follows from its arguments (noise, seed): a run is reproducible.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
import yaml

from flops_fit import analyse
from flops_fit.fitting.runs.simulated import CHINCHILLA_TRUTH
from flops_fit.fitting.surface.law import optimal_allocation_6nd, parametric_loss
from flops_fit.fitting.threads import limit_blas_threads
from flops_fit.parameters.study import StudyConfig
from flops_fit.planning.flops import tokens_6nd
from flops_fit.study import design as design_module
from flops_fit.study import rounds
from flops_fit.study.design import design_round
from flops_fit.study.target import answer_at

ROOT_PARAMS = "conf/base/parameters_analysis.yml"

#: the pilot: 3 budgets half a decade apart x 5 sizes over a factor 8 each way (the CPU study's
#: shape), centred on a prior PILOT_BIAS x the true optimum
PILOT_BUDGETS = (1e17, 10**17.5, 1e18)
PILOT_SIZES, PILOT_SPAN, PILOT_BIAS = 5, 8.0, 2.0
#: the fixed design: bench_coverage's 5 budgets x 9 sizes over a factor 10 each way, centred on
#: the pilot's prior (PILOT_BIAS x the truth: what a user without the steered study would run)
#: or on the true optimum (an oracle, 1.0)
FIXED_BUDGETS, FIXED_SIZES, FIXED_SPAN = 5, 9, 10.0
FIXED_CENTRES = {"prior": PILOT_BIAS, "oracle": 1.0}


def true_n_opt(c: float) -> float:
    return float(optimal_allocation_6nd(c, CHINCHILLA_TRUTH)[0])


def analysis_params(root: str, draws: int, seed: int) -> dict[str, Any]:
    with open(f"{root}/{ROOT_PARAMS}") as fh:
        params = yaml.safe_load(fh)["analysis"]
    params["bootstrap"] = {**params["bootstrap"], "draws": draws, "seed": seed}
    params["blas_threads"] = 1
    return params


class Planner:
    """The 6ND planner: N = the target exactly, D = C / 6N, one run costs its budget."""

    def __init__(self) -> None:
        self.round = 0

    def __call__(self, budget: float, targets) -> list[dict[str, Any]]:
        c = float(budget)
        return [{"experiment_id": f"C{c:.3g}-N{float(n):.4g}", "compute_budget": c,
                 "model_size": float(n), "num_tokens": float(tokens_6nd(c, float(n))),
                 "planned_flops": c, "round": self.round} for n in targets]


def train(records: list[dict[str, Any]], noise: float, rng: np.random.Generator) -> pd.DataFrame:
    """The results rows of `records`: the true loss x exp(noise x a standard normal)."""
    rows = []
    for r in records:
        true = float(parametric_loss(r["model_size"], r["num_tokens"], CHINCHILLA_TRUTH))
        rows.append({k: r[k] for k in ("experiment_id", "compute_budget", "model_size",
                                       "num_tokens", "planned_flops")}
                    | {"final_loss": true * float(np.exp(noise * rng.standard_normal())),
                       "status": "completed", "error_message": ""})
    return pd.DataFrame(rows)


def sweep(planner: Planner, budgets, sizes: int, span: float, bias: float) -> list[dict]:
    """Per budget, `sizes` sizes log-spaced over N*/span..N*·span around bias x the true N*."""
    out = []
    for c in budgets:
        centre = bias * true_n_opt(c)
        out += planner(c, np.geomspace(centre / span, centre * span, sizes))
    return out


@dataclass
class Step:
    """The assessment after one fit: FLOPs so far and N_opt(C*) with its interval."""

    round: int
    flops: float
    runs: int
    approach: str | None
    n_opt: float | None
    lo: float | None
    hi: float | None
    ratio: float | None
    kinds: str = ""  # the units of the round designed from this fit, e.g. "2 extend, 1 refine"
    expected: float | None = None  # the interval ratio design_round expects after that round


@dataclass
class Study:
    steps: list[Step]
    stop_reason: str
    largest_budget: float
    notes: list[str] = field(default_factory=list)

    @property
    def final(self) -> Step:
        return self.steps[-1]

    def flops_to_reach(self, ratio: float) -> float:
        """The FLOPs of the first fit whose interval ratio is at most `ratio` (inf: none)."""
        for s in self.steps:
            if s.ratio is not None and s.ratio <= ratio:
                return s.flops
        return float("inf")


def _fit(results: pd.DataFrame, params: dict[str, Any], target: float):
    fit = analyse(results, params, compute_model="6nd")
    return fit, answer_at(fit.scaling_laws, fit.draws, target)


def steered_study(cfg: StudyConfig, noise: float, seed: int, draws: int, root: str,
                  design_kwargs: dict[str, Any] | None = None) -> Study:
    """One steered study from the pilot until a stop rule fires (see the module docstring)."""
    rng = np.random.default_rng(seed)
    planner = Planner()
    plan = sweep(planner, PILOT_BUDGETS, PILOT_SIZES, PILOT_SPAN, PILOT_BIAS)
    results = train(plan, noise, rng)
    kwargs = {"sizes_per_budget": PILOT_SIZES, "span": PILOT_SPAN, **(design_kwargs or {})}
    steps: list[Step] = []
    notes: list[str] = []
    previous = None
    while True:
        k = rounds.current_round(plan)
        fit, ans = _fit(results, analysis_params(root, draws, seed * 1000 + k), cfg.target_budget)
        lo, hi = ans.n_opt_interval
        steps.append(Step(k, rounds.spent_flops(plan), len(plan), ans.approach, ans.n_opt, lo,
                          hi, ans.ratio))
        # the assessment a round earlier, as the round file of kedro study holds it
        stop = rounds.stop_before_design(cfg, ans, plan,
                                         previous.to_dict() if previous else None)
        previous = ans
        if stop is None:
            budget = rounds.allowance(cfg, plan)
            planner.round = k + 1
            design = design_round(fit.runs, fit.scaling_laws, fit.draws, cfg.target_budget,
                                  budget, planner, known_ids={r["experiment_id"] for r in plan},
                                  **kwargs)
            notes += design.notes
            stop = rounds.stop_after_design(cfg, design, budget,
                                            rounds.max_compute_binds(cfg, plan))
        if stop is not None:
            break
        kinds: dict[str, int] = {}
        for u in design.units:
            kinds[u.kind] = kinds.get(u.kind, 0) + 1
        steps[-1].kinds = ", ".join(f"{n} {kind}" for kind, n in kinds.items())
        steps[-1].expected = design.expected_ratio(0.95)
        new = design.records
        plan += new
        results = pd.concat([results, train(new, noise, rng)], ignore_index=True)
    largest = max(float(r["compute_budget"]) for r in plan)
    return Study(steps, stop_kind(stop), largest, notes)


def stop_kind(reason: str) -> str:
    """The stop rule that fired, in a word or two (the reason's numbers left out)."""
    for key, kind in (("precise enough", "precision"), ("max_rounds", "max_rounds"),
                      ("min_expected_gain", "min_expected_gain"),
                      ("max_compute", "max_compute")):
        if key in reason:
            return kind
    return reason.split(":")[0]


def fixed_study(top: float, noise: float, seed: int, draws: int, target: float,
                root: str, bias: float = 1.0) -> Step:
    """bench_coverage's fixed design from the pilot's smallest budget to `top`, centred on
    bias x the true optimum, one fit."""
    planner = Planner()
    budgets = np.geomspace(PILOT_BUDGETS[0], top, FIXED_BUDGETS)
    plan = sweep(planner, budgets, FIXED_SIZES, FIXED_SPAN, bias)
    rng = np.random.default_rng(10**6 + seed)
    _, ans = _fit(train(plan, noise, rng), analysis_params(root, draws, seed), target)
    lo, hi = ans.n_opt_interval
    return Step(0, rounds.spent_flops(plan), len(plan), ans.approach, ans.n_opt, lo, hi,
                ans.ratio)


def _without(kind: str):
    """candidate_units less every unit of one kind."""
    def units(*args, **kwargs) -> list:
        return [u for u in _candidate_units(*args, **kwargs) if u.kind != kind]
    return units


def _probe_extend(runs, doc, target, planner, *args, **kwargs) -> list:
    """Besides every candidate, one run at each new budget's predicted optimum (a probe)."""
    units = _candidate_units(runs, doc, target, planner, *args, **kwargs)
    for u in [u for u in units if u.kind == "extend" and len(u.records) == 3]:
        probe = [r for r in planner(u.budget, [u.records[1]["model_size"]])
                 if r["experiment_id"] == u.records[1]["experiment_id"]]
        if probe:
            units.append(design_module.Unit("extend", u.budget, probe, "one run at the "
                                            "predicted optimum", group=u.group))
    return units


def _refine_wide(runs, doc, target, planner, sizes_per_budget, span, known_ids,
                 allowance=None) -> list:
    """Besides each refine unit (half a grid step either side of a budget's fitted optimum),
    the same budget's two sizes a whole grid step either side, as an alternative (one group)."""
    units = _candidate_units(runs, doc, target, planner, sizes_per_budget, span, known_ids,
                             allowance)
    grid = span ** (2.0 / (sizes_per_budget - 1))
    for u in [u for u in units if u.kind == "refine" and len(u.records) == 2]:
        centre = float(np.sqrt(u.records[0]["model_size"] * u.records[1]["model_size"]))
        wide = [r for r in planner(u.budget, [centre / grid, centre * grid])
                if r["experiment_id"] not in known_ids]
        if wide:
            units.append(design_module.Unit("refine", u.budget, wide, "two sizes a grid step "
                                            "either side of the fitted optimum", group=u.group))
    return units


_candidate_units = design_module.candidate_units
_noise_sd = design_module.noise_sd
#: name -> what it does to `flops_fit.study.design` (experiments; "default" leaves it alone)
VARIANTS = {
    "default": {},
    "no_refine": {"candidate_units": _without("refine")},  # only re-centring and new budgets
    "no_edges": {"candidate_units": _without("edges")},  # no runs at the ends of the span
    "probe_extend": {"candidate_units": _probe_extend},  # new budgets may get a single run
    "refine_wide": {"candidate_units": _refine_wide},  # refine may also go a grid step out
    # the scorer assumes twice the noise it measures (runs that the draws disagree on most)
    "noise_x2": {"noise_sd": lambda doc: 2.0 * _noise_sd(doc)},
}


def counts(items) -> list[tuple[str, int]]:
    out: dict[str, int] = {}
    for x in items:
        out[x] = out.get(x, 0) + 1
    return sorted(out.items(), key=lambda kv: -kv[1])


def steered_worker(rank: int, cfg: dict, noise: float, seeds: list[int], draws: int,
                   root: str, variant: str = "default") -> list[Study]:
    """A worker's share of the steered studies (also called in-process with one worker)."""
    logging.disable(logging.WARNING)
    config = StudyConfig.from_params(cfg)
    saved = {k: getattr(design_module, k) for k in VARIANTS[variant]}
    for k, v in VARIANTS[variant].items():
        setattr(design_module, k, v)
    try:
        with limit_blas_threads(1):
            return [steered_study(config, noise, s, draws, root) for s in seeds]
    finally:
        for k, v in saved.items():
            setattr(design_module, k, v)


def fixed_worker(rank: int, tops: list[float], seeds: list[int], noise: float, draws: int,
                 target: float, root: str, bias: float = 1.0) -> list[Step]:
    logging.disable(logging.WARNING)
    with limit_blas_threads(1):
        return [fixed_study(t, noise, s, draws, target, root, bias)
                for t, s in zip(tops, seeds, strict=True)]
