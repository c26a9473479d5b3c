"""`make gpu-check`: the CUDA path of training, run end to end on one GPU in a few minutes.

Without a CUDA device it prints "no CUDA device: gpu-check skipped" and exits 0 at once. With
one, it runs every check below and reports each even when an earlier one failed:

  environment       torch, CUDA, the GPU, its memory, bf16 support; conf/gpu's trainer settings
  gpt-cuda          three runs of the built-in u-μP GPT planned by the project's own planning
                    (conf/gpu's family and batch, at conf/gpu's smallest budget, 1e13 FLOPs: a
                    few seconds each) trained on CUDA with conf/gpu's settings (bf16 autocast):
                    finite held-out losses below the uniform ln 256, tokens/s
  mfu               benchmarks/bench_training_mfu.py --device cuda --env gpu: tokens/s, FLOP/s
                    and MFU of the gpu sweep's shapes against the GPU's bf16 matmul peak measured
                    in the same run (run before the CPU-bound checks: it needs the host idle)
  gpt-bf16-vs-fp32  three runs planned at a 10x smaller budget, trained on CUDA (conf/gpu: bf16)
                    and on the CPU (float32, every core), same seed, same data order: held-out
                    losses within LOSS_RTOL; the same runs on CUDA in float32 (TF32 matmuls) tell
                    the device's share of the difference from bf16's
  gpt-cuda-resume   one of those runs interrupted halfway on CUDA and resumed from its checkpoint
                    (model, fused-AdamW state, CUDA RNG): it ends where the uninterrupted run did
  mnist1d-bf16-vs-fp32  one planned run of the MNIST-1D MLP plugin (`flops_fit.models.mnist1d:mlp`,
                    conf/mnist1d's study) on CUDA (conf/gpu's device and precision) and on the CPU
                    in float32: the same comparison

then a summary block, one line per check (PASS/FAIL and its numbers), to paste into the README;
the exit status is 1 if any check failed. Nothing new starts after `--deadline` seconds (480), so
the summary prints inside a 10-minute limit even on a slow host.

    python benchmarks/gpu_check.py [--json results.json] [-v]
    python benchmarks/gpu_check.py --force-cpu --smoke   # every step on the CPU, tiny runs

`--force-cpu` runs the "CUDA" side on the CPU with conf/gpu's precision (bf16 autocast on the
CPU), so the whole script runs without a GPU; `--smoke` makes every run tiny (a tiny GPT family,
tiny budgets, the MFU benchmark's quick mode). tests/benchmarks/test_gpu_check.py runs both.
The runs live in benchmarks/_gpu_runs.py, the checks and their tolerances (LOSS_RTOL,
RESUME_RTOL) in benchmarks/_gpu_checks.py.
"""

from __future__ import annotations

import os

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # before torch (flops_fit.nn.runtime)

import argparse  # noqa: E402
import json  # noqa: E402
import logging  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
import traceback  # noqa: E402
from dataclasses import dataclass, field  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import Any  # noqa: E402

HERE = Path(__file__).resolve().parent
sys.path[:0] = [str(HERE.parent / "src"), str(HERE)]

import _gpu_runs  # noqa: E402
from _gpu_checks import (  # noqa: E402
    LOSS_RTOL,
    RESUME_RTOL,
    Check,
    banner,
    check_environment,
    check_gpt_cuda,
    check_mfu,
    check_resume,
    compare,
    guarded,
    summary_block,
)
from _gpu_runs import (  # noqa: E402
    Planned,
    Sides,
    finite,
    label,
    load_env,
    plan_study,
    trainer_section,
)

SKIP_MESSAGE = "no CUDA device: gpu-check skipped"
GPU_ENV = "gpu"  # the conf environment whose torch_backend settings the CUDA side uses
PLUGIN_ENV = "mnist1d"  # the plugin study: the MNIST-1D MLP on generated MNIST-1D
SEED = 0  # torch's global seed here; each run seeds itself from the study seed, as in a sweep


@dataclass(frozen=True)
class Scale:
    """How big the runs are: FULL on a GPU, SMOKE for the CPU test of this script."""

    gpt_budget: float  # the CUDA-only GPT runs
    gpt_sizes: tuple[float, float]  # their smallest and largest target N
    compare_budget: float  # the runs trained on both devices (CPU time!)
    compare_sizes: tuple[float, float]
    mnist_budget: float
    heldout_tokens: int  # the GPT's held-out set (the same for every run of both devices)
    gpt_planning: dict = field(default_factory=dict)  # overrides of conf/gpu's planning
    mnist_sizes: dict = field(default_factory=dict)  # overrides of conf/mnist1d's model_sizes
    mfu_args: tuple[str, ...] = ()
    mfu_timeout: float = 300.0


