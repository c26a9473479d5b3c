"""Model FLOP utilisation (MFU) of the torch backend on this machine, for the default sweep.

MFU = achieved training FLOP/s ÷ the matmul peak, both measured in this run, per worker process,
with every worker busy (as in `make run`: one single-threaded worker per core):
  * peak: the best of a few large float32 matmuls (2048², 1 thread), timed in each worker
    just before and just after each shape's training measurement (on a shared or virtualised
    machine the peak drifts by 2x within minutes: measured here between 46 and 96 GFLOP/s);
  * achieved: tokens/s of the real training loop (`flops_fit.nn.train.train_run`, optimiser,
    clipping and data included) × `flops.training_flops_per_token(shape, "full")`.
FLOPs are the project's count (`flops_formula: full`): it counts the full T×T attention score
matrix as Kaplan et al. and Hoffmann et al. do, while a causal kernel computes about half of it;
the `MFU causal` column counts attention at (T+1)/2T instead (what is really executed).

Prints tokens/s and MFU per shape of the default sweep (conf/base/parameters_planning.yml), the
smallest and largest shapes, and the sweep-wide MFU weighted by each run's time (total FLOPs ÷
Σ run FLOPs / MFU of its shape), with the predicted training wall time of the sweep.

    python benchmarks/bench_training_mfu.py [--workers 2] [--seconds 4] [--env base]
                                            [--batch-size B] [--json out.json]
"""

from __future__ import annotations

import os

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # before torch, in every worker process

import argparse  # noqa: E402
import heapq  # noqa: E402
import json  # noqa: E402
import multiprocessing as mp  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

TARGET_MFU = 0.5


def load_yaml_section(env: str, filename: str, key: str) -> dict:
    import yaml

    def deep_merge(a: dict, b: dict) -> dict:
        for k, v in b.items():
            a[k] = (
                deep_merge(a.get(k, {}), v)
                if isinstance(v, dict) and isinstance(a.get(k), dict)
                else v
            )
        return a

    merged: dict = {}
    for e in ("base", env) if env != "base" else ("base",):
        path = ROOT / "conf" / e / filename
        if path.is_file():
            merged = deep_merge(merged, (yaml.safe_load(path.read_text()) or {}).get(key, {}))
    return merged


def planned_runs(env: str, batch_size: int | None = None) -> tuple[list[dict], int]:
    from flops_fit.corpus import prepare_corpus
    from flops_fit.datasets.package_corpus import PackageCorpusDataset
    from flops_fit.sweep import PlanningConfig, plan_sweep

    corpus_params = load_yaml_section(env, "parameters_corpus.yml", "corpus")
    split = prepare_corpus(PackageCorpusDataset().load(), corpus_params)
    planning = load_yaml_section(env, "parameters_planning.yml", "planning")
    if batch_size:
        planning["batch_size"] = batch_size
    cfg = PlanningConfig.from_params(planning)
    records, _ = plan_sweep(cfg, int(split.train.size) if cfg.max_epochs else None)
    return records, int(split.train.size)


def matmul_peak(seconds: float = 0.6, n: int = 2048) -> float:
    import torch

    a, b = torch.randn(n, n), torch.randn(n, n)
    best = 0.0
    for _ in range(3):
        a @ b
        t0, k = time.perf_counter(), 0
        while time.perf_counter() - t0 < seconds / 3:
            a @ b
            k += 1
        best = max(best, 2 * n**3 * k / (time.perf_counter() - t0))
    return best


def worker(rank: int, shapes: list[dict], seconds: float, barrier, queue) -> None:
    import numpy as np
    import torch

    from flops_fit.corpus import CorpusSplit
    from flops_fit.flops import training_flops_per_token
    from flops_fit.nn.config import TorchConfig
    from flops_fit.nn.runtime import tune_cpu_allocator
    from flops_fit.nn.train import train_run
    from flops_fit.shapes import ModelShape

    torch.set_num_threads(1)
    tune_cpu_allocator()
    rng = np.random.default_rng(rank)
    corpus = CorpusSplit(
        train=rng.integers(0, 256, 2_000_000, dtype=np.uint8),
        heldout=rng.integers(0, 256, 200_000, dtype=np.uint8),
    )
    cfg = TorchConfig.from_params(
        {
            "device": "cpu",
            "eval": {"heldout_tokens": 512},
            "checkpoint_every_minutes": None,
            "max_epochs": None,
        }
    )
    results = []
    for item in shapes:
        shape = ModelShape.from_record(item)
        batch = item["batch_size"]
        fpt = training_flops_per_token(shape, "full")
        steps = max(8, int(seconds * 30e9 / (fpt * batch * shape.context_length)))
        barrier.wait()
        before = matmul_peak()
        out = train_run(
            shape,
            num_steps=steps,
            batch_size=batch,
            corpus=corpus,
            config=cfg,
            seed=rank,
            name="bench",
        )
        after = matmul_peak()
        results.append(
            {"tokens_per_second": out["tokens_per_second"], "peak": (before + after) / 2}
        )
    queue.put({"rank": rank, "results": results})


