"""The runs of `make gpu-check` (benchmarks/gpu_check.py), without Kedro: a conf environment's
parameters and training data, one budget planned by the planning pipeline's own nodes, the study
prepared and each run trained by the torch backend exactly as a sweep trains it, and the tables
that compare one run's losses across devices.
"""

from __future__ import annotations

import copy
import math
import os
import platform
import subprocess
import time
import traceback
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]

#: time.monotonic() past which no new run starts (gpu_check.py --deadline): the summary must
#: still print inside a device session's per-command limit, even on an unexpectedly slow host
deadline: float | None = None


def remaining() -> float:
    return math.inf if deadline is None else deadline - time.monotonic()


def load_env(env: str) -> tuple[dict, Any]:
    """(`params:` of a conf environment as `kedro run --env` merges them, its training_data)."""
    from kedro.config import OmegaConfigLoader
    from kedro.io import AbstractDataset

    from flops_fit.settings import CONFIG_LOADER_ARGS

    loader = OmegaConfigLoader(
        conf_source=str(ROOT / "conf"), **{**CONFIG_LOADER_ARGS, "default_run_env": env}
    )
    entry = loader["catalog"]["training_data"]
    return loader["parameters"], AbstractDataset.from_config("training_data", entry).load()


def trainer_section(study: dict, *, device: str, precision: str, compile_: bool,
                    heldout_tokens: int | None = None) -> dict:
    """The study's `params:torch_backend` on another device/precision, without checkpoints; on
    the CPU with every core (one run at a time here, not one worker per core)."""
    section = copy.deepcopy(study)
    section.update(device=device, precision=precision, compile=compile_,
                   num_threads=os.cpu_count() or 1, checkpoint_every_minutes=None)
    if heldout_tokens is not None:
        section.setdefault("eval", {})["heldout_tokens"] = heldout_tokens
    return section


@dataclass
class Sides:
    """The trainer settings of the two sides of every comparison."""

    cuda: dict[str, Any]  # conf/gpu's device, precision and compile (or the CPU, --force-cpu)
    cpu: dict[str, Any]  # the CPU in float32, no compile

    @classmethod
    def of(cls, gpu_params: dict, force_cpu: bool) -> Sides:
        gpu = dict(gpu_params.get("torch_backend") or {})
        cuda = {"device": "cpu" if force_cpu else gpu.get("device", "cuda"),
                "precision": gpu.get("precision", "auto"),
                "compile_": bool(gpu.get("compile", False)) and not force_cpu}
        return cls(cuda, {"device": "cpu", "precision": "float32", "compile_": False})


@dataclass
class Planned:
    records: list[dict]
    data: Any
    model: Any
    loss: str
    training: Any


def plan_study(params: dict, training_data: Any, budget: float, planning_over: dict,
               heldout_tokens: int | None = None) -> Planned:
    """Plan one budget with the planning pipeline's own nodes, then prepare the study as the
    torch backend does before a sweep (contracts checked on a probe batch)."""
    from flops_fit.backends.torch_backend import TorchBackend
    from flops_fit.parameters.torch_backend import TorchConfig
    from flops_fit.parameters.training import TrainingConfig
    from flops_fit.pipelines.planning.nodes import plan_isoflop_sweep, summarise_data

    planning = copy.deepcopy(dict(params["planning"]))
    for key, value in planning_over.items():
        if isinstance(value, dict) and isinstance(planning.get(key), dict):
            planning[key] = {**planning[key], **value}
        else:
            planning[key] = value
    planning["compute_budgets"] = {"values": [float(budget)]}
    training = {**params["training"], "backend": "torch"}
    torch_backend = copy.deepcopy(dict(params["torch_backend"]))
    if heldout_tokens is not None:
        torch_backend.setdefault("eval", {})["heldout_tokens"] = heldout_tokens
    corpus = params.get("corpus")
    summary = summarise_data(training_data, corpus, training, planning, torch_backend)
    records, _ = plan_isoflop_sweep([float(budget)], summary, training_data, planning,
                                    training, corpus, torch_backend)
    cfg = TrainingConfig.from_params(training)
    data, model, loss = TorchBackend().prepare_study(
        records, cfg, TorchConfig.from_params(torch_backend), training_data, corpus)
    return Planned(sorted(records, key=lambda r: r["model_size"]), data, model, loss, cfg)