# On a GPU, 1e13 FLOPs (conf/gpu's smallest budget) is a few seconds per run. The comparison
# runs' CPU side (float32) is 3 x 1e12 FLOPs: 250 s on the 2 shared, busy cores this was written
# on, where one thread trains these shapes at ~10 GFLOP/s (benchmarks/bench_training_mfu.py);
# 16 threads at half that each make it ~40 s on a 16-core host.
FULL = Scale(
    gpt_budget=1e13,
    gpt_sizes=(1e5, 1e6),
    compare_budget=1e12,
    compare_sizes=(3e4, 3e5),
    mnist_budget=2.5e10,
    heldout_tokens=65536,
    mfu_args=("--env", GPU_ENV, "--seconds", "2"),
)
SMOKE = Scale(
    gpt_budget=8e8,
    gpt_sizes=(3e3, 1e4),
    compare_budget=6e8,
    compare_sizes=(3e3, 1e4),
    mnist_budget=1e8,
    heldout_tokens=2048,
    # a tiny GPT family: 10-30 steps of 512 tokens per run
    gpt_planning={"model_family": {"context_length": 64, "head_dim": 16, "min_width": 16,
                                   "width_multiple": 8, "aspect_ratio": 16.0},
                  "batch_size": 8, "min_tokens_per_param": 0.2},
    mnist_sizes={"span_factor": 2.0},
    mfu_args=("--quick",),
    mfu_timeout=180.0,
)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--force-cpu", action="store_true",
                        help="run the CUDA side on the CPU (conf/gpu's precision, bf16 autocast "
                        "on the CPU): the whole script without a GPU")
    parser.add_argument("--smoke", action="store_true",
                        help="tiny runs (a tiny GPT family, tiny budgets, the MFU benchmark's "
                        "quick mode): exercises the code, measures nothing")
    parser.add_argument("--no-mfu", action="store_true", help="leave out the MFU benchmark")
    parser.add_argument("--json", type=Path, default=None, help="also write every result here")
    parser.add_argument("--deadline", type=float, default=480.0,
                        help="seconds after which no new check or run starts (default 480: "
                        "the summary prints inside a 10-minute limit)")
    parser.add_argument("-v", "--verbose", action="store_true", help="log the project at INFO")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING,
                        format="%(levelname)s %(name)s: %(message)s")

    import torch

    if not torch.cuda.is_available() and not args.force_cpu:
        print(SKIP_MESSAGE, flush=True)
        return 0

    _gpu_runs.deadline = time.monotonic() + args.deadline
    t_start = time.perf_counter()
    scale = SMOKE if args.smoke else FULL
    torch.manual_seed(SEED)
    where = "cpu (--force-cpu)" if args.force_cpu else "cuda"
    checks: list[Check] = []
    try:
        gpu_params, corpus = load_env(GPU_ENV)
    except Exception as exc:  # nothing can be planned: report the environment, then stop
        traceback.print_exc()
        checks.append(Check("conf", False, f"loading conf/{GPU_ENV} and its training_data: "
                            f"{type(exc).__name__}: {exc}"))
        gpu_params, corpus = {"torch_backend": {"device": "cuda", "precision": "bfloat16"}}, None
    sides = Sides.of(gpu_params, args.force_cpu)

    banner("environment")
    checks[:0] = guarded("environment",
                         lambda: check_environment(args.force_cpu, sides, gpu_params))
    if corpus is None:
        return finish(checks, sides, args, t_start)

    gpt_study = dict(gpu_params["torch_backend"])

    def gpt_section(**side: Any) -> dict:
        return trainer_section(gpt_study, heldout_tokens=scale.heldout_tokens, **side)

    def gpt_plan(budget: float, sizes: tuple[float, float]) -> Planned:
        over = {**scale.gpt_planning, "model_sizes": {
            "num": 3, "centre": "fixed_range",
            "fixed_range": {"min": sizes[0], "max": sizes[1]}}}
        return plan_study(gpu_params, corpus, budget, over, scale.heldout_tokens)

    banner(f"gpt-cuda: 3 planned GPT runs at {scale.gpt_budget:.3g} FLOPs on {where} "
           f"({sides.cuda['precision']})")
    checks += guarded("gpt-cuda", lambda: check_gpt_cuda(
        gpt_plan(scale.gpt_budget, scale.gpt_sizes), gpt_section(**sides.cuda)))

    if not args.no_mfu:  # before the CPU-bound comparisons: it needs the GPU alone
        banner("mfu: benchmarks/bench_training_mfu.py on " + where)
        device = "cpu" if args.force_cpu else "cuda"
        checks += guarded("mfu", lambda: check_mfu(device, scale.mfu_args, scale.mfu_timeout,
                                                   quick=args.smoke))

    banner(f"gpt-bf16-vs-fp32: 3 planned GPT runs at {scale.compare_budget:.3g} FLOPs on "
           f"{where} and on the CPU in float32 ({os.cpu_count()} threads)")
    compared: dict[str, Any] = {}

    def gpt_compare() -> Check:
        planned = gpt_plan(scale.compare_budget, scale.compare_sizes)
        check, outs = compare("gpt-bf16-vs-fp32", planned, sides, gpt_section)
        compared.update(planned=planned, outs=outs)
        return check

    checks += guarded("gpt-bf16-vs-fp32", gpt_compare)

    banner(f"gpt-cuda-resume: a run interrupted halfway on {where}, resumed from its checkpoint")

    def resume() -> Check:
        if not compared:
            return Check("gpt-cuda-resume", False, "no comparison runs to resume (see above)")
        planned, outs = compared["planned"], compared["outs"]
        i = len(planned.records) // 2  # the middle size: several steps on either side of half
        if not finite(outs["cuda"][i]):
            return Check("gpt-cuda-resume", False, "its uninterrupted run failed (see above)")
        return check_resume(planned, planned.records[i], outs["cuda"][i],
                            gpt_section(**sides.cuda))

    checks += guarded("gpt-cuda-resume", resume)

    banner(f"mnist1d-bf16-vs-fp32: the MNIST-1D MLP plugin at {scale.mnist_budget:.3g} FLOPs on "
           f"{where} and on the CPU in float32")

    def mnist() -> Check:
        params, data = load_env(PLUGIN_ENV)
        sizes = {"num": 3, **scale.mnist_sizes}
        planned = plan_study(params, data, scale.mnist_budget, {"model_sizes": sizes})
        study = dict(params["torch_backend"])
        middle = planned.records[len(planned.records) // 2]
        check, _ = compare("mnist1d-bf16-vs-fp32", planned, sides,
                           lambda **side: trainer_section(study, **side), [middle])
        accuracy = check.data["runs"][0].get("cuda", {}).get("heldout_accuracy")
        if accuracy is not None:
            check.detail += f"; {label(middle)} held-out accuracy {accuracy:.1%}"
        return check

    checks += guarded("mnist1d-bf16-vs-fp32", mnist)
    return finish(checks, sides, args, t_start)


def finish(checks: list[Check], sides: Sides, args: argparse.Namespace, t_start: float) -> int:
    """Print the summary block (and write --json); the exit status: 0 only if all passed."""
    total = time.perf_counter() - t_start
    env = checks[0].data
    gpu = env.get("gpu") or ("no GPU: --force-cpu" if args.force_cpu else "GPU unknown")
    header = (f"gpu-check summary ({gpu}, torch "
              f"{env.get('torch')}, CUDA {env.get('cuda')}; CUDA side {sides.cuda['device']} "
              f"{sides.cuda['precision']}, reference cpu float32 x{os.cpu_count()} threads; "
              f"{'smoke scale; ' if args.smoke else ''}{total:.0f} s)")
    block = summary_block(checks, header)
    print("\n" + block, flush=True)
    if args.json:
        args.json.write_text(json.dumps(
            {"checks": [{"name": c.name, "ok": c.ok, "detail": c.detail, "data": c.data}
                        for c in checks],
             "summary": block, "loss_rtol": LOSS_RTOL, "resume_rtol": RESUME_RTOL,
             "scale": "smoke" if args.smoke else "full", "force_cpu": args.force_cpu},
            indent=2, default=str, allow_nan=True))
    return 0 if all(c.ok for c in checks) else 1


if __name__ == "__main__":
    sys.exit(main())
