"""Model FLOP utilisation (MFU) of the torch backend on this machine, for the default sweep.

MFU = achieved training FLOP/s ÷ the matmul peak, both measured in this run, per worker process,
with every worker busy (as in `make run`: one single-threaded worker per core):
  * peak: the best of a few large float32 matmuls (2048², 1 thread), timed in each worker
    just before and just after each shape's training measurement (on a shared or virtualised
    machine the peak drifts by 2x within minutes: measured here between 46 and 96 GFLOP/s);
  * achieved: tokens/s of the real training loop (`flops_fit.nn.train.train_run`, optimiser,
    clipping and data included) × `flops.training_flops_per_token(shape, "full")`.
On CUDA (`--device cuda`, one process: one run at a time per GPU) the trainer runs in the
environment's precision (`--env gpu`: bf16 autocast), the peak is the best 8192² matmul in that
precision (the tensor cores' dense peak as this GPU reaches it), and each shape is first trained
for a few warm-up steps whose rate sets how many steps fill `--seconds`.
FLOPs are the project's count (`flops_formula: full`): it counts the full T×T attention score
matrix as Kaplan et al. and Hoffmann et al. do, while a causal kernel computes about half of it;
the `MFU causal` column counts attention at (T+1)/2T instead (what is really executed).

Prints tokens/s and MFU per shape of the default sweep (conf/base/parameters_planning.yml), the
smallest and largest shapes, and the sweep-wide MFU weighted by each run's time (total FLOPs ÷
Σ run FLOPs / MFU of its shape), with the predicted training wall time of the sweep. Each
measured run records its loss curve as a study's run does (`torch_backend.curve`, on the study's
held-out set): the `curve` column is the time of its evaluations over the run's training time
(target: at most `torch_backend.curve.max_cost`, a share of the run's FLOPs).

The parameters are the environment's own (Kedro's config loader, validated by the project's
parameter models); the trainer runs on the CPU, one thread per worker, without checkpoints.

    python benchmarks/bench_training_mfu.py [--workers N] [--seconds 4] [--env base]
                                            [--batch-size B] [--json out.json]
    python benchmarks/bench_training_mfu.py --quick   # seconds: 1 worker, the 2 smallest shapes
    python benchmarks/bench_training_mfu.py --device cuda --env gpu [--seconds 2]

A worker that raises or dies ends the benchmark at once with its traceback or exit code and exit
status 1 (benchmarks/_harness.py); `--fail-worker raise|exit` makes worker 0 fail on purpose.
"""

from __future__ import annotations

import os

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # before torch, in every worker process

import argparse  # noqa: E402
import heapq  # noqa: E402
import json  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
from dataclasses import dataclass, replace  # noqa: E402
from functools import partial  # noqa: E402
from pathlib import Path  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

from _harness import CTX, FAIL_MODES, exit_on_failure, run_workers  # noqa: E402

TARGET_MFU = 0.5


@dataclass(frozen=True)
class Settings:
    """How hard each worker measures: the full benchmark, or `--quick` (seconds, same code)."""

    seconds: float  # of training per shape and worker
    min_steps: int  # optimiser steps per shape at least
    peak_size: int  # n of the n×n float32 matmul that measures the peak
    peak_seconds: float  # per peak measurement (best of 3)
    cuda_peak_size: int  # the same on CUDA, in the training precision (large: a GPU needs it)


FULL = Settings(seconds=4.0, min_steps=8, peak_size=2048, peak_seconds=0.6, cuda_peak_size=8192)
QUICK = Settings(seconds=0.1, min_steps=3, peak_size=512, peak_seconds=0.1, cuda_peak_size=1024)
QUICK_SHAPES = 2  # the smallest shapes of the sweep
QUICK_WORKERS = 1
QUICK_HELDOUT_TOKENS = 4096  # the quick mode's held-out set (the full one: the study's)


def load_parameters(env: str) -> dict:
    """`params:` of a conf environment, merged as `kedro run --env` merges them."""
    from kedro.config import OmegaConfigLoader

    from flops_fit.settings import CONFIG_LOADER_ARGS

    loader = OmegaConfigLoader(
        conf_source=str(ROOT / "conf"), **{**CONFIG_LOADER_ARGS, "default_run_env": env}
    )
    return loader["parameters"]


def planned_runs(params: dict, batch_size: int | None = None) -> tuple[list[dict], int]:
    from flops_fit.data.corpus import prepare_corpus
    from flops_fit.datasets.package_corpus import PackageCorpusDataset
    from flops_fit.parameters.corpus import CorpusConfig
    from flops_fit.parameters.planning import PlanningConfig
    from flops_fit.planning.sweep import plan_sweep

    corpus_params = CorpusConfig.from_params(params.get("corpus")).model_dump()
    split = prepare_corpus(PackageCorpusDataset().load(), corpus_params)
    planning = dict(params.get("planning") or {})
    if batch_size:
        planning["batch_size"] = batch_size
    cfg = PlanningConfig.from_params(planning)
    records, _ = plan_sweep(cfg, int(split.train.size) if cfg.max_epochs else None)
    return records, int(split.train.size)


