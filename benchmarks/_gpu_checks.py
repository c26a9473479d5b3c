"""The checks of `make gpu-check` (benchmarks/gpu_check.py): each returns a `Check`, PASS or FAIL
with the numbers behind it, and `guarded` turns an exception into that check's FAIL so that the
checks after it still run.
"""

from __future__ import annotations

import json
import math
import os
import platform
import subprocess
import sys
import tempfile
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from _gpu_runs import (
    ROOT,
    Planned,
    Sides,
    cpu_model,
    finite,
    label,
    loss_text,
    nvidia_smi,
    print_runs,
    rel_diff,
    remaining,
    rows_of,
    run_seed_of,
    train_one,
    within,
)

MFU_BENCH = ROOT / "benchmarks" / "bench_training_mfu.py"

#: Largest |L_cuda - L_cpu| / L_cpu allowed between a run on CUDA (conf/gpu: bf16 autocast) and
#: the same run (seed, initial weights, batches) on the CPU in float32. bf16 keeps 8 bits of
#: mantissa (a relative rounding of ~0.4% per matmul input and activation); the trajectories of
#: the two runs drift apart but stay in the same basin, and a final held-out loss typically
#: moves by 0.5-2%. 3% leaves room for that on short, still-steep runs while a real defect of
#: the CUDA path (a wrong scale, mask or cast, optimiser state on the wrong device, a data-order
#: difference) moves a loss by tens of percent or makes it non-finite.
LOSS_RTOL = 0.03
#: Largest relative difference between a run resumed from its checkpoint and the same run
#: uninterrupted. On the CPU the two are bit-identical (tests/nn/test_train.py); on CUDA only
#: non-deterministic kernels (atomic adds in attention's backward) separate them, orders of
#: magnitude below bf16's own effect. A resume that loses or misplaces the optimiser, RNG or data
#: position restarts Adam's moments or replays batches, which is what this would catch.
RESUME_RTOL = 0.01
UNIFORM_LOSS = math.log(256)  # nats/byte of a GPT that learnt nothing


@dataclass
class Check:
    name: str
    ok: bool
    detail: str
    data: dict[str, Any] = field(default_factory=dict)


class _Interrupt(Exception):
    """Stops a run on purpose after its checkpoint (the resume check)."""


def banner(text: str) -> None:
    print(f"\n== {text}", flush=True)


def check_environment(force_cpu: bool, sides: Sides, gpu_params: dict) -> Check:
    import torch

    info: dict[str, Any] = {
        "torch": torch.__version__,
        "cuda": torch.version.cuda,
        "cudnn": torch.backends.cudnn.version() if torch.backends.cudnn.is_available() else None,
        "python": platform.python_version(),
        "cpu_count": os.cpu_count(),
        "cpu": cpu_model(),
        "conf_gpu_torch_backend": {k: gpu_params["torch_backend"].get(k)
                                   for k in ("device", "precision", "compile")},
    }
    problems = []
    if force_cpu:
        info["gpu"] = None
        detail = "--force-cpu: the CPU stands in for CUDA"
    else:
        props = torch.cuda.get_device_properties(0)
        info.update(
            gpu=torch.cuda.get_device_name(0),
            gpu_count=torch.cuda.device_count(),
            memory_gib=props.total_memory / 2**30,
            capability=f"{props.major}.{props.minor}",
            multiprocessors=props.multi_processor_count,
            bf16=torch.cuda.is_bf16_supported(),
            nvidia_smi=nvidia_smi(),
        )
        wants_bf16 = sides.cuda["precision"] in ("bfloat16", "auto")
        if wants_bf16 and not info["bf16"]:
            problems.append("conf/gpu trains in bf16 but this GPU does not support it")
        detail = (f"{info['gpu']}, {info['memory_gib']:.1f} GiB, sm {info['capability']}, "
                  f"bf16 {'yes' if info['bf16'] else 'NO'}")
    try:  # one autocast matmul on the device, the way every training step will use it
        from flops_fit.nn import runtime

        device = runtime.resolve_device(sides.cuda["device"])
        dtype = runtime.resolve_dtype(sides.cuda["precision"], device)
        a = torch.randn(64, 64, device=device)
        with runtime.autocast(device, dtype):
            y = a @ a
        info["autocast_dtype"] = str(y.dtype).removeprefix("torch.")
        if dtype != torch.float32 and y.dtype != dtype:
            problems.append(f"autocast gave {y.dtype}, not {dtype}")
    except Exception as exc:
        problems.append(f"autocast matmul failed: {type(exc).__name__}: {exc}")
    for key, value in info.items():
        print(f"  {key:<24}{value}")
    detail += f"; torch {info['torch']}, CUDA {info['cuda']}"
    if problems:
        detail += "; " + "; ".join(problems)
    return Check("environment", not problems, detail, info)


