"""Law families: the choice, intervals that know it, the law's error beyond the fit, and speed.

1. Speed on Epoch AI's 240 digitised Chinchilla runs, through `analyse` (the analysis
   pipeline's steps): the law pinned to Chinchilla's form against `law: auto` (every family
   fitted, the choice by rollout, a bootstrap that repeats it, the extrapolation check that
   repeats it again), timed alternately (median of 5), and one plain 4,500-start paper-recipe fit of
   Chinchilla's form (`reference_fit`). Full mode fails when auto takes more than 3x the pinned
   analysis or when the analysis is not 3x faster than the paper recipe.
2. Synthetic studies from each family (`_law_studies`: known truth, 1% and 3% noise), analysed
   with `law: auto`: the share of studies that chose the true family, the coverage of
   N_opt(1e23) by its 95% interval and width / spread, and beyond the fit (the study without its
   largest budget predicting it) the coverage of the true L_opt and N_opt there. Full mode fails
   when a family's right-family rate is below 50%, or when, pooled over its noise levels, its
   N_opt coverage or its held-out loss coverage leaves 0.90-0.98 or its width / spread leaves
   0.8-1.3.
3. Real runs beyond their study: Epoch's Chinchilla runs and Llama 3's IsoFLOP runs (digitised,
   `../shared/reference`). Fitted on the budgets below a split, `law: auto` predicts L_opt at
   every larger budget with 3+ runs; the measured optimum there is that budget's parabola vertex
   (its lowest run where the vertex is not valid). Printed: the coverage over every (split,
   budget), the same without the law's error (`law_error: false`) beside it, and over the
   splits of four budgets or more (where rollout can measure the law's error; the pairs that
   calibrate `analysis.law_error_floor`). Last, the held-out L_opt coverage of every synthetic
   study and every real pair together (informative; each family is judged on its own above).

    .venv/bin/python benchmarks/bench_laws.py             # 30 studies per cell, ~10 min
    .venv/bin/python benchmarks/bench_laws.py --every 1   # time all 4,500 recipe starts (+4 min)
    .venv/bin/python benchmarks/bench_laws.py --studies 60 --workers 2
    .venv/bin/python benchmarks/bench_laws.py --quick     # seconds: every code path

`--quick` runs one study of Chinchilla's and one of the saturating family at 1% noise with 40
draws, the speed comparison once with 100 draws and a 5-start reference (its full-grid time
estimated), and one split per real data set; nothing is judged but finite numbers.
"""

from __future__ import annotations

import argparse
import logging
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _harness import exit_on_failure, run_workers  # noqa: E402
from _law_studies import held_loss_hits, studies, summary  # noqa: E402
from bench_parametric_fit import CHINCHILLA_CSV as EPOCH_CSV  # noqa: E402
from bench_parametric_fit import chinchilla  # noqa: E402
from reference_fit import fit_parametric_reference  # noqa: E402

from flops_fit import analyse  # noqa: E402
from flops_fit.fitting.isoflop.estimators import approach2_point, budget_groups  # noqa: E402
from flops_fit.fitting.laws.choice import MIN_FIT_BUDGETS  # noqa: E402
from flops_fit.fitting.laws.families import LAW_NAMES  # noqa: E402
from flops_fit.fitting.runs.prepare import prepare_runs  # noqa: E402
from flops_fit.parameters.analysis import AnalysisConfig  # noqa: E402
from flops_fit.planning.flops import compute_6nd  # noqa: E402

REFERENCE = Path(__file__).resolve().parents[2] / "shared" / "reference"
LLAMA_CSV = REFERENCE / "openathena_llama3_isoflops_digitized.csv"
MAX_AUTO_RATIO, MIN_REFERENCE_RATIO = 3.0, 3.0
COVERAGE, WIDTH, RIGHT_FAMILY = (0.90, 0.98), (0.8, 1.3), 0.5
NOISES = (0.01, 0.03)


def epoch_runs() -> pd.DataFrame:
    """Epoch's 240 runs (`bench_parametric_fit.chinchilla`) in flops-fit's columns."""
    n, d, loss = chinchilla()
    c = compute_6nd(n, d)
    return pd.DataFrame({"experiment_id": [f"epoch-{i}" for i in range(n.size)],
                         "model_size": n, "num_tokens": d, "compute": c, "compute_budget": c,
                         "final_loss": loss})