def trainer_config(params: dict, device: str = "cpu", heldout_tokens: int | None = None):
    """(the environment's `params:torch_backend`, the same on `device` — on the CPU one thread
    in float32, on CUDA the environment's precision — without checkpoints: what the workers
    measure; `heldout_tokens` replaces the study's held-out size)."""
    from flops_fit.parameters.torch_backend import TorchConfig

    study = TorchConfig.from_params(params.get("torch_backend"))
    section = study.model_dump()
    section.update(device=device, num_threads=1, checkpoint_every_minutes=None)
    if device == "cpu":
        section.update(precision="float32")
    if heldout_tokens:
        section["eval"]["heldout_tokens"] = heldout_tokens
    return study, TorchConfig.from_params(section)


def matmul_peak(seconds: float = 0.6, n: int = 2048, device: str = "cpu", dtype=None) -> float:
    """Best FLOP/s of n×n matmuls on `device` in `dtype` (default float32), best of 3."""
    import torch

    dev = torch.device(device)
    a = torch.randn(n, n, device=dev, dtype=dtype)
    b = torch.randn(n, n, device=dev, dtype=dtype)
    cuda = dev.type == "cuda"
    # CUDA launches are asynchronous: time batches of matmuls between synchronisations.
    per_sync = 8 if cuda else 1
    best = 0.0
    for _ in range(3):
        a @ b
        if cuda:
            torch.cuda.synchronize(dev)
        t0, k = time.perf_counter(), 0
        while time.perf_counter() - t0 < seconds / 3:
            for _ in range(per_sync):
                a @ b
            if cuda:
                torch.cuda.synchronize(dev)
            k += per_sync
        best = max(best, 2 * n**3 * k / (time.perf_counter() - t0))
    return best


def describe_device(cfg, settings: Settings, workers: int) -> tuple[str, str, str, int]:
    """(precision, where the workers train, how the peak is measured, the peak matmul's n)."""
    if cfg.device == "cpu":
        n = settings.peak_size
        return ("float32", f"{workers} worker process(es) x 1 thread, all busy",
                f"peak: fp32 {n}x{n} matmul, 1 thread per worker, all workers busy", n)
    import torch

    from flops_fit.nn.runtime import resolve_device, resolve_dtype

    device = resolve_device(cfg.device)  # raises without a CUDA device
    precision = str(resolve_dtype(cfg.precision, device)).removeprefix("torch.")
    n = settings.cuda_peak_size
    return (precision, f"1 process on {torch.cuda.get_device_name(device)}, {precision}",
            f"peak: {precision} {n}x{n} matmul on the GPU", n)


def worker(rank: int, shapes: list[dict], cfg, settings: Settings, barrier) -> list[dict]:
    import numpy as np
    import torch

    from flops_fit.data.corpus import CorpusSplit
    from flops_fit.data.text import ByteWindows
    from flops_fit.nn.runtime import resolve_device, resolve_dtype, tune_cpu_allocator
    from flops_fit.nn.train import train_run
    from flops_fit.planning.flops import training_flops_per_token
    from flops_fit.planning.shapes import ModelShape
    from flops_fit.plugins.data import NEXT_TOKEN_LOSS
    from flops_fit.plugins.models import BUILTIN_GPT, ModelPlugin

    torch.set_num_threads(1)
    tune_cpu_allocator()
    rng = np.random.default_rng(rank)
    corpus = CorpusSplit(
        train=rng.integers(0, 256, 2_000_000, dtype=np.uint8),
        heldout=rng.integers(0, 256, 200_000, dtype=np.uint8),
    )
    device = resolve_device(cfg.device)
    cuda = device.type == "cuda"
    peak = partial(matmul_peak, settings.peak_seconds,
                   settings.cuda_peak_size if cuda else settings.peak_size, str(device),
                   resolve_dtype(cfg.precision, device))
    results = []
    for item in shapes:
        shape = ModelShape.from_record(item)
        batch = item["batch_size"]
        fpt = training_flops_per_token(shape, "full")
        data = ByteWindows(corpus, shape.context_length, cfg.eval.heldout_tokens)
        train = partial(train_run, ModelPlugin(BUILTIN_GPT), shape.to_dict(), data=data,
                        loss=NEXT_TOKEN_LOSS, flops_per_unit=fpt, batch_size=batch, config=cfg,
                        seed=rank, name="bench")
        if cuda:  # warm-up (lazy CUDA init, kernel choice, allocator), then a rate that sizes
            train(num_steps=settings.min_steps)  # the measured run
            rate = train(num_steps=settings.min_steps)["units_per_second"]
        else:
            rate = 30e9 / fpt  # a CPU thread's rough FLOP/s
        steps = max(
            settings.min_steps,
            int(settings.seconds * rate / (batch * shape.context_length)),
        )
        barrier.wait()  # every worker busy while any is measured
        before = peak()
        out = train(num_steps=steps)
        after = peak()
        results.append(
            {"tokens_per_second": out["units_per_second"], "peak": (before + after) / 2,
             "curve_share": out["curve_seconds"] / out["train_seconds"],
             "curve_points": len(out["loss_curve"])}
        )
    return results