def check_gpt_cuda(planned: Planned, section: dict) -> Check:
    """The planned GPT runs on the CUDA side alone: finite and below the uniform loss."""
    outs = [train_one(r, planned, section) for r in planned.records]
    print_runs(planned, {"cuda": outs})
    ok = all(finite(o) and o["final_loss"] < UNIFORM_LOSS for o in outs)
    losses = "/".join(loss_text(o) for o in outs)
    rates = [o["units_per_second"] for o in outs if "units_per_second" in o]
    detail = (f"{len(outs)} runs at {planned.records[0]['compute_budget']:.3g} FLOPs: held-out "
              f"loss {losses} nats (uniform {UNIFORM_LOSS:.2f})")
    if rates:
        detail += f", {min(rates):.3g}-{max(rates):.3g} tokens/s"
    return Check("gpt-cuda", ok, detail, {"runs": rows_of(planned, {"cuda": outs})})


def compare(name: str, planned: Planned, sides: Sides, section_of: Callable[..., dict],
            records: list[dict] | None = None) -> tuple[Check, dict[str, list[dict]]]:
    """The same runs on the CUDA side and the CPU in float32: relative held-out differences.

    On a GPU the runs are also trained on CUDA in float32 (TF32 matmuls, as conf/gpu allows):
    what separates that from the CPU is the device, what separates it from bf16 is bf16."""
    records = records or planned.records
    sub = Planned(records, planned.data, planned.model, planned.loss, planned.training)
    outs: dict[str, list[dict]] = {
        "cuda": [train_one(r, sub, section_of(**sides.cuda)) for r in records]}
    if sides.cuda["device"] != "cpu" and sides.cuda["precision"] != "float32":
        fp32 = {**sides.cuda, "precision": "float32"}
        outs["cuda-fp32"] = [train_one(r, sub, section_of(**fp32)) for r in records]
    outs["cpu"] = [train_one(r, sub, section_of(**sides.cpu)) for r in records]
    print_runs(sub, outs)
    diffs = [rel_diff(c, p) for c, p in zip(outs["cuda"], outs["cpu"], strict=True)]
    diffs32 = [rel_diff(c, p) for c, p in zip(outs.get("cuda-fp32", []), outs["cpu"],
                                              strict=False)]
    for i, (r, d) in enumerate(zip(records, diffs, strict=True)):
        extra = f", cuda-fp32 vs cpu {diffs32[i]:+.2%}" if diffs32 else ""
        print(f"  {r['experiment_id']}: cuda vs cpu {d:+.2%}{extra} (tolerance "
              f"{LOSS_RTOL:.0%})")
    ok = all(within(d, LOSS_RTOL) for d in diffs + diffs32)
    worst = max((abs(d) if math.isfinite(d) else math.inf) for d in diffs)
    detail = (f"{len(records)} run(s) at {records[0]['compute_budget']:.3g} FLOPs, held-out "
              f"loss cuda vs cpu-fp32: " + ", ".join(f"{d:+.2%}" for d in diffs)
              + f" (max {worst:.2%}, tolerance {LOSS_RTOL:.0%})")
    if diffs32:
        detail += "; cuda-fp32 vs cpu: " + ", ".join(f"{d:+.2%}" for d in diffs32)
    data = {"rel_diffs": diffs, "rel_diffs_cuda_fp32": diffs32, "runs": rows_of(sub, outs)}
    return Check(name, ok, detail, data), outs