def causal_flops_per_token(shape) -> float:
    """Training FLOPs/token with the causal half of the attention scores left out."""
    from flops_fit.flops import BACKWARD_FACTOR, training_flops_per_token

    T, d, L = shape.context_length, shape.d_model, shape.num_layers
    skipped = 4 * T * d * L * (1 - (T + 1) / (2 * T))
    return training_flops_per_token(shape, "full") - (1 + BACKWARD_FACTOR) * skipped


def lpt_makespan(durations: list[float], workers: int) -> float:
    """Longest-processing-time-first schedule of the runs on `workers` (a good upper estimate)."""
    loads = [0.0] * workers
    for d in sorted(durations, reverse=True):
        heapq.heapreplace(loads, loads[0] + d)
    return max(loads)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--seconds", type=float, default=4.0, help="per shape and worker")
    parser.add_argument("--env", default="base", help="conf environment to plan the sweep from")
    parser.add_argument("--batch-size", type=int, default=None, help="override planning.batch_size")
    parser.add_argument("--json", type=Path, default=None, help="also write the results here")
    args = parser.parse_args()

    from flops_fit.flops import training_flops_per_token
    from flops_fit.shapes import ModelShape

    records, train_tokens = planned_runs(args.env, args.batch_size)
    shapes: dict[tuple, dict] = {}
    for r in records:
        key = (*ModelShape.from_record(r).to_dict().values(), r["batch_size"])
        shapes.setdefault(key, r)
    order = sorted(shapes.values(), key=lambda r: r["model_size"])
    print(
        f"default sweep ({args.env}): {len(records)} runs, {len(order)} shapes, "
        f"{sum(r['planned_flops'] for r in records):.3g} FLOPs; {args.workers} worker "
        f"process(es) x 1 thread, all busy; ~{args.seconds:g} s per shape"
    )

    ctx = mp.get_context("spawn")
    barrier, queue = ctx.Barrier(args.workers), ctx.Queue()
    procs = [
        ctx.Process(target=worker, args=(i, order, args.seconds, barrier, queue))
        for i in range(args.workers)
    ]
    t0 = time.perf_counter()
    for p in procs:
        p.start()
    outs = [queue.get() for _ in procs]
    for p in procs:
        p.join()
    bench_wall = time.perf_counter() - t0

    print(
        "peak: fp32 2048² matmul, 1 thread per worker, all workers busy, timed just before and "
        "after each shape's training\n"
    )
    header = (
        f"{'shape':<16}{'N':>9}{'batch':>6}{'tokens/s':>11}{'GFLOP/s':>9}{'peak':>7}"
        f"{'MFU':>7}{'MFU causal':>12}"
    )
    print(header)
    print("-" * len(header))
    rate: dict[int, float] = {}
    mfu_of: dict[int, float] = {}
    table = []
    for i, r in enumerate(order):
        shape = ModelShape.from_record(r)
        tps = sum(o["results"][i]["tokens_per_second"] for o in outs) / len(outs)
        peak = sum(o["results"][i]["peak"] for o in outs) / len(outs)
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
        }
        table.append(row)
        rate[id(r)], mfu_of[id(r)] = tps, row["mfu"]
        print(
            f"{f'd{shape.d_model} L{shape.num_layers} h{shape.num_heads}':<16}"
            f"{r['model_size']:>9}{r['batch_size']:>6}{tps:>11.0f}{fps / 1e9:>9.1f}"
            f"{peak / 1e9:>7.1f}{row['mfu']:>7.2f}{row['mfu_causal']:>12.2f}"
        )

    # every planned run at the measured rate of its shape
    def of_shape(table: dict[int, float], r: dict) -> float:
        key = (*ModelShape.from_record(r).to_dict().values(), r["batch_size"])
        return table[id(shapes[key])]

    def shape_rate(r: dict) -> float:
        return of_shape(rate, r)

    times = [r["num_tokens"] / shape_rate(r) for r in records]
    evals = [65536 / (3 * shape_rate(r)) for r in records]  # forward-only held-out pass
    total_flops = sum(r["planned_flops"] for r in records)
    # time-weighted: total FLOPs over the time each run would take at its shape's MFU
    sweep_mfu = total_flops / sum(r["planned_flops"] / of_shape(mfu_of, r) for r in records)
    makespan = lpt_makespan([t + e for t, e in zip(times, evals, strict=True)], args.workers)
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
        f"predicted training wall time on {args.workers} worker(s): {makespan:.0f} s "
        f"(runs {sum(times):.0f} s + held-out evaluation {sum(evals):.0f} s of worker time; "
        f"longest-first schedule); corpus: {train_tokens} training tokens"
    )
    print(f"(benchmark wall time {bench_wall:.0f} s)")
    if args.json:
        args.json.write_text(
            json.dumps(
                {
                    "shapes": table,
                    "sweep_mfu": sweep_mfu,
                    "predicted_wall_seconds": makespan,
                    "workers": args.workers,
                },
                indent=2,
            )
        )


if __name__ == "__main__":
    main()