def causal_flops_per_token(shape) -> float:
    """Training FLOPs/token with the causal half of the attention scores left out."""
    from flops_fit.planning.flops import BACKWARD_FACTOR, training_flops_per_token

    T, d, L = shape.context_length, shape.d_model, shape.num_layers
    skipped = 4 * T * d * L * (1 - (T + 1) / (2 * T))
    return training_flops_per_token(shape, "full") - (1 + BACKWARD_FACTOR) * skipped


def lpt_makespan(durations: list[float], workers: int) -> float:
    """Longest-processing-time-first schedule of the runs on `workers` (a good upper estimate)."""
    loads = [0.0] * workers
    for d in sorted(durations, reverse=True):
        heapq.heapreplace(loads, loads[0] + d)
    return max(loads)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true",
                        help=f"seconds: {QUICK_WORKERS} worker(s), the {QUICK_SHAPES} smallest "
                        "shapes, tiny timings (exercises the code, measures nothing)")
    parser.add_argument("--workers", type=int, default=None,
                        help=f"worker processes (default: one per core; {QUICK_WORKERS} with "
                        "--quick)")
    parser.add_argument("--seconds", type=float, default=None, help="per shape and worker")
    parser.add_argument("--env", default="base", help="conf environment to plan the sweep from")
    parser.add_argument("--device", choices=("cpu", "cuda"), default="cpu",
                        help="cpu: one single-threaded worker per core, float32; cuda: one "
                        "process in the environment's precision, MFU vs the GPU's peak")
    parser.add_argument("--batch-size", type=int, default=None, help="override planning.batch_size")
    parser.add_argument("--json", type=Path, default=None, help="also write the results here")
    parser.add_argument("--timeout", type=float, default=None,
                        help="give up (exit 1) when the workers take longer than this many seconds")
    parser.add_argument("--fail-worker", choices=FAIL_MODES, default=None,
                        help="make worker 0 raise or exit on purpose (tests the failure path)")
    args = parser.parse_args(argv)
    settings = QUICK if args.quick else FULL
    if args.seconds is not None:
        settings = replace(settings, seconds=args.seconds)
    workers = args.workers or (QUICK_WORKERS if args.quick else os.cpu_count() or 1)
    if args.device == "cuda":
        workers = 1  # one run at a time per GPU, as `kedro run --env gpu` trains

    from flops_fit.nn.curves import FORWARD_SHARE
    from flops_fit.planning.flops import training_flops_per_token
    from flops_fit.planning.shapes import ModelShape

    params = load_parameters(args.env)
    study_cfg, cfg = trainer_config(params, args.device,
                                    QUICK_HELDOUT_TOKENS if args.quick else None)
    records, train_tokens = planned_runs(params, args.batch_size)

    def shape_key(r: dict) -> tuple:
        return (*ModelShape.from_record(r).to_dict().values(), r["batch_size"])

    shapes: dict[tuple, dict] = {}
    for r in records:
        shapes.setdefault(shape_key(r), r)
    order = sorted(shapes.values(), key=lambda r: r["model_size"])
    if args.quick:
        order = order[:QUICK_SHAPES]
        measured = {shape_key(r) for r in order}
        records = [r for r in records if shape_key(r) in measured]
        print(
            f"QUICK mode: the {len(order)} smallest shapes and their runs only, tiny timings; "
            "the numbers below are not a measurement"
        )
    precision, where, peak_text, n = describe_device(cfg, settings, workers)
    print(
        f"default sweep ({args.env}): {len(records)} runs, {len(order)} shapes, "
        f"{sum(r['planned_flops'] for r in records):.3g} FLOPs; {where}; "
        f"~{settings.seconds:g} s per shape",
        flush=True,
    )

    timeout = args.timeout or 60 + len(order) * (10 * settings.seconds + 30)
    # The barrier's own timeout only frees workers orphaned by a killed parent.
    barrier = CTX.Barrier(workers, timeout=timeout)
    t0 = time.perf_counter()
    outs = run_workers(
        worker,
        [(order, cfg, settings, barrier)] * workers,
        timeout=timeout,
        fail=args.fail_worker,
    )
    bench_wall = time.perf_counter() - t0

    print(f"{peak_text}, timed just before and after each shape's training\n")
    flops_scale, flops_unit = (1e12, "TFLOP/s") if args.device == "cuda" else (1e9, "GFLOP/s")
    header = (
        f"{'shape':<16}{'N':>9}{'batch':>6}{'tokens/s':>11}{flops_unit:>9}{'peak':>7}"
        f"{'MFU':>7}{'MFU causal':>12}{'curve':>13}"
    )
    print(header)
    print("-" * len(header))
    rate: dict[int, float] = {}
    mfu_of: dict[int, float] = {}
    table = []
    for i, r in enumerate(order):
        shape = ModelShape.from_record(r)
        tps = sum(o[i]["tokens_per_second"] for o in outs) / len(outs)
        peak = sum(o[i]["peak"] for o in outs) / len(outs)
        fps = tps * training_flops_per_token(shape, "full")
        row = {
            "d_model": shape.d_model,
            "num_layers": shape.num_layers,
            "model_size": r["model_size"],
            "batch_size": r["batch_size"],
            "tokens_per_second": tps,
            "flops_per_second": fps,
            "peak_flops_per_second": peak,
            "mfu": fps / peak,
            "mfu_causal": tps * causal_flops_per_token(shape) / peak,
            "curve_share": max(o[i]["curve_share"] for o in outs),
            "curve_points": min(o[i]["curve_points"] for o in outs),
        }
        table.append(row)
        rate[id(r)], mfu_of[id(r)] = tps, row["mfu"]
        print(
            f"{f'd{shape.d_model} L{shape.num_layers} h{shape.num_heads}':<16}"
            f"{r['model_size']:>9}{r['batch_size']:>6}{tps:>11.0f}{fps / flops_scale:>9.1f}"
            f"{peak / flops_scale:>7.1f}{row['mfu']:>7.2f}{row['mfu_causal']:>12.2f}"
            f"{row['curve_share']:>8.1%} ({row['curve_points']:>2})"
        )

    # every planned run at the measured rate of its shape
    def of_shape(table: dict[int, float], r: dict) -> float:
        return table[id(shapes[shape_key(r)])]

    def shape_rate(r: dict) -> float:
        return of_shape(rate, r)

    times = [r["num_tokens"] / shape_rate(r) for r in records]
    eval_tokens = study_cfg.eval.heldout_tokens  # the study's held-out pass, forward only
    evals = [eval_tokens * FORWARD_SHARE / shape_rate(r) for r in records]
    total_flops = sum(r["planned_flops"] for r in records)
    # time-weighted: total FLOPs over the time each run would take at its shape's MFU
    sweep_mfu = total_flops / sum(r["planned_flops"] / of_shape(mfu_of, r) for r in records)
    makespan = lpt_makespan([t + e for t, e in zip(times, evals, strict=True)], workers)
    small, large = table[0], table[-1]
    print()
    print(f"smallest shape (N={small['model_size']}): MFU {small['mfu']:.2f}")
    print(f"largest shape  (N={large['model_size']}): MFU {large['mfu']:.2f}")
    verdict = "meets" if sweep_mfu >= TARGET_MFU else "BELOW"
    print(
        f"sweep-wide, time-weighted over {len(records)} runs: MFU {sweep_mfu:.2f} "
        f"({sweep_mfu / TARGET_MFU:.2f}x the {TARGET_MFU} target: {verdict})"
    )
    print(
        f"predicted training wall time on {workers} worker(s): {makespan:.0f} s "
        f"(runs {sum(times):.0f} s + held-out evaluation {sum(evals):.0f} s of worker time; "
        f"longest-first schedule); corpus: {train_tokens} training tokens"
    )
    worst = max(row["curve_share"] for row in table)
    limit = study_cfg.curve.max_cost
    print(f"loss curves: at most {worst:.1%} of a run's training time "
          f"({worst / limit:.2f}x the torch_backend.curve.max_cost of {limit:.0%} of its FLOPs)")
    print(f"(benchmark wall time {bench_wall:.0f} s)")
    if args.json:
        args.json.write_text(
            json.dumps(
                {
                    "shapes": table,
                    "sweep_mfu": sweep_mfu,
                    "predicted_wall_seconds": makespan,
                    "workers": workers,
                    "device": args.device, "precision": precision, "peak_matmul_size": n,
                },
                indent=2,
            )
        )
    return 0


if __name__ == "__main__":
    with exit_on_failure():
        sys.exit(main())
