"""The plan's wall-time estimate, from a short timing probe on the machine that plans.

A few of the planned models (spread over log N) each train a few real optimiser steps through
the training loop itself (`flops_fit.nn.train.train_run`: the batch, forward, loss, backward,
clipping, AdamW, bookkeeping), with a batch of the plan's size and the threads a training
worker uses, and evaluate once; seconds per step and per evaluation are interpolated in log N
for the others. A run costs the steps it trains (a branch of a trunk: its share of the trunk and its cooldown,
`flops_fit.planning.trunks.trained_steps`), one evaluation and a fixed overhead, and the sweep's
wall time is the longest-first schedule of the runs over the training executor's workers (the
branches of one trunk as one job: they run in order).
"""

from __future__ import annotations

import heapq
import logging
import math
from collections.abc import Mapping
from typing import Any

import numpy as np

from flops_fit.planning.trunks import is_branch, trained_steps

log = logging.getLogger(__name__)

MAX_PROBED_MODELS = 4
#: what a run costs besides its steps and its evaluation: building the model and optimiser,
#: the worker's task and the result record (measured on the mnist1d and GPT studies)
RUN_OVERHEAD_SECONDS = 0.5


def _jobs(plan: list[Mapping[str, Any]], runs: list[float]) -> list[float]:
    """Seconds of each unit of work: a run of its own, or a trunk's branches together."""
    jobs: dict[str, float] = {}
    for i, (r, seconds) in enumerate(zip(plan, runs, strict=True)):
        key = str(r["trunk_id"]) if is_branch(r) else f"#{i}"
        jobs[key] = jobs.get(key, 0.0) + seconds
    return list(jobs.values())


def schedule_seconds(run_seconds: list[float], workers: int) -> float:
    """Wall time of running the runs longest first on `workers` parallel workers."""
    finish = [0.0] * max(1, workers)
    for seconds in sorted(run_seconds, reverse=True):
        heapq.heapreplace(finish, finish[0] + seconds)
    return max(finish) if run_seconds else 0.0


def probe_seconds(study: Any, plan: list[Mapping[str, Any]], probe_steps: int,
                  torch_config: Any) -> dict[int, dict[str, float]]:
    """{N: {"step": seconds per optimiser step, "eval": seconds of one evaluation}} for up to
    MAX_PROBED_MODELS planned models; each trains `probe_steps + 1` steps."""
    import torch

    from flops_fit.nn.runtime import DeviceUnavailableError, resolve_device
    from flops_fit.nn.train import train_run
    from flops_fit.planning.sweep import PlanningError
    from flops_fit.plugins.study import model_kwargs

    try:
        resolve_device(torch_config.device)
    except DeviceUnavailableError as exc:
        raise PlanningError(
            f"{exc} here, where planning's timing probe (planning.timing_probe_steps = "
            f"{probe_steps}) would train: plan here with planning.timing_probe_steps=0 (the wall "
            "time is then estimated from planning.throughput_flops_per_second), or plan on a "
            "machine with the device") from None

    by_size = {int(r["model_size"]): r for r in sorted(plan, key=lambda r: r["model_size"])}
    sizes = sorted(by_size)
    k = min(MAX_PROBED_MODELS, len(sizes))
    picks = sorted({sizes[round(i * (len(sizes) - 1) / max(1, k - 1))] for i in range(k)})
    config = torch_config.model_copy(update={"checkpoint_every_minutes": None,
                                             "checkpoint_every_steps": None})
    threads, rng = torch.get_num_threads(), torch.get_rng_state()
    steps = max(1, probe_steps) + 1
    try:
        out = {}
        for n in picks:
            record = by_size[n]
            metrics = train_run(study.model, model_kwargs(record), data=study.data,
                                loss=study.loss_path, num_steps=steps,
                                batch_size=int(record["batch_size"]), flops_per_unit=0.0,
                                config=config, seed=0, name=f"probe-N{n}")
            out[n] = {"step": metrics["train_seconds"] / steps, "eval": metrics["eval_seconds"]}
            log.info("Timing probe: N=%d takes %.3g s per step of %d examples and %.3g s to "
                     "evaluate", n, out[n]["step"], int(record["batch_size"]), out[n]["eval"])
        return out
    finally:  # the probe must not change the planning process for what follows
        torch.set_num_threads(threads)
        torch.set_rng_state(rng)


def interpolate_seconds(probed: Mapping[int, float], model_size: float) -> float:
    """Seconds at `model_size`: linear in log N and log seconds between probed sizes, flat
    beyond them."""
    sizes = np.log(np.array(sorted(probed), dtype=float))
    seconds = np.log(np.array([max(probed[n], 1e-9) for n in sorted(probed)], dtype=float))
    return float(math.exp(np.interp(math.log(model_size), sizes, seconds)))


def estimate(plan: list[Mapping[str, Any]], probed: Mapping[int, Mapping[str, float]],
             workers: int) -> dict[str, Any]:
    step = {n: p["step"] for n, p in probed.items()}
    evaluation = {n: p["eval"] for n, p in probed.items()}
    steps = trained_steps(plan)
    runs = [interpolate_seconds(step, r["model_size"]) * steps[str(r["experiment_id"])]
            + interpolate_seconds(evaluation, r["model_size"]) + RUN_OVERHEAD_SECONDS
            for r in plan]
    return {
        "method": "timing probe",
        "probed_seconds_per_step": {str(n): p["step"] for n, p in sorted(probed.items())},
        "probed_eval_seconds": {str(n): p["eval"] for n, p in sorted(probed.items())},
        "run_overhead_seconds": RUN_OVERHEAD_SECONDS,
        "run_seconds": {str(r["experiment_id"]): s for r, s in zip(plan, runs, strict=True)},
        "training_seconds_one_worker": float(sum(runs)),
        "workers": int(workers),
        "estimated_wall_seconds": schedule_seconds(_jobs(plan, runs), workers),
    }


def estimate_from_throughput(plan: list[Mapping[str, Any]], flops_per_second: float,
                             workers: int) -> dict[str, Any]:
    """Without a probe (`planning.timing_probe_steps: 0`): a fixed FLOP/s per worker."""
    steps = trained_steps(plan)
    runs = [float(r["planned_flops"]) * steps[str(r["experiment_id"])] / int(r["num_steps"])
            / flops_per_second for r in plan]
    return {
        "method": f"fixed throughput {flops_per_second:.3g} FLOP/s per worker",
        "run_seconds": {str(r["experiment_id"]): s for r, s in zip(plan, runs, strict=True)},
        "training_seconds_one_worker": float(sum(runs)),
        "workers": int(workers),
        "estimated_wall_seconds": schedule_seconds(_jobs(plan, runs), workers),
    }