def run_seed_of(record: dict, planned: Planned) -> int:
    from flops_fit.execution.tasks import run_seed

    return run_seed(planned.training.seed, str(record["experiment_id"]), 0)


def train_one(record: dict, planned: Planned, section: dict) -> dict:
    """One planned run through the torch backend, as a sweep trains it; never raises."""
    from flops_fit.backends.base import RunContext
    from flops_fit.backends.torch_backend import TorchBackend

    if remaining() <= 0:
        return {"error": "not run: past --deadline", "wall_seconds": 0.0}
    ctx = RunContext(seed=run_seed_of(record, planned), data=planned.data, model=planned.model,
                     loss=planned.loss, show_progress=False)
    t0 = time.perf_counter()
    try:
        out = TorchBackend().train(record, section, ctx)
    except Exception as exc:  # reported as the check's failure, the other checks still run
        traceback.print_exc()
        return {"error": f"{type(exc).__name__}: {exc}", "wall_seconds": time.perf_counter() - t0}
    out["wall_seconds"] = time.perf_counter() - t0
    return out


def label(record: dict) -> str:
    if record.get("d_model") is not None and record.get("num_layers") is not None:
        return f"d{record['d_model']} L{record['num_layers']}"
    kwargs = record.get("model_kwargs") or {}
    return " ".join(f"{k}={v}" for k, v in kwargs.items())


def loss_text(out: dict) -> str:
    return f"{out['final_loss']:.4f}" if "final_loss" in out else "ERROR"


def finite(out: dict) -> bool:
    return "final_loss" in out and math.isfinite(out["final_loss"]) and math.isfinite(
        out.get("train_loss", math.nan))


def rel_diff(a: dict, b: dict) -> float:
    """(L_a - L_b) / L_b, NaN when either run failed."""
    if not (finite(a) and finite(b)):
        return math.nan
    return (a["final_loss"] - b["final_loss"]) / b["final_loss"]


def within(diff: float, tol: float) -> bool:
    return math.isfinite(diff) and abs(diff) <= tol


def print_runs(planned: Planned, outs: dict[str, list[dict]]) -> None:
    """One row per run: its shape, N, D, steps and, per side, the loss and units/s."""
    unit = planned.data.unit
    sides = list(outs)
    head = f"{'model':<14}{'N':>9}{'D ' + unit:>16}{'steps':>7}"
    for side in sides:
        head += f"{side + ' loss':>22}{unit + '/s':>11}{'s':>7}"
    print(head)
    print("-" * len(head))
    for i, r in enumerate(planned.records):
        row = f"{label(r):<14}{r['model_size']:>9}{r['num_tokens']:>16}{r['num_steps']:>7}"
        for side in sides:
            out = outs[side][i] if i < len(outs[side]) else {}
            rate = out.get("units_per_second", math.nan)
            row += f"{loss_text(out):>22}{rate:>11.3g}{out.get('wall_seconds', math.nan):>7.1f}"
        print(row)
    for side in sides:
        for r, out in zip(planned.records, outs[side], strict=False):
            if "error" in out:
                print(f"  {side} {r['experiment_id']}: {out['error']}")
    print(flush=True)


def rows_of(planned: Planned, outs: dict[str, list[dict]]) -> list[dict]:
    """The runs and, per side, what their results say (for --json)."""
    keep = ("final_loss", "final_loss_stderr", "train_loss", "units_per_second", "train_seconds",
            "wall_seconds", "device", "precision", "heldout_accuracy", "error")
    rows = []
    for i, r in enumerate(planned.records):
        row = {k: r.get(k) for k in ("experiment_id", "model_size", "num_tokens", "num_steps",
                                     "batch_size", "compute_budget")}
        for side, side_outs in outs.items():
            if i < len(side_outs):
                row[side] = {k: side_outs[i][k] for k in keep if k in side_outs[i]}
        rows.append(row)
    return rows


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def nvidia_smi() -> str | None:
    try:
        proc = subprocess.run(
            ["nvidia-smi", "--query-gpu=name,driver_version,memory.total,clocks.max.sm,"
             "power.limit", "--format=csv,noheader"],
            capture_output=True, text=True, timeout=20)
    except (OSError, subprocess.SubprocessError):
        return None
    return proc.stdout.strip() or None
