"""Does steering pay? Steered studies against a fixed IsoFLOP design, and their coverage.

Every study runs on the synthetic backend: Chinchilla's surface (`fitting.runs.simulated`'s
CHINCHILLA_TRUTH, C = 6 N D) with multiplicative log-normal noise, so N_opt(C*) is known. A
steered study runs `flops_fit.study` as `kedro study` does (benchmarks/_steering.py): a pilot of
3 budgets (1e17 - 1e18 FLOPs) x 5 sizes over a factor 8 each way, centred on a prior 2x the true
optimum; then fit (`analyse`, 200 bootstrap draws) -> `answer_at(C*)` -> `stop_before_design`
-> `design_round` (a 6ND planner: N exactly the target, D = C / 6N) -> `stop_after_design` ->
train the chosen runs (the true loss x noise) -> refit, until a stop rule fires.

The study's settings (flags below) are a user's: N_opt at C* = 1e20 FLOPs within a factor
(precision) 1.2, at most max_compute 1e21 FLOPs (10 C*) over max_rounds 6 rounds after the
pilot (7.1e18 FLOPs), round_compute 1, min_expected_gain 0.1. Under `rounds.allowance` a round
may spend the larger of round_compute x the FLOPs so far and the geometric pace that reaches
max_compute by the last round: here x2.28 a round (1.3 x the FLOPs so far), so the pace binds
and a study that no stop rule ends spends all of max_compute. Precision 1.2 is reached at 1%
noise (every study, after round 4 or 5), not at 3% (max_rounds ends those).

1. Value. Per noise level, two fixed designs per seed, bench_coverage's 5 budgets x 9 sizes
   over a factor 10 each way, budgets log-spaced from the pilot's smallest to the largest
   budget that seed's steered study trained (the same range; a fixed design buys 9 sizes at
   each budget, so at the same top it costs about 11x the top budget): P, centred on the same
   prior N_opt(C) law the steered pilot uses (2x the truth: what a user without the steered
   study would run), and O, centred on the true optimum (an oracle). Printed: the median FLOPs,
   median |log10 error| of N_opt(C*) and median interval ratio hi/lo of each; and the FLOPs at
   which a steered study's interval ratio first reached a fixed design's median ratio, as a
   fraction of that fixed design's FLOPs (median over seeds; `reached`: the share that ever
   did). Goal (the issue's): a fraction of at most 0.5 against P (O printed beside it). For the
   comparison at equal FLOPs it also prints the steered studies' median FLOPs and ratio after
   each round, and prior-centred fixed designs to other tops (`--frontier`, 12 seeds).
2. Coverage under adaptive designs: over the steered studies, the share of final 95% intervals
   of N_opt(C*) that contain the truth, and width / spread = mean log-width of the intervals over
   2 x 1.96 x the SD of the log point estimates. Targets per noise level: coverage within
   [0.90, 0.98], width / spread within [0.80, 1.30]; with S studies a calibrated coverage has a
   binomial SE of sqrt(0.95 x 0.05 / S) (2.8 points at S = 60).

Full mode exits non-zero when the value goal or a coverage target is missed.

    .venv/bin/python benchmarks/bench_steering.py               # 2 noise levels x 60 studies
    .venv/bin/python benchmarks/bench_steering.py --quick       # 2 x 2 studies, 40 draws, 1 round, 1 frontier top
    .venv/bin/python benchmarks/bench_steering.py --max-compute 2e20 --studies 10 --noise 0.01
    .venv/bin/python benchmarks/bench_steering.py --variant no_edges  # a design variant

Measured (full mode, --workers 2, on a 2-core machine): 575 s (quick mode ~20 s). Stop
reasons: 1% precision x60 (after round 4 or 5); 3% max_rounds x60.

    noise  top C    FLOPs st  FLOPs fx  |err| st  |err| P  |err| O  ratio st  ratio P  ratio O
       1% 1.78e19   4.28e20   2.20e20     0.013    0.024    0.020      1.17     1.37     1.38
       3% 4.17e19   9.99e20   4.82e20     0.025    0.068    0.064      1.47     2.44     2.37
    fraction (reached): 1% 0.37 (100%) against P, 0.36 against O; 3% 0.37 (100%), 0.37
    steered by round (1%): 7.1e18 x3.54, 1.5e19 x1.99, 3.4e19 x1.56, 7.9e19 x1.35,
        1.8e20 x1.24, 4.3e20 x1.18; fixed P: 4.9e19 x1.66, 1.3e20 x1.45, 5.7e20 x1.34
    steered by round (3%): ... 3.4e19 x3.89, 7.9e19 x2.58, 1.8e20 x1.97, 4.3e20 x1.64,
        1.0e21 x1.47; fixed P: 4.9e19 x4.72, 1.3e20 x3.42, 5.7e20 x2.55
    coverage 0.950 (1%), 0.950 (3%); width / spread 0.89, 0.96: all within the targets
    design_round's forecast: realised / expected log-width 1.13 (1%), 1.15 (3%)

The value goal is met: 0.37 of the fixed design's FLOPs at both noise levels. At equal compute
the steered study is well ahead: x1.35 at 7.9e19 FLOPs against the fixed design's x1.34 at
5.7e20 (1%), x2.58 at 7.9e19 against x2.55 at 5.7e20 (3%), about a seventh of the compute.
What buys it is the `edges` units (two sizes at the ends of the span around a budget's
optimum): most of every round (e.g. 14 edges, 1 refine, 1 recentre) and at small budgets,
where the surface's two terms are told apart for the least compute (a c-optimal design
from the surface's Fisher information, sizes within the span, puts its weight the same way: at
the span's ends of the smallest budgets and one step above them). The same design without
them (--variant no_edges; the design before they existed) took 0.84 at both noise levels, its
rounds extending toward C* instead.
The price: the study leans on the fitted surface holding across the planned span and
extrapolates further (its largest budget is 1.8e19 at 1% noise, 5.6x below C*), and it trains
many small runs (159 - 288 in the studies printed above). On the synthetic surface the form holds by
construction; on a real model the validation run, at a budget the study never fitted, is what
checks it.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

import _steering as st  # noqa: E402
from _harness import exit_on_failure, run_workers  # noqa: E402

ROOT = str(Path(__file__).resolve().parents[1])
VALUE_GOAL = 0.5
COVERAGE_WINDOW = (0.90, 0.98)
WIDTH_WINDOW = (0.80, 1.30)
Z = 1.959963984540054


def _workers(fn, common: tuple, per_seed: list[list], workers: int) -> list:
    """fn(rank, *common_head, chunk..., *common_tail) over `workers` processes, in seed order."""
    seeds = per_seed[-1]
    if workers <= 1:
        return fn(0, *common[0], *per_seed, *common[1])
    chunks = [[col[i::workers] for col in per_seed] for i in range(workers)]
    with exit_on_failure():
        parts = run_workers(fn, [(*common[0], *c, *common[1]) for c in chunks])
    out = [None] * len(seeds)
    for i, part in enumerate(parts):
        out[i::workers] = part
    return out


def _fmt(x: float | None, spec: str, width: int) -> str:
    return format(x, spec) if x is not None and np.isfinite(x) else "-".rjust(width)


def _log_err(n: float | None, truth: float) -> float:
    return abs(np.log10(n / truth)) if n else np.nan


def coverage(studies: list[st.Study], truth: float) -> dict[str, float]:
    fin = [s.final for s in studies]
    point = np.array([np.log(f.n_opt) if f.n_opt else np.nan for f in fin])
    lo = np.array([np.log(f.lo) if f.lo else np.nan for f in fin])
    hi = np.array([np.log(f.hi) if f.hi else np.nan for f in fin])
    ok = np.isfinite(lo) & np.isfinite(hi)
    est = point[np.isfinite(point)]
    spread = 2 * Z * float(np.std(est, ddof=1)) if est.size > 1 else np.nan
    covered = ok & (lo <= np.log(truth)) & (np.log(truth) <= hi)
    width = float(np.mean(hi[ok] - lo[ok])) if ok.any() else np.nan
    return {"coverage": float(np.mean(covered)) if ok.any() else np.nan,
            "width_ratio": width / spread if spread > 0 else np.nan,
            "bias_sd": (float(np.mean(est)) - np.log(truth)) / (spread / (2 * Z))
            if spread > 0 else np.nan,
            "no_interval": int((~ok).sum()),
            "approach_3": float(np.mean([f.approach == "approach_3" for f in fin]))}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--studies", type=int, default=60, help="steered studies per noise level")
    parser.add_argument("--draws", type=int, default=200, help="bootstrap draws per fit")
    parser.add_argument("--noise", default="0.01,0.03", help="comma-separated noise levels")
    parser.add_argument("--seed", type=int, default=0, help="the first study's seed")
    parser.add_argument("--target", type=float, default=1e20, help="study.target_budget C*")
    parser.add_argument("--precision", type=float, default=1.2, help="study.precision")
    parser.add_argument("--max-rounds", type=int, default=6, help="study.max_rounds")
    parser.add_argument("--round-compute", type=float, default=1.0, help="study.round_compute")
    parser.add_argument("--max-compute", type=float, default=1e21, help="study.max_compute")
    parser.add_argument("--min-gain", type=float, default=0.1, help="study.min_expected_gain")
    parser.add_argument("--variant", default="default", choices=sorted(st.VARIANTS),
                        help="a monkeypatched design_round variant (an experiment)")
    parser.add_argument("--workers", type=int, default=1,
                        help="processes (default 1: the machine is small and shared)")
    parser.add_argument("--quick", action="store_true",
                        help="2 studies per noise level, 40 draws, 1 round: the code paths")
    parser.add_argument("--frontier", default="3.16e18,1e19,5e19",
                        help="tops of extra fixed designs (the fixed design's FLOPs vs ratio)")
    parser.add_argument("--frontier-seeds", type=int, default=12, help="seeds per frontier top")
    parser.add_argument("--trajectories", type=int, default=2,
                        help="steered studies per noise level whose rounds are printed")
    args = parser.parse_args(argv)
    n, draws = (2, 40) if args.quick else (args.studies, args.draws)
    cfg = {"target_budget": args.target, "precision": args.precision,
           "max_rounds": 1 if args.quick else args.max_rounds,
           "round_compute": args.round_compute, "max_compute": args.max_compute,
           "min_expected_gain": args.min_gain}
    workers = 1 if args.quick else max(1, min(args.workers, n, os.cpu_count() or 1))
    truth = st.true_n_opt(args.target)
    print(f"== Steered studies vs a fixed IsoFLOP design: N_opt({args.target:.3g}) = "
          f"{truth:.4g} (truth), {n} studies per noise level x {draws} draws, "
          f"variant {args.variant}")
    print("   study: " + ", ".join(f"{k} {v:g}" for k, v in cfg.items()))
    t_all = time.perf_counter()
    value_rows, cov_rows, problems, failures = [], [], [], []
    for noise in [float(x) for x in args.noise.split(",")]:
        t0 = time.perf_counter()
        seeds = list(range(args.seed, args.seed + n))
        steered = _workers(st.steered_worker, ((cfg, noise), (draws, ROOT, args.variant)),
                           [seeds], workers)
        tops = [s.largest_budget for s in steered]
        fixed = {name: _workers(st.fixed_worker, ((), (noise, draws, args.target, ROOT, bias)),
                                [tops, seeds], workers)
                 for name, bias in st.FIXED_CENTRES.items()}
        print(f"-- noise {noise:.0%}: {time.perf_counter() - t0:.0f} s; stop reasons: "
              + "; ".join(f"{r} x{c}" for r, c in st.counts(s.stop_reason for s in steered)))
        for s, seed in zip(steered[:args.trajectories], seeds, strict=False):
            print(f"   seed {seed} rounds (FLOPs so far: N_opt error, interval ratio -> next):")
            for k in s.steps:
                print(f"     r{k.round} {k.flops:8.3g} {k.runs:3d} runs "
                      f"{_fmt(np.log10(k.n_opt / truth) if k.n_opt else None, '+.3f', 6)} dex"
                      f"  x{_fmt(k.ratio, '.2f', 5)} {k.approach or '-'} -> {k.kinds or 'stop'}"
                      + (f" (expects x{k.expected:.2f})" if k.expected else ""))
        by_round = []
        for k in range(max(len(s.steps) for s in steered)):
            at = [s.steps[k] for s in steered if len(s.steps) > k]
            by_round.append(f"r{k} {np.median([a.flops for a in at]):.3g} "
                            f"x{np.nanmedian([a.ratio or np.nan for a in at]):.2f} ({len(at)})")
        print("   steered, median by round (FLOPs so far, interval ratio, studies): "
              + " | ".join(by_round))
        m = min(n, args.frontier_seeds)
        tops_f = [float(t) for t in args.frontier.split(",")] if args.frontier else []
        tops_f = tops_f[:1] if args.quick else tops_f  # quick: the code path, one top
        for top in tops_f:
            fx = _workers(st.fixed_worker,
                          ((), (noise, draws, args.target, ROOT, st.FIXED_CENTRES["prior"])),
                          [[top] * m, seeds[:m]], workers)
            print(f"   fixed design (prior-centred) to {top:.3g} FLOPs: {fx[0].flops:.3g} "
                  "FLOPs, median ratio "
                  f"x{np.nanmedian([f.ratio or np.nan for f in fx]):.2f} ({m} seeds)")
        forecast = [np.log(b.ratio) / np.log(a.expected) for s in steered
                    for a, b in zip(s.steps, s.steps[1:], strict=False)
                    if a.expected and a.expected > 1 and b.ratio]
        print(f"   design_round's forecast: realised / expected log interval width after a "
              f"round, median {_fmt(float(np.median(forecast)) if forecast else None, '.2f', 4)}"
              f" over {len(forecast)} rounds (1: the forecast holds)")
        final_ratio = [s.final.ratio or np.nan for s in steered]
        row = {"noise": noise, "top": float(np.median(tops)),
               "steered_flops": float(np.median([s.final.flops for s in steered])),
               "steered_err": float(np.nanmedian([_log_err(s.final.n_opt, truth)
                                                  for s in steered])),
               "steered_ratio": float(np.nanmedian(final_ratio))}
        for name, fx in fixed.items():
            ratio_fixed = float(np.nanmedian([f.ratio or np.nan for f in fx]))
            frac = np.array([s.flops_to_reach(ratio_fixed) / f.flops
                             for s, f in zip(steered, fx, strict=True)])
            row |= {f"{name}_flops": float(np.median([f.flops for f in fx])),
                    f"{name}_err": float(np.nanmedian([_log_err(f.n_opt, truth) for f in fx])),
                    f"{name}_ratio": ratio_fixed, f"{name}_fraction": float(np.median(frac)),
                    f"{name}_reached": float(np.mean(np.isfinite(frac)))}
        value_rows.append(row)
        cov_rows.append({"noise": noise, **coverage(steered, truth)})
        sys.stdout.flush()
    print(f"== Value at C* = {args.target:.3g}: medians over seeds (fraction: steered FLOPs to "
          f"first reach the fixed design's median ratio / fixed FLOPs; goal <= {VALUE_GOAL} "
          "against the prior-centred fixed design, P; O: centred on the true optimum, an oracle)")
    print(f"   {'noise':>5} {'top C':>8} {'FLOPs st':>9} {'FLOPs fx':>9} {'|err| st':>8} "
          f"{'|err| P':>7} {'|err| O':>7} {'ratio st':>8} {'ratio P':>7} {'ratio O':>7} "
          f"{'frac O':>6} {'reach O':>7} {'fraction':>8} {'reached':>7}  verdict")
    for r in value_rows:
        ok = r["prior_fraction"] <= VALUE_GOAL
        verdict = "(quick: not judged)" if args.quick else ("ok" if ok else "MISSED")

        def frac(x, width):
            return _fmt(x, f"{width}.2f", width) if x < np.inf else "never".rjust(width)

        print(f"   {r['noise']:5.0%} {r['top']:8.3g} {r['steered_flops']:9.3g} "
              f"{r['prior_flops']:9.3g} {r['steered_err']:8.3f} {r['prior_err']:7.3f} "
              f"{r['oracle_err']:7.3f} {_fmt(r['steered_ratio'], '8.2f', 8)} "
              f"{_fmt(r['prior_ratio'], '7.2f', 7)} {_fmt(r['oracle_ratio'], '7.2f', 7)} "
              f"{frac(r['oracle_fraction'], 6)} {r['oracle_reached']:7.0%} "
              f"{frac(r['prior_fraction'], 8)} {r['prior_reached']:7.0%}  {verdict}")
        if not all(np.isfinite([r["steered_flops"], r["prior_flops"], r["steered_err"],
                                r["prior_err"], r["prior_ratio"], r["oracle_ratio"]])):
            problems.append(f"value, noise {r['noise']}: a non-finite number")
        if not ok:
            failures.append(f"value, noise {r['noise']}: fraction {r['prior_fraction']:.2f} "
                            f"> {VALUE_GOAL} (against the prior-centred fixed design)")
    print(f"== Coverage of the final 95% interval of N_opt(C*) over steered studies (targets: "
          f"coverage in [{COVERAGE_WINDOW[0]:.2f}, {COVERAGE_WINDOW[1]:.2f}], w/spread in "
          f"[{WIDTH_WINDOW[0]:.2f}, {WIDTH_WINDOW[1]:.2f}]; binomial SE at 95%: "
          f"{np.sqrt(0.95 * 0.05 / n):.3f})")
    print(f"   {'noise':>5} {'coverage':>8} {'w/spread':>8} {'bias/SD':>7} {'A3 share':>8}  "
          "verdict")
    for r in cov_rows:
        ok = (COVERAGE_WINDOW[0] <= r["coverage"] <= COVERAGE_WINDOW[1]
              and WIDTH_WINDOW[0] <= r["width_ratio"] <= WIDTH_WINDOW[1])
        verdict = "(quick: not judged)" if args.quick else ("ok" if ok else "MISSED")
        extra = f" [{r['no_interval']} without an interval]" if r["no_interval"] else ""
        print(f"   {r['noise']:5.0%} {_fmt(r['coverage'], '8.3f', 8)} "
              f"{_fmt(r['width_ratio'], '8.2f', 8)} {_fmt(r['bias_sd'], '+7.2f', 7)} "
              f"{r['approach_3']:8.0%}  {verdict}{extra}")
        if not np.isfinite(r["coverage"]):
            problems.append(f"coverage, noise {r['noise']}: no finite coverage")
        if not ok:
            failures.append(f"coverage, noise {r['noise']}: coverage {r['coverage']:.3f}, "
                            f"width/spread {r['width_ratio']:.2f}")
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