def check_resume(planned: Planned, record: dict, uninterrupted: dict, section: dict) -> Check:
    """Interrupt a run halfway (after its checkpoint), resume it: it ends where it would have."""
    from flops_fit.nn.train import train_run
    from flops_fit.parameters.torch_backend import TorchConfig
    from flops_fit.planning.flops import run_flops
    from flops_fit.plugins.study import model_kwargs

    steps = int(record["num_steps"])
    stop = max(1, steps // 2)
    config = TorchConfig.from_params({**section, "checkpoint_every_steps": stop})

    def run(folder: Path, on_step=None) -> dict:  # as TorchBackend.train calls it
        return train_run(planned.model, model_kwargs(record), data=planned.data,
                         loss=planned.loss, num_steps=steps, batch_size=int(record["batch_size"]),
                         flops_per_unit=run_flops(record, 1), config=config,
                         seed=run_seed_of(record, planned), max_epochs=record.get("max_epochs"),
                         checkpoint_dir=folder, name=str(record["experiment_id"]),
                         on_step=on_step)

    def interrupt(done: int) -> None:
        if done == stop:
            raise _Interrupt(f"stopped at step {done}")

    try:
        with tempfile.TemporaryDirectory(prefix="gpu-check-") as tmp:
            try:
                run(Path(tmp), interrupt)
                return Check("gpt-cuda-resume", False, f"the run was not interrupted at {stop}")
            except _Interrupt:
                pass
            resumed = run(Path(tmp))
    except Exception as exc:
        traceback.print_exc()
        return Check("gpt-cuda-resume", False, f"{type(exc).__name__}: {exc}")
    diff = rel_diff(resumed, uninterrupted)
    ok = resumed.get("resumed_from_step") == stop and within(diff, RESUME_RTOL)
    same = "bit-identical" if diff == 0 else f"{diff:+.3%}"
    detail = (f"{label(record)}: resumed at step {resumed.get('resumed_from_step')}/{steps}, "
              f"held-out loss {loss_text(resumed)} vs {loss_text(uninterrupted)} "
              f"uninterrupted ({same}, tolerance {RESUME_RTOL:.0%})")
    print(f"  {detail}")
    return Check("gpt-cuda-resume", ok, detail, {"rel_diff": diff, "stop": stop})


def check_mfu(device: str, args: tuple[str, ...], timeout: float, quick: bool) -> Check:
    """The MFU benchmark in its own process (its own CUDA context and failure), output shown."""
    with tempfile.TemporaryDirectory(prefix="gpu-check-mfu-") as tmp:
        out_json = Path(tmp) / "mfu.json"
        timeout = max(60.0, min(timeout, remaining()))
        cmd = [sys.executable, str(MFU_BENCH.relative_to(ROOT)), "--device", device, *args,
               "--json", str(out_json), "--timeout", f"{timeout - 20:.0f}"]
        print("  $ " + " ".join(cmd[1:]), flush=True)
        try:
            proc = subprocess.run(cmd, cwd=ROOT, timeout=timeout,
                                  env={**os.environ, "KEDRO_DISABLE_TELEMETRY": "1"})
        except subprocess.TimeoutExpired:
            return Check("mfu", False, f"the benchmark ran past {timeout:.0f} s")
        if proc.returncode != 0 or not out_json.is_file():
            return Check("mfu", False, f"the benchmark failed (exit status {proc.returncode})")
        result = json.loads(out_json.read_text())
    shapes = result["shapes"]
    mfus = [s["mfu"] for s in shapes]
    # MFU above 1 means the FLOP count or the peak measurement is wrong (quick mode's tiny
    # timings measure nothing, so only positivity is asked of it).
    ok = all(math.isfinite(m) and m > 0 and (quick or m <= 1) for m in mfus)
    small, large = shapes[0], shapes[-1]
    peak = max(s["peak_flops_per_second"] for s in shapes)
    detail = (f"{result.get('precision', '?')} peak {peak / 1e12:.3g} TFLOP/s (measured); "
              f"sweep-wide MFU {result['sweep_mfu']:.3f}; N={small['model_size']}: "
              f"{small['tokens_per_second']:.3g} tok/s, {small['flops_per_second'] / 1e12:.3g} "
              f"TFLOP/s, MFU {small['mfu']:.3f}; N={large['model_size']}: "
              f"{large['tokens_per_second']:.3g} tok/s, {large['flops_per_second'] / 1e12:.3g} "
              f"TFLOP/s, MFU {large['mfu']:.3f}; the sweep's predicted training time "
              f"{result['predicted_wall_seconds']:.0f} s")
    return Check("mfu", ok, detail, result)


def guarded(name: str, fn: Callable[[], Check | list[Check]]) -> list[Check]:
    """Run one check; an exception is that check's FAIL, never the end of the script."""
    t0 = time.perf_counter()
    try:
        result = fn() if remaining() > 0 else Check(
            name, False, "not run: past --deadline (the checks before it took too long)")
    except Exception as exc:
        traceback.print_exc()
        result = Check(name, False, f"{type(exc).__name__}: {exc}")
    checks = result if isinstance(result, list) else [result]
    for c in checks:
        c.data.setdefault("seconds", time.perf_counter() - t0)
        print(f"-> {'PASS' if c.ok else 'FAIL'} {c.name} ({c.data['seconds']:.0f} s): "
              f"{c.detail}", flush=True)
    return checks


def summary_block(checks: list[Check], header: str) -> str:
    width = max(len(c.name) for c in checks)
    lines = [header]
    lines += [f"  {'PASS' if c.ok else 'FAIL'}  {c.name:<{width}}  {c.detail}" for c in checks]
    failed = [c.name for c in checks if not c.ok]
    lines.append(f"  {'FAIL' if failed else 'PASS'}  {len(checks) - len(failed)}/{len(checks)} "
                 "checks passed" + (f" (failed: {', '.join(failed)})" if failed else ""))
    return "\n".join(lines)
