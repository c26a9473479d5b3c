"""Are the bootstrap intervals calibrated? Coverage and width over many synthetic studies.

Every study is a synthetic IsoFLOP sweep on Chinchilla's surface (`fitting.runs.simulated`: E 1.69,
A 406.4, B 410.7, alpha 0.34, beta 0.28, C = 6 N D, log-normal noise) put through the analysis
as the pipeline does (`prepare_runs`, `fit_isoflop_approaches`, `fit_surface`, the default
bootstrap of `params:analysis.bootstrap`). Per design x approach x quantity it prints:

- coverage: the share of studies whose 95% interval contains the truth;
- width / spread: the mean width of the interval over the studies, divided by the actual
  spread of the point estimates, defined as 2 x 1.96 x their standard deviation over the
  studies (the width a 95% interval of a normal estimator with that spread would have); the
  ratio to the 2.5-97.5 percentile range of the estimates is printed beside it;
- bias / SD: (mean point estimate - truth) / SD of the point estimates;
- fail / bfail / unrel: the mean share of bootstrap draws that failed, of budget-draws whose
  parabola failed (Approach 2), and the share of studies whose interval was flagged unreliable;
  cov|unr: the coverage of those flagged studies alone (does the flag mean anything?).

The quantities: the exponent a of N_opt = k C^a (truth beta / (alpha + beta)) and log10 N_opt at
C = 1e24 FLOPs (truth from `fitting.surface.law.optimal_allocation_6nd`), both for Approach 2 (its power
law) and Approach 3 (the surface's closed-form allocation). Approach 1 has no interval
(`fitting.isoflop.approaches.APPROACH_1_NO_INTERVAL`); its bias / SD is printed for reference.

Targets (full mode; the exit status is non-zero when one is missed): for Approaches 2 and 3, in
every design, coverage within [0.93, 0.98] and width / spread within [0.90, 1.30]. With S
studies a calibrated interval's coverage has a binomial standard error of sqrt(0.95 x 0.05 / S):
1.3 points with the default 300, so a cell may miss the window by chance about once in 20
cells when it sits at 95%; the studies and bootstrap seeds are fixed, so a run is reproducible.
Each study uses 200 bootstrap draws instead of the pipeline's 1000: coverage and mean width are
averages over studies, and the Monte-Carlo error of one study's 2.5% and 97.5% percentiles
(about 10% of the interval's half-width at 200 draws) averages out over them, while the
run time is five times shorter.

    .venv/bin/python benchmarks/bench_coverage.py                 # 4 x 300 studies, 1-10 min
    .venv/bin/python benchmarks/bench_coverage.py --workers 1     # the same in one process
    .venv/bin/python benchmarks/bench_coverage.py --resample runs # measure another scheme
    .venv/bin/python benchmarks/bench_coverage.py --first-seed 1000 # the same on other seeds
    .venv/bin/python benchmarks/bench_coverage.py --quick         # seconds: the code paths

`--quick` runs 3 studies per design with 40 draws in one process (a few seconds); it checks
that every cell has finite numbers, not the targets. The full run took 77 s with 2 workers on
an idle 2-core machine, 10 min when the machine was shared.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _harness import exit_on_failure, run_workers  # noqa: E402

from flops_fit.fitting.isoflop.approaches import fit_isoflop_approaches  # noqa: E402
from flops_fit.fitting.runs.prepare import prepare_runs  # noqa: E402
from flops_fit.fitting.runs.simulated import CHINCHILLA_TRUTH, synthetic_results  # noqa: E402
from flops_fit.fitting.surface.compute_model import ComputeModel  # noqa: E402
from flops_fit.fitting.surface.law import allocation_constants, optimal_allocation_6nd  # noqa: E402
from flops_fit.fitting.surface.study import fit_surface  # noqa: E402
from flops_fit.fitting.threads import limit_blas_threads  # noqa: E402
from flops_fit.parameters.analysis import AnalysisConfig  # noqa: E402

TARGET_BUDGET = 1e24
COVERAGE_WINDOW = (0.93, 0.98)
WIDTH_WINDOW = (0.90, 1.30)
LEVEL = 0.95
Z = 1.959963984540054  # the normal 97.5% quantile
GATED = ("approach_2", "approach_3")
QUANTITIES = ("a", "log10 N_opt(1e24)")

#: design name -> synthetic_results arguments
DESIGNS: dict[str, dict] = {
    "5 budgets x 9 sizes, 1% noise": {"noise": 0.01},
    "5 budgets x 9 sizes, 3% noise": {"noise": 0.03},
    # the CPU study's shape: 3 budgets half a decade apart, 5 sizes over a factor 8 each way
    "3 budgets x 5 sizes, 1% noise": {
        "budgets": (1e18, 10**18.5, 1e19),
        "sizes_per_budget": 5,
        "span": 8.0,
        "noise": 0.01,
    },
    # sizes from N*/2 to 32 N*: the optimum sits near the smallest size of every budget
    "off-centre (N*/2 - 32 N*), 1% noise": {"centre_bias": 4.0, "span": 8.0, "noise": 0.01},
}


@dataclass
class Record:
    """One study's estimates, intervals and bootstrap failures, per approach and quantity."""

    point: dict[tuple[str, str], float]
    lo: dict[tuple[str, str], float]
    hi: dict[tuple[str, str], float]
    failed: dict[str, float]
    budget_failed: dict[str, float]
    unreliable: dict[str, bool]


