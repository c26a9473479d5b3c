"""Approach 3 speed and accuracy, measured side by side with the paper's recipe in one run.

1. Speed on Epoch AI's 240 digitised Chinchilla runs: `fitting.parametric.fit_parametric` vs
   the plain reference (`fitting.reference`: scipy L-BFGS-B from each of the 4,500 grid starts,
   summed Huber, finite-difference gradients as in Epoch AI's notebook), and the objective
   each reaches.
2. A 1,000-draw bootstrap of the fit (the pipeline's default).
3. Accuracy on synthetic surfaces with a known truth: error of the N_opt exponent a and of
   N_opt(1e24) for Approaches 1, 2 and 3, over several noise seeds.

    .venv/bin/python benchmarks/bench_parametric_fit.py            # full reference, ~10 min
    .venv/bin/python benchmarks/bench_parametric_fit.py --every 45 # 100 reference starts

With --every K the reference runs every K-th start and its full-grid time is estimated as the
measured time x K (printed as an estimate); its objective is then that of the subset only.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd

from flops_fit.fitting.analysis import (
    AnalysisConfig,
    fit_isoflop_approaches,
    fit_surface,
    prepare_runs,
)
from flops_fit.fitting.bootstrap import resample_weights
from flops_fit.fitting.parametric import (
    allocation_constants,
    bootstrap_parametric,
    fit_parametric,
    optimal_allocation,
)
from flops_fit.fitting.reference import fit_parametric_reference
from flops_fit.fitting.synthetic import CHINCHILLA_TRUTH, synthetic_results
from flops_fit.fitting.threads import limit_blas_threads

ROOT = Path(__file__).resolve().parents[1]
CHINCHILLA_CSV = ROOT / ".." / "shared" / "reference" / "epochai_chinchilla_svg_extracted_data.csv"


def chinchilla():
    df = pd.read_csv(CHINCHILLA_CSV)
    df = df[df["loss"] < sorted(df["loss"])[-5]]
    n = df["Model Size"].to_numpy(float)
    d = df["Training FLOP"].to_numpy(float) / (6 * n)
    return n, d, df["loss"].to_numpy(float)


def timed(fn, repeat=1):
    times, out = [], None
    for _ in range(repeat):
        t0 = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - t0)
    return out, statistics.median(times)


def speed(every: int, analytic_reference: bool) -> None:
    n, d, loss = chinchilla()
    print(f"== Approach 3 on {len(n)} Chinchilla runs (Epoch AI's digitised data)")
    with limit_blas_threads(1) as threads:
        print(f"   {threads}; {os.cpu_count()} CPU cores visible")
        fit, t_fast = timed(lambda: fit_parametric(n, d, loss), repeat=5)
        variants = [("plain (finite-difference gradients)", False)]
        if analytic_reference:
            variants.append(("analytic gradients", True))
        for label, analytic in variants:
            (ref, report) = fit_parametric_reference(
                n, d, loss, analytic_gradient=analytic, every=every
            )
            t_ref = report["seconds"] * every
            est = f" (estimated: every {every}-th start timed x {every})" if every > 1 else ""
            print(
                f"   reference, {label}: {report['starts']} starts in "
                f"{report['seconds']:.1f} s; full grid {t_ref:.1f} s{est}"
            )
            print(
                f"     objective: reference {ref.objective:.10g}, flops-fit "
                f"{fit.objective:.10g} -> flops-fit is "
                f"{'no worse' if fit.objective <= ref.objective * (1 + 1e-9) else 'WORSE'} "
                f"(relative difference {(fit.objective - ref.objective) / ref.objective:+.2e})"
            )
            print(
                f"     speed-up: {t_ref / t_fast:,.0f}x  (flops-fit fit {t_fast * 1e3:.0f} ms, "
                f"median of 5)"
            )
        print(
            f"   fit: E={fit.E:.4f} A={fit.A:.1f} B={fit.B:.1f} alpha={fit.alpha:.4f} "
            f"beta={fit.beta:.4f} (Epoch AI: 1.8172, 482.01, 2085.43, 0.3478, 0.3658)"
        )
        w = resample_weights(np.ones(len(n), bool), np.zeros(len(n), int), 1000, seed=0)
        boot, t_boot = timed(lambda: bootstrap_parametric(fit, n, d, loss, w, extra_starts=2))
        print(
            f"== 1,000-draw bootstrap (warm start + 2 perturbed starts per draw): "
            f"{t_boot:.2f} s ({t_boot / 10:.0%} of the 10 s budget); "
            f"{1000 * t_fast / t_boot:.0f}x faster per fit than a cold fit"
        )
        alpha = np.percentile(boot["theta"][:, 3], [2.5, 97.5])
        print(f"   alpha 95% interval [{alpha[0]:.4f}, {alpha[1]:.4f}]")


def accuracy(seeds: int, noise: float) -> None:
    truth = CHINCHILLA_TRUTH
    a_true = allocation_constants(truth)["a"]
    n24_true = float(optimal_allocation(1e24, truth)[0])
    cfg = AnalysisConfig.from_params({"bootstrap": {"enabled": False}})
    errs: dict[str, list[tuple[float, float]]] = {
        "approach_1": [],
        "approach_2": [],
        "approach_3": [],
    }
    t0 = time.perf_counter()
    with limit_blas_threads(1):
        for seed in range(seeds):
            runs, _ = prepare_runs(synthetic_results(noise=noise, seed=seed), cfg)
            iso = fit_isoflop_approaches(runs, cfg)
            surf = fit_surface(runs, cfg)
            for approach in ("approach_1", "approach_2"):
                law = iso[approach]["laws"]["n_opt"]
                n24 = law["coefficient"] * 1e24 ** law["exponent"]
                errs[approach].append((law["exponent"] - a_true, n24 / n24_true - 1))
            fit = surf["fit"]
            n24 = float(optimal_allocation(1e24, fit)[0])
            errs["approach_3"].append((fit["a"] - a_true, n24 / n24_true - 1))
    print(
        f"== Accuracy on the Chinchilla surface (a = {a_true:.4f}, N_opt(1e24) = "
        f"{n24_true:.3g}), 5 budgets 1e17-1e21 x 9 sizes, {noise:.0%} log-normal noise, "
        f"{seeds} seeds ({time.perf_counter() - t0:.1f} s)"
    )
    print(
        f"   {'approach':<11} {'mean |a err|':>13} {'max |a err|':>12} "
        f"{'mean |N24 err|':>15} {'max |N24 err|':>14}"
    )
    for approach, rows in errs.items():
        ea = np.abs([r[0] for r in rows])
        en = np.abs([r[1] for r in rows])
        print(
            f"   {approach:<11} {ea.mean():13.4f} {ea.max():12.4f} {en.mean():14.1%} "
            f"{en.max():14.1%}"
        )


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--every",
        type=int,
        default=1,
        help="run every K-th reference start and extrapolate its time",
    )
    parser.add_argument(
        "--analytic-reference",
        action="store_true",
        help="also time the reference with analytic gradients",
    )
    parser.add_argument("--seeds", type=int, default=8)
    parser.add_argument("--noise", type=float, default=0.01)
    args = parser.parse_args(argv)
    if CHINCHILLA_CSV.is_file():
        speed(max(1, args.every), args.analytic_reference)
    else:
        print(f"== skipped the Chinchilla speed check: {CHINCHILLA_CSV.resolve()} not found")
    accuracy(args.seeds, args.noise)
    return 0


if __name__ == "__main__":
    sys.exit(main())
