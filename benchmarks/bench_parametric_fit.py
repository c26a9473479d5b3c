"""Approach 3 speed and accuracy, measured side by side with the paper's recipe in one run.

1. Speed on Epoch AI's 240 digitised Chinchilla runs: `fitting.surface.fit.fit_parametric` vs
   the plain reference (`fitting.reference`: scipy L-BFGS-B from each of the 4,500 grid starts,
   summed Huber, finite-difference gradients as in Epoch AI's notebook), and the objective
   each reaches.
2. A 1,000-draw bootstrap of the fit (the pipeline's default), timed alternately with the frozen
   earlier bootstrap (`reference_fit.bootstrap_parametric_reference`) on the same resampling
   counts: the speed-up (full mode fails below 3x), and the 95% intervals of alpha, beta, a, b,
   E and N_opt(1e24) from both (any mode fails when an endpoint moves by more than its
   Monte-Carlo standard error, `percentile_se`); then the per-draw-losses (residual bootstrap)
   path on synthetic losses.
3. Accuracy on synthetic surfaces with a known truth: error of the N_opt exponent a and of
   N_opt(1e24) for Approaches 1, 2 and 3, over several noise seeds.

    .venv/bin/python benchmarks/bench_parametric_fit.py            # full reference, ~10 min
    .venv/bin/python benchmarks/bench_parametric_fit.py --every 45 # 100 reference starts
    .venv/bin/python benchmarks/bench_parametric_fit.py --quick    # seconds: a smoke test

With --every K the reference runs every K-th start and its full-grid time is estimated as the
measured time x K (printed as an estimate); its objective is then that of the subset only.
`--quick` runs 5 reference starts (analytic gradients), a 50-draw bootstrap (both
implementations, timed once, speed-up not checked) and one accuracy seed. Every mode exits
non-zero when a check fails: flops-fit's objective worse than the reference's, a bootstrap
interval off the reference's by more than Monte-Carlo noise or not finite, a bootstrap speed-up
below 3x (full mode only), or an Approach 2-3 exponent error above 0.1.
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
from reference_fit import bootstrap_parametric_reference, fit_parametric_reference

from flops_fit.fitting.bootstrap import resample_weights
from flops_fit.fitting.isoflop.approaches import fit_isoflop_approaches
from flops_fit.fitting.runs.prepare import prepare_runs
from flops_fit.fitting.runs.simulated import CHINCHILLA_TRUTH, synthetic_results
from flops_fit.fitting.surface.compute_model import ComputeModel
from flops_fit.fitting.surface.fit import bootstrap_parametric, fit_parametric
from flops_fit.fitting.surface.law import (
    allocation_constants,
    optimal_allocation_6nd,
    parametric_loss,
)
from flops_fit.fitting.surface.objective import theta_to_params
from flops_fit.fitting.surface.study import fit_surface
from flops_fit.fitting.threads import limit_blas_threads
from flops_fit.parameters.analysis import AnalysisConfig, BootstrapParams
from flops_fit.planning.flops import tokens_6nd

MAX_EXPONENT_ERROR = 0.1  # Approaches 2-3: |a - a_true| above this fails (1 % noise: ~0.01)
MIN_BOOTSTRAP_SPEEDUP = 3.0  # the warm-started bootstrap must beat the frozen one by this much
BOOTSTRAP_REPEATS = 3  # full mode: reference and new timed alternately this many times

ROOT = Path(__file__).resolve().parents[1]
CHINCHILLA_CSV = ROOT / ".." / "shared" / "reference" / "epochai_chinchilla_svg_extracted_data.csv"


def chinchilla():
    df = pd.read_csv(CHINCHILLA_CSV)
    df = df[df["loss"] < sorted(df["loss"])[-5]]
    n = df["Model Size"].to_numpy(float)
    d = tokens_6nd(df["Training FLOP"].to_numpy(float), n)
    return n, d, df["loss"].to_numpy(float)


def timed(fn, repeat=1):
    times, out = [], None
    for _ in range(repeat):
        t0 = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - t0)
    return out, statistics.median(times)


def speed(
    every: int,
    analytic_reference: bool,
    plain_reference: bool = True,
    draws: int = 1000,
    repeat: int = 5,
    quick: bool = False,
) -> list[str]:
    """Chinchilla: speed against the reference, and a bootstrap. Returns the failed checks."""
    failures = []
    n, d, loss = chinchilla()
    print(f"== Approach 3 on {len(n)} Chinchilla runs (Epoch AI's digitised data)")
    with limit_blas_threads(1) as threads:
        print(f"   {threads}; {os.cpu_count()} CPU cores visible")
        fit, t_fast = timed(lambda: fit_parametric(n, d, loss), repeat=repeat)
        variants = [("plain (finite-difference gradients)", False)] if plain_reference else []
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
            no_worse = fit.objective <= ref.objective * (1 + 1e-9)
            print(
                f"     objective: reference {ref.objective:.10g}, flops-fit "
                f"{fit.objective:.10g} -> flops-fit is "
                f"{'no worse' if no_worse else 'WORSE'} "
                f"(relative difference {(fit.objective - ref.objective) / ref.objective:+.2e})"
            )
            if not no_worse:
                failures.append(f"flops-fit's objective is worse than the reference ({label})")
            print(
                f"     speed-up: {t_ref / t_fast:,.0f}x  (flops-fit fit {t_fast * 1e3:.0f} ms, "
                f"median of {repeat})"
            )
        print(
            f"   fit: E={fit.E:.4f} A={fit.A:.1f} B={fit.B:.1f} alpha={fit.alpha:.4f} "
            f"beta={fit.beta:.4f} (Epoch AI: 1.8172, 482.01, 2085.43, 0.3478, 0.3658)"
        )
        failures += bootstrap_comparison(fit, n, d, loss, draws, t_fast, full=not quick)
    return failures


def percentile_se(samples: np.ndarray, q: float) -> float:
    """Monte-Carlo standard error of the q-th percentile of `samples` (B draws), distribution
    free: the order statistics +-1 binomial sd, sqrt(p (1 - p) / B), either side of p = q/100,
    halved (the percentile of B draws moves by about this between two bootstraps)."""
    p, b = q / 100.0, len(samples)
    s = np.sqrt(p * (1 - p) / b)
    lo, hi = np.percentile(samples, [100 * max(0.0, p - s), 100 * min(1.0, p + s)])
    return float(hi - lo) / 2


def interval_quantities(theta: np.ndarray) -> dict[str, np.ndarray]:
    """alpha, beta, a, b, E and N_opt(1e24) of each draw (finite draws only)."""
    params = theta_to_params(theta)
    out = {k: params[k] for k in ("alpha", "beta", "a", "b", "E")}
    out["N_opt(1e24)"] = np.asarray(optimal_allocation_6nd(1e24, params)[0], float).reshape(-1)
    ok = np.all([np.isfinite(v) for v in out.values()], axis=0)
    return {k: v[ok] for k, v in out.items()}


def bootstrap_comparison(fit, n, d, loss, draws: int, t_fit: float, full: bool) -> list[str]:
    """`bootstrap_parametric` against the frozen earlier bootstrap
    (`reference.bootstrap_parametric_reference`) on the same draws: time, speed-up, intervals;
    then the per-draw-losses (residual bootstrap) path."""
    failures = []
    boot_params = BootstrapParams(draws=draws, extra_starts=2)
    w = resample_weights(np.ones(len(n), bool), np.zeros(len(n), int), draws, seed=0, mode="runs")

    def new():
        return bootstrap_parametric(fit, n, d, loss, w, boot_params)

    def ref():
        return bootstrap_parametric_reference(fit.theta, n, d, loss, w, extra_starts=2, seed=0)

    new(), ref()  # warm up both (first-touch page faults, caches)
    t_new, t_ref = [], []
    for _ in range(BOOTSTRAP_REPEATS if full else 1):
        boot, dt = timed(new)
        t_new.append(dt)
        (ref_theta, ref_f, ref_improved), dt = timed(ref)
        t_ref.append(dt)
    ratios = [r / f for r, f in zip(t_ref, t_new, strict=True)]
    speedup = statistics.median(ratios)
    print(
        f"== {draws:,}-draw bootstrap (warm start + 2 perturbed starts per draw), the same "
        f"resampling counts for both, timed alternately x{len(ratios)}:"
    )
    print(
        f"   reference (frozen earlier bootstrap): {statistics.median(t_ref):.2f} s  "
        f"(runs: {', '.join(f'{t:.2f}' for t in t_ref)})"
    )
    print(
        f"   flops-fit bootstrap_parametric:            {statistics.median(t_new):.2f} s  "
        f"(runs: {', '.join(f'{t:.2f}' for t in t_new)}); "
        f"{draws * t_fit / statistics.median(t_new):.0f}x faster per draw than a cold fit"
    )
    print(
        f"   speed-up: {speedup:.1f}x (median of per-run ratios "
        f"{', '.join(f'{r:.1f}' for r in ratios)}; target >= {MIN_BOOTSTRAP_SPEEDUP:g}x"
        f"{'' if full else ', not checked in --quick'})"
    )
    if full and speedup < MIN_BOOTSTRAP_SPEEDUP:
        failures.append(f"bootstrap speed-up {speedup:.2f}x < {MIN_BOOTSTRAP_SPEEDUP:g}x")
    tried = int(boot.extra_starts_tried.sum())
    print(
        f"   perturbed starts run for {tried} of {draws} draws; they won in "
        f"{int(boot.improved_by_extra_start.sum())} (reference, all draws: "
        f"{int(ref_improved.sum())}); objective new vs reference: "
        f"{np.nanmax((boot.objective - ref_f) / ref_f):+.1e} worst, "
        f"{np.nanmedian((boot.objective - ref_f) / ref_f):+.1e} median (relative)"
    )
    q_new, q_ref = interval_quantities(boot.theta), interval_quantities(ref_theta)
    print(
        "   95% intervals (2.5/97.5 percentiles); diff = new - reference, in units of the "
        "interval width and of the percentile's Monte-Carlo SE (limit 1 SE):"
    )
    print(f"   {'':<12} {'reference':>23} {'new':>23} {'diff/width':>17} {'diff/MC-SE':>15}")
    for key, ref_v in q_ref.items():
        new_v = q_new[key]
        lo_r, hi_r = np.percentile(ref_v, [2.5, 97.5])
        lo_n, hi_n = np.percentile(new_v, [2.5, 97.5])
        width = hi_r - lo_r
        se = np.array([percentile_se(ref_v, 2.5), percentile_se(ref_v, 97.5)])
        diff = np.array([lo_n - lo_r, hi_n - hi_r])
        in_se = np.abs(diff) / np.maximum(se, 1e-300)
        print(
            f"   {key:<12} [{lo_r:10.4g}, {hi_r:10.4g}] [{lo_n:10.4g}, {hi_n:10.4g}] "
            f"{diff[0] / width:+8.1e} {diff[1] / width:+8.1e} {in_se[0]:7.3f} {in_se[1]:7.3f}"
        )
        if not (np.all(np.isfinite([lo_n, hi_n])) and np.all(in_se <= 1.0)):
            failures.append(
                f"bootstrap interval of {key} moved by {in_se.max():.2f} Monte-Carlo SEs "
                f"(new [{lo_n:.4g}, {hi_n:.4g}] vs reference [{lo_r:.4g}, {hi_r:.4g}])"
            )
    alpha = np.percentile(q_new["alpha"], [2.5, 97.5])
    if not (np.all(np.isfinite(alpha)) and alpha[0] < fit.alpha < alpha[1]):
        failures.append(f"the bootstrap interval of alpha {alpha} misses the fit {fit.alpha}")

    # The residual bootstrap: every run once, each draw its own synthetic losses.
    pred = np.asarray(parametric_loss(n, d, fit.params), float)
    resid = np.log(loss) - np.log(pred)
    rng = np.random.default_rng(0)
    losses = pred * np.exp(resid[rng.integers(0, len(n), size=(draws, len(n)))])
    res_boot, t_res = timed(lambda: bootstrap_parametric(fit, n, d, loss, None, boot_params,
                                                         losses=losses))  # fmt: skip
    res_alpha = np.percentile(theta_to_params(res_boot.theta)["alpha"], [2.5, 97.5])
    print(
        f"   per-draw losses (residual bootstrap, weights None): {t_res:.2f} s "
        f"(resampling counts above: {statistics.median(t_new):.2f} s); alpha 95% "
        f"interval [{res_alpha[0]:.4f}, {res_alpha[1]:.4f}]"
    )
    if not np.all(np.isfinite(res_alpha)):
        failures.append("the residual bootstrap's alpha interval is not finite")
    return failures


def accuracy(seeds: int, noise: float) -> list[str]:
    """Exponent and N_opt(1e24) errors on synthetic studies. Returns the failed checks."""
    truth = CHINCHILLA_TRUTH
    a_true = allocation_constants(truth)["a"]
    n24_true = float(optimal_allocation_6nd(1e24, truth)[0])
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
            surf = fit_surface(runs, cfg, ComputeModel.six_nd())
            for approach in ("approach_1", "approach_2"):
                law = iso[approach].laws["n_opt"]
                n24 = law.coefficient * 1e24**law.exponent
                errs[approach].append((law.exponent - a_true, n24 / n24_true - 1))
            fit = surf.fit
            n24 = float(optimal_allocation_6nd(1e24, fit)[0])
            errs["approach_3"].append((fit.a - a_true, n24 / n24_true - 1))
    print(
        f"== Accuracy on the Chinchilla surface (a = {a_true:.4f}, N_opt(1e24) = "
        f"{n24_true:.3g}), 5 budgets 1e17-1e21 x 9 sizes, {noise:.0%} log-normal noise, "
        f"{seeds} seeds ({time.perf_counter() - t0:.1f} s)"
    )
    print(
        f"   {'approach':<11} {'mean |a err|':>13} {'max |a err|':>12} "
        f"{'mean |N24 err|':>15} {'max |N24 err|':>14}"
    )
    failures = []
    for approach, rows in errs.items():
        ea = np.abs([r[0] for r in rows])
        en = np.abs([r[1] for r in rows])
        print(
            f"   {approach:<11} {ea.mean():13.4f} {ea.max():12.4f} {en.mean():14.1%} "
            f"{en.max():14.1%}"
        )
        # Approach 1's optimum is one of the sampled sizes (a 1.7x grid here), so its exponent
        # error is the grid's, not the fit's: it is printed, not gated.
        gated = approach != "approach_1"
        if gated and not (np.all(np.isfinite(en)) and ea.max() <= MAX_EXPONENT_ERROR):
            failures.append(
                f"{approach}: exponent error {ea.max():.3g} (limit {MAX_EXPONENT_ERROR})"
            )
    return failures


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
    parser.add_argument(
        "--quick",
        action="store_true",
        help="seconds: 5 reference starts, a 50-draw bootstrap, one accuracy seed",
    )
    args = parser.parse_args(argv)
    failures: list[str] = []
    if CHINCHILLA_CSV.is_file():
        if args.quick:
            failures += speed(
                900, analytic_reference=True, plain_reference=False, draws=50, repeat=1, quick=True
            )
        else:
            failures += speed(max(1, args.every), args.analytic_reference)
    else:
        print(f"== skipped the Chinchilla speed check: {CHINCHILLA_CSV.resolve()} not found")
    failures += accuracy(1 if args.quick else args.seeds, args.noise)
    for failure in failures:
        print(f"FAILED: {failure}", file=sys.stderr)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