def llama_runs() -> pd.DataFrame:
    df = pd.read_csv(LLAMA_CSV)
    df = df[df["condition"] == "raw_loss"]
    return pd.DataFrame({"experiment_id": [f"llama3-{i}" for i in range(len(df))],
                         "model_size": df["params"].to_numpy(float),
                         "num_tokens": df["tokens"].to_numpy(float),
                         "compute": df["budget"].to_numpy(float),
                         "compute_budget": df["budget"].to_numpy(float),
                         "final_loss": df["loss"].to_numpy(float)})


def _params(law: str, draws: int) -> dict:
    return {"law": law, "bootstrap": {"draws": draws}}


def speed(draws: int, repeat: int, every: int, judge: bool) -> list[str]:
    runs = epoch_runs()
    times: dict[str, list[float]] = {"chinchilla": [], "auto": []}
    for _ in range(repeat):  # alternately, so that a busy machine slows both alike
        for law in times:
            t0 = time.perf_counter()
            analyse(runs, _params(law, draws), compute_model="6nd")
            times[law].append(time.perf_counter() - t0)
    pinned, auto = (statistics.median(times[k]) for k in ("chinchilla", "auto"))
    n, d, loss = (runs[c].to_numpy(float) for c in ("model_size", "num_tokens", "final_loss"))
    _, report = fit_parametric_reference(n, d, loss, every=every)
    reference = report["seconds"] * every
    est = f" (estimated from every {every}-th start)" if every > 1 else ""
    print(f"== speed on Epoch's {len(runs)} runs, {draws} bootstrap draws, median of {repeat}")
    print(f"   analysis, law pinned to chinchilla: {pinned:.2f} s")
    print(f"   analysis, law: auto (4 families):   {auto:.2f} s  -> {auto / pinned:.2f}x pinned "
          f"(target <= {MAX_AUTO_RATIO:g}x)")
    print(f"   one paper-recipe fit, 4,500 starts: {reference:.1f} s{est} -> the pinned analysis "
          f"is {reference / pinned:.1f}x faster, auto {reference / auto:.1f}x "
          f"(target >= {MIN_REFERENCE_RATIO:g}x)")
    failures = []
    if judge and auto > MAX_AUTO_RATIO * pinned:
        failures.append(f"law: auto took {auto / pinned:.2f}x the pinned analysis")
    if judge and reference < MIN_REFERENCE_RATIO * pinned:
        failures.append(f"the analysis is only {reference / pinned:.1f}x faster than the recipe")
    return failures


def synthetic(n_studies: int, draws: int, workers: int, noises, judge: bool,
              laws=LAW_NAMES) -> tuple[list[str], list[bool]]:
    """Failures, and per study whether its held-out L_opt was covered."""
    cells = [(law, noise, seed) for law in laws for noise in noises
             for seed in range(n_studies)]
    t0 = time.perf_counter()
    if workers == 1:
        records = studies(0, cells, draws)
    else:
        with exit_on_failure():
            parts = run_workers(studies, [(cells[i::workers], draws) for i in range(workers)])
        records = [r for part in parts for r in part]
    print(f"== synthetic studies: {len(records)} in {time.perf_counter() - t0:.0f} s "
          f"({n_studies} per family x noise {', '.join(f'{x:.0%}' for x in noises)}; "
          f"{draws} draws)")
    print(f"   {'family':<12} {'noise':>5} {'right':>6} {'N_opt cov':>9} {'w/spread':>8} "
          f"{'held L cov':>10} {'held N cov':>10}")
    failures, problems = [], []
    for law in laws:
        for noise in (*noises, None):
            rows = [r for r in records if noise is None or r.noise == noise]
            s = summary(rows, law)
            if noise is None:  # a width / spread per noise level: the spreads differ
                s["n_opt_width"] = float(np.mean([summary([r for r in records if r.noise == x],
                                                          law)["n_opt_width"] for x in noises]))
            label = "all" if noise is None else f"{noise:.0%}"
            print(f"   {law:<12} {label:>5} {s['right_family']:>6.0%} {s['n_opt_coverage']:>9.3f} "
                  f"{s['n_opt_width']:>8.2f} {s['held_loss_coverage']:>10.3f} "
                  f"{s['held_n_opt_coverage']:>10.3f}")
            if not all(np.isfinite(v) for k, v in s.items() if k != "n_opt_width"):
                problems.append(f"{law}, noise {label}: a cell without finite numbers")
            if noise is not None or not judge:
                continue
            if s["right_family"] < RIGHT_FAMILY:
                failures.append(f"{law}: the true family chosen in {s['right_family']:.0%}")
            for key, (lo, hi) in (("n_opt_coverage", COVERAGE), ("n_opt_width", WIDTH),
                                  ("held_loss_coverage", COVERAGE)):
                if not lo <= s[key] <= hi:
                    failures.append(f"{law}: {key} {s[key]:.3f} outside [{lo}, {hi}]")
    hits = held_loss_hits(records)
    print(f"   held-out L_opt covered in {np.mean(hits):.1%} of the {len(hits)} studies "
          f"(every family and noise level)")
    return failures + problems, hits