def _interval(draws: np.ndarray | None) -> tuple[float, float]:
    if draws is None:
        return np.nan, np.nan
    x = np.asarray(draws, dtype=float)
    x = x[np.isfinite(x)]
    if x.size < 10:
        return np.nan, np.nan
    lo, hi = np.percentile(x, [50 * (1 - LEVEL), 100 - 50 * (1 - LEVEL)])
    return float(lo), float(hi)


def one_study(design: dict, seed: int, draws: int, resample: str) -> Record:
    cfg = AnalysisConfig.from_params(
        # the draws' own intervals: the law's error beyond the fit (bench_laws) is left out
        {"bootstrap": {"draws": draws, "seed": seed, "resample": resample}, "law_error": False}
    )
    runs, _ = prepare_runs(synthetic_results(seed=seed, **design), cfg)
    iso = fit_isoflop_approaches(runs, cfg)
    surface = fit_surface(runs, cfg, ComputeModel.six_nd())
    rec = Record({}, {}, {}, {}, {}, {})
    for approach in ("approach_1", "approach_2"):
        fit = iso[approach]
        law = fit.laws["n_opt"]
        if law.coefficient is None:
            point_a = point_n = np.nan
            a_draws = n_draws = None
        else:
            point_a = law.exponent
            point_n = np.log10(law.coefficient) + law.exponent * np.log10(TARGET_BUDGET)
            a_draws = law.exponent_draws
            n_draws = None
            if law.coefficient_draws is not None:
                with np.errstate(all="ignore"):
                    n_draws = np.log10(law.coefficient_draws) + law.exponent_draws * np.log10(
                        TARGET_BUDGET
                    )
        for q, p, d in (("a", point_a, a_draws), ("log10 N_opt(1e24)", point_n, n_draws)):
            rec.point[approach, q] = p
            rec.lo[approach, q], rec.hi[approach, q] = _interval(d)
        report = fit.bootstrap
        if report is not None:
            rec.failed[approach] = report.failed_draw_share
            rec.budget_failed[approach] = report.failed_budget_draw_share or 0.0
            rec.unreliable[approach] = report.unreliable
    fit3 = surface.fit
    if fit3 is None:
        point_a = point_n = np.nan
        a_draws = n_draws = None
    else:
        point_a = fit3.a
        point_n = float(np.log10(optimal_allocation_6nd(TARGET_BUDGET, fit3)[0]))
        a_draws = n_draws = None
        if surface.draws is not None:
            a_draws = surface.draws["a"]
            with np.errstate(all="ignore"):
                n_draws = np.log10(optimal_allocation_6nd(TARGET_BUDGET, surface.draws)[0])
    for q, p, d in (("a", point_a, a_draws), ("log10 N_opt(1e24)", point_n, n_draws)):
        rec.point["approach_3", q] = p
        rec.lo["approach_3", q], rec.hi["approach_3", q] = _interval(d)
    if surface.bootstrap is not None:
        rec.failed["approach_3"] = surface.bootstrap.failed_draw_share
        rec.unreliable["approach_3"] = surface.bootstrap.unreliable
    return rec


def studies(rank: int, design_name: str, seeds: list[int], draws: int, resample: str):
    """A worker's share of one design's studies (also called in-process with one worker)."""
    logging.disable(logging.WARNING)
    with limit_blas_threads(1):
        return [one_study(DESIGNS[design_name], s, draws, resample) for s in seeds]


def truth() -> dict[str, float]:
    return {
        "a": float(allocation_constants(CHINCHILLA_TRUTH)["a"]),
        "log10 N_opt(1e24)": float(np.log10(optimal_allocation_6nd(TARGET_BUDGET, CHINCHILLA_TRUTH)[0])),
    }


def summarise(records: list[Record], approach: str, q: str, true: float) -> dict[str, float]:
    est = np.array([r.point[approach, q] for r in records])
    lo = np.array([r.lo[approach, q] for r in records])
    hi = np.array([r.hi[approach, q] for r in records])
    have = np.isfinite(est)
    e = est[have]
    sd = float(np.std(e, ddof=1)) if e.size > 1 else np.nan
    spread = 2 * Z * sd
    pct = float(np.subtract(*np.percentile(e, [97.5, 2.5]))) if e.size > 1 else np.nan
    with_iv = np.isfinite(lo) & np.isfinite(hi)
    width = float(np.mean(hi[with_iv] - lo[with_iv])) if with_iv.any() else np.nan
    covered = with_iv & (lo <= true) & (true <= hi)
    fails = [r.failed[approach] for r in records if approach in r.failed]
    bfails = [r.budget_failed[approach] for r in records if approach in r.budget_failed]
    unrel = np.array([r.unreliable.get(approach, False) for r in records], dtype=bool)
    flagged = with_iv & unrel
    return {
        "coverage": float(np.mean(covered)) if with_iv.any() else np.nan,
        # does the flag mean anything? coverage of the studies it marked unreliable
        "coverage_unreliable": float(np.mean(covered[flagged])) if flagged.any() else np.nan,
        "width_ratio": width / spread if spread > 0 else np.nan,
        "width_pct_ratio": width / pct if pct > 0 else np.nan,
        "bias_sd": (float(np.mean(e)) - true) / sd if sd > 0 else np.nan,
        "no_estimate": int((~have).sum()),
        "no_interval": int((have & ~with_iv).sum()),
        "failed": float(np.mean(fails)) if fails else np.nan,
        "budget_failed": float(np.mean(bfails)) if bfails else np.nan,
        "unreliable": float(np.mean(unrel)) if any(approach in r.unreliable for r in records)
        else np.nan,
    }