def _vertex_loss(group) -> float:
    point = approach2_point(group)
    return float(point["loss"]) if point["valid"] else float(np.min(group.loss))


def real(draws: int, quick: bool) -> tuple[list[str], list[bool]]:
    """Problems, and per (split, budget) pair of both ladders whether L_opt was covered."""
    problems, pairs = [], []
    for name, runs in (("Epoch's Chinchilla runs", epoch_runs()), ("Llama 3", llama_runs())):
        cfg = AnalysisConfig.from_params({})
        prepared, _ = prepare_runs(runs, cfg)
        groups = [g for g in budget_groups(prepared) if g.loss.size >= cfg.budgets.min_runs]
        splits = range(3, len(groups)) if not quick else [len(groups) - 1]
        hits: dict[bool, list[bool]] = {True: [], False: []}
        measured: list[bool] = []  # splits of four budgets or more: rollout could measure
        for k in splits:
            edge = np.sqrt(groups[k - 1].budget * groups[k].budget)
            below = runs[runs["compute_budget"] < edge]
            later = groups[k:]
            result = analyse(below, _params("auto", draws), compute_model="6nd")
            law_error = result.surface.law_error
            for with_error in (True, False):  # the same fit, its intervals with and without
                result.surface.law_error = law_error if with_error else None
                table = result.predict([g.budget for g in later], approach="approach_3")
                for g, row in zip(later, table.itertuples(), strict=True):
                    hits[with_error].append(row.loss_lo <= _vertex_loss(g) <= row.loss_hi)
                    if with_error and k > MIN_FIT_BUDGETS:
                        measured.append(hits[True][-1])
        cov, bare = (float(np.mean(hits[k])) for k in (True, False))
        print(f"== {name}: {len(groups)} budgets with {cfg.budgets.min_runs}+ runs; L_opt beyond "
              f"the fit covered in "
              f"{cov:.0%} of {len(hits[True])} (split, budget) pairs ({bare:.0%} without the "
              f"law's error); from {MIN_FIT_BUDGETS + 1} budgets on {sum(measured)} of "
              f"{len(measured)}")
        pairs += hits[True]
        if not np.isfinite(cov):
            problems.append(f"{name}: no coverage")
    return problems, pairs


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--studies", type=int, default=30, help="studies per family x noise")
    parser.add_argument("--draws", type=int, default=200, help="bootstrap draws per study")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--every", type=int, default=45,
                        help="run every K-th paper-recipe start and scale its time")
    parser.add_argument("--quick", action="store_true", help="every code path in seconds")
    args = parser.parse_args(argv)
    logging.disable(logging.WARNING)
    failures: list[str] = []
    have_data = EPOCH_CSV.is_file() and LLAMA_CSV.is_file()
    if have_data:
        failures += speed(100 if args.quick else 1000, 1 if args.quick else 5,
                          900 if args.quick else max(1, args.every), judge=not args.quick)
    else:
        print(f"== skipped speed and real runs: {REFERENCE} not found")
    found, hits = synthetic(1 if args.quick else args.studies, 40 if args.quick else args.draws,
                            1 if args.quick else args.workers,
                            NOISES[:1] if args.quick else NOISES, judge=not args.quick,
                            laws=("chinchilla", "saturating") if args.quick else LAW_NAMES)
    failures += found
    if have_data:
        found, pairs = real(40 if args.quick else args.draws, args.quick)
        failures += found
        print(f"== held-out L_opt beyond the fit, every synthetic study and real (split, budget) "
              f"pair together: {np.mean(hits + pairs):.1%} of {len(hits) + len(pairs)} "
              f"(synthetic {np.mean(hits):.1%} of {len(hits)}, real {np.mean(pairs):.1%} of "
              f"{len(pairs)})")
    for failure in failures:
        print(f"FAILED: {failure}", file=sys.stderr)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