def _fmt(x: float, spec: str) -> str:
    width = int("".join(c for c in spec.split(".")[0] if c.isdigit()) or 0)
    return format(x, spec) if np.isfinite(x) else "-".rjust(width)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--studies", type=int, default=300, help="studies per design")
    parser.add_argument("--draws", type=int, default=200, help="bootstrap draws per study")
    parser.add_argument("--first-seed", type=int, default=0,
                        help="the studies' seeds start here (check calibration on other seeds)")
    parser.add_argument("--resample", default="residuals", help="analysis.bootstrap.resample")
    parser.add_argument(
        "--workers",
        type=int,
        default=min(2, os.cpu_count() or 1),
        help="processes per design (default: 2, or 1 on a one-core machine)",
    )
    parser.add_argument("--designs", default=None, help="comma-separated design numbers (1-4)")
    parser.add_argument(
        "--quick", action="store_true", help="3 studies per design, 40 draws: the code paths"
    )
    args = parser.parse_args(argv)
    n_studies, draws = (3, 40) if args.quick else (args.studies, args.draws)
    names = list(DESIGNS)
    if args.designs:
        names = [names[int(i) - 1] for i in args.designs.split(",")]
    true = truth()
    print(
        f"== Coverage of the {LEVEL:.0%} bootstrap intervals (resample: {args.resample}), "
        f"{n_studies} studies per design x {draws} draws; truth a = {true['a']:.4f}, "
        f"log10 N_opt(1e24) = {true['log10 N_opt(1e24)']:.4f}"
    )
    print(
        f"   targets for approach_2/3: coverage in [{COVERAGE_WINDOW[0]:.2f}, "
        f"{COVERAGE_WINDOW[1]:.2f}], width/spread in [{WIDTH_WINDOW[0]:.2f}, "
        f"{WIDTH_WINDOW[1]:.2f}]; binomial SE of a coverage of 95%: "
        f"{np.sqrt(0.95 * 0.05 / n_studies):.3f}"
    )
    header = (
        f"   {'approach':<11} {'quantity':<18} {'coverage':>8} {'w/spread':>8} {'w/pct':>6} "
        f"{'bias/SD':>7} {'fail':>6} {'bfail':>6} {'unrel':>6} {'cov|unr':>7}  verdict"
    )
    failures: list[str] = []
    problems: list[str] = []
    t_all = time.perf_counter()
    for name in names:
        t0 = time.perf_counter()
        seeds = list(range(args.first_seed, args.first_seed + n_studies))
        workers = 1 if args.quick else max(1, min(args.workers, n_studies))
        if workers == 1:
            records = studies(0, name, seeds, draws, args.resample)
        else:
            with exit_on_failure():
                parts = run_workers(
                    studies,
                    [(name, seeds[i::workers], draws, args.resample) for i in range(workers)],
                )
            records = [r for part in parts for r in part]
        print(f"-- {name}: {time.perf_counter() - t0:.0f} s")
        print(header)
        for approach in ("approach_1", "approach_2", "approach_3"):
            for q in QUANTITIES:
                s = summarise(records, approach, q, true[q])
                verdict = ""
                if approach in GATED:
                    ok_cov = COVERAGE_WINDOW[0] <= s["coverage"] <= COVERAGE_WINDOW[1]
                    ok_w = WIDTH_WINDOW[0] <= s["width_ratio"] <= WIDTH_WINDOW[1]
                    verdict = "ok" if ok_cov and ok_w else "MISSED"
                    if args.quick:
                        verdict = "(quick: not judged)"
                    if not (np.isfinite(s["coverage"]) and np.isfinite(s["width_ratio"])):
                        problems.append(f"{name}, {approach}, {q}: no finite coverage / width")
                    if not (ok_cov and ok_w):
                        failures.append(
                            f"{name}, {approach}, {q}: coverage {s['coverage']:.3f}, "
                            f"width/spread {s['width_ratio']:.2f}"
                        )
                else:
                    verdict = "(no interval)"
                extra = ""
                if s["no_estimate"] or s["no_interval"]:
                    extra = f" [{s['no_estimate']} no estimate, {s['no_interval']} no interval]"
                print(
                    f"   {approach:<11} {q:<18} {_fmt(s['coverage'], '8.3f')} "
                    f"{_fmt(s['width_ratio'], '8.2f')} {_fmt(s['width_pct_ratio'], '6.2f')} "
                    f"{_fmt(s['bias_sd'], '+7.2f')} {_fmt(s['failed'], '6.1%')} "
                    f"{_fmt(s['budget_failed'], '6.1%')} {_fmt(s['unreliable'], '6.1%')} "
                    f"{_fmt(s['coverage_unreliable'], '7.3f')}  "
                    f"{verdict}{extra}"
                )
        sys.stdout.flush()
    print(f"== {time.perf_counter() - t_all:.0f} s in all")
    for p in problems:
        print(f"FAILED: {p}", file=sys.stderr)
    if args.quick:
        return 1 if problems else 0
    for f in failures:
        print(f"FAILED: {f}", file=sys.stderr)
    return 1 if failures or problems else 0


if __name__ == "__main__":
    sys.exit(main())
