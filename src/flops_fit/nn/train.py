"""The one training loop: any model, data and loss of the plugin contract (`flops_fit.plugins`),
trained on exactly `num_steps · batch_size · units_per_example` units of D, then evaluated on
the data's fixed held-out set. The built-in u-μP GPT on the byte corpus runs through it too.

AdamW with a linear warm-up and cosine decay; a model may supply its own parameter groups
(`param_groups(lr, weight_decay)`, as the GPT does for u-μP's per-tensor learning rates).
Framework-free: a notebook calls `train_run(...)` directly; `flops_fit.backends.torch_backend`
adapts it to the training pipeline's backend interface.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch

from flops_fit.data.text import check_epochs
from flops_fit.execution import interrupt
from flops_fit.nn import checkpoint as ckpt
from flops_fit.nn import curves, runtime
from flops_fit.nn.optim import build_optimizer, set_lr
from flops_fit.nn.schedule import lr_factor, warmup_steps_for
from flops_fit.parameters.torch_backend import TorchConfig
from flops_fit.plugins.data import DataSource
from flops_fit.plugins.imports import resolve_callable
from flops_fit.plugins.models import ModelPlugin
from flops_fit.schema import LOSS_CURVE_FIELD

log = logging.getLogger(__name__)

LN2 = math.log(2.0)


def evaluate(
    model: torch.nn.Module,
    heldout: dict[str, torch.Tensor],
    loss_fn: Callable[[Any, dict[str, torch.Tensor]], torch.Tensor],
    batch_size: int,
    device: torch.device,
    dtype: torch.dtype,
) -> dict[str, float]:
    """Mean held-out loss (nats per unit), its standard error, and the loss's metrics.

    With the loss's `per_example` hook the standard error is taken over examples (a language
    model's tokens within a window are correlated, so its hook gives one mean per window);
    without it, over the evaluation batches' means.
    """
    per_example = getattr(loss_fn, "per_example", None)
    metrics_fn = getattr(loss_fn, "metrics", None)
    rows = len(heldout["inputs"])
    means: list[torch.Tensor] = []
    metrics: dict[str, list[torch.Tensor]] = {}
    was_training = model.training
    model.eval()
    with torch.no_grad(), runtime.autocast(device, dtype):
        for i in range(0, rows, batch_size):
            chunk = {k: v[i : i + batch_size].to(device) for k, v in heldout.items()}
            outputs = model(chunk["inputs"])
            if per_example is not None:
                means.append(per_example(outputs, chunk).double().cpu())
            else:
                means.append(loss_fn(outputs, chunk).double().cpu().reshape(1))
            if metrics_fn is not None:
                for name, value in metrics_fn(outputs, chunk).items():
                    metrics.setdefault(name, []).append(value.double().cpu())
    model.train(was_training)
    values = torch.cat(means).numpy()
    if per_example is None:  # batch means, weighted by the rows in each batch
        weights = np.diff(np.r_[np.arange(0, rows, batch_size), rows])
        mean = float(np.average(values, weights=weights))
    else:
        mean = float(values.mean())
    stderr = float(values.std(ddof=1) / math.sqrt(len(values))) if len(values) > 1 else math.nan
    out = {"loss": mean, "stderr": stderr}
    out.update({name: float(torch.cat(v).mean()) for name, v in metrics.items()})
    return out


def _progress_bar(total: int, initial: int, desc: str, enabled: bool, unit: str = "tok"):
    from tqdm.auto import tqdm

    return tqdm(
        total=total,
        initial=initial,
        desc=desc,
        unit=unit,
        unit_scale=True,
        disable=not enabled,
        leave=False,
        mininterval=1.0,
        smoothing=0.1,
        dynamic_ncols=True,
    )


def train_run(
    model_plugin: ModelPlugin,
    model_kwargs: dict[str, Any],
    *,
    data: DataSource,
    loss: str | Callable[..., torch.Tensor],
    num_steps: int,
    batch_size: int,
    flops_per_unit: float,
    config: TorchConfig | None = None,
    seed: int = 0,
    max_epochs: float | None = None,
    checkpoint_dir: Path | str | None = None,
    show_progress: bool = False,
    name: str = "run",
    on_step: Callable[[int], None] | None = None,
) -> dict[str, Any]:
    """Train one model for exactly `num_steps` optimiser steps and evaluate it.

    The model is `model_plugin.build(model_kwargs)`, the batches `data.train_batch(step, ...)`
    and the loss `loss(outputs, batch)` (an import path or a callable). `on_step(k)` is called
    after step k (1-based) has been applied and, if due, checkpointed. Returns the metrics of
    the run; raises on failure (including a non-finite loss).
    """
    cfg = config or TorchConfig()
    if num_steps < 1 or batch_size < 1:
        raise ValueError(
            f"{name}: num_steps ({num_steps}) and batch_size ({batch_size}) must be >= 1"
        )
    loss_fn = resolve_callable(loss, "training.loss") if isinstance(loss, str) else loss
    units_per_step = batch_size * int(data.units_per_example)
    num_units = num_steps * units_per_step
    epochs = check_epochs(num_units, data.train_units, max_epochs, name, data.unit)

    device = runtime.resolve_device(cfg.device)
    dtype = runtime.resolve_dtype(cfg.precision, device)
    runtime.configure(device, cfg.num_threads)
    heldout = data.heldout()  # fixed by the data alone: the same for every run of a study
    curve_set = curves.subset(
        heldout, curves.heldout_rows(len(heldout["inputs"]), cfg.curve.heldout_fraction))
    curve_at = set(curves.curve_steps(
        num_steps, cfg.curve.points, int(curve_set["targets"].numel()), num_units,
        cfg.curve.max_cost))

    # Model and optimiser: initialised on the CPU so a seed gives the same weights anywhere.
    torch.manual_seed(seed)
    model = model_plugin.build(model_kwargs)
    model.to(device)
    optimizer = build_optimizer(
        model,
        lr=cfg.optimizer.lr,
        betas=cfg.optimizer.betas,
        eps=cfg.optimizer.eps,
        weight_decay=cfg.optimizer.weight_decay,
        device_type=device.type,
    )
    params = list(model.parameters())
    forward = torch.compile(model) if cfg.compile else model
    warmup = warmup_steps_for(
        num_steps, cfg.schedule.warmup_fraction, cfg.schedule.max_warmup_steps
    )

    run_key = {
        "name": name,
        "model": {"factory": model_plugin.factory_path, "kwargs": model_kwargs,
                  "extra": model_plugin.extra},
        "num_steps": num_steps,
        "batch_size": batch_size,
        "seed": int(seed),
        **cfg.run_key(),
    }
    ckpt_file = ckpt.checkpoint_path(checkpoint_dir) if checkpoint_dir is not None else None
    start_step, ema, ema_steps = 0, 0.0, 0
    curve: list[dict[str, float | int]] = []
    state = ckpt.load_checkpoint(ckpt_file, run_key, model) if ckpt_file is not None else None
    if state is not None:
        model.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        torch.set_rng_state(state["cpu_rng"])
        if device.type == "cuda" and state.get("cuda_rng") is not None:
            torch.cuda.set_rng_state(state["cuda_rng"], device)
        start_step, ema, ema_steps = state["step"], state["ema"], state["ema_steps"]
        curve = [p for p in state.get("curve", []) if p["step"] <= start_step]
        log.info("%s: resuming from checkpoint at step %d/%d", name, start_step, num_steps)

    def save(step: int) -> None:
        ckpt.save_checkpoint(
            ckpt_file,
            {
                "run_key": run_key,
                "step": step,
                "ema": ema,
                "ema_steps": ema_steps,
                "curve": curve,
                "model": model.state_dict(),
                "optimizer": optimizer.state_dict(),
                "cpu_rng": torch.get_rng_state(),
                "cuda_rng": torch.cuda.get_rng_state(device) if device.type == "cuda" else None,
            },
        )

    every_s = (cfg.checkpoint_every_minutes or math.inf) * 60.0
    every_steps = cfg.checkpoint_every_steps
    beta = cfg.train_loss_ema
    pending: list[torch.Tensor] = []  # losses not yet copied to the host (CUDA: batched)
    flush_every = 1 if device.type == "cpu" else 25

    def flush(step: int) -> None:
        nonlocal ema, ema_steps
        if not pending:
            return
        values = torch.stack(pending).float().cpu().tolist()
        pending.clear()
        for v in values:
            if not math.isfinite(v):
                raise FloatingPointError(f"{name}: training loss became {v} by step {step}")
            ema = beta * ema + (1 - beta) * v
            ema_steps += 1

    def smoothed() -> float:
        """The bias-corrected EMA of the training loss so far."""
        return ema / (1 - beta**ema_steps) if ema_steps else float("nan")

    unit_label = {"tokens": "tok", "examples": "ex"}.get(data.unit, data.unit)
    bar = _progress_bar(num_units, start_step * units_per_step, name, show_progress, unit_label)
    model.train()
    interrupt.step_done(start_step, num_steps)
    t_start = last_ckpt = time.perf_counter()
    curve_seconds = 0.0
    try:
        for step in range(start_step, num_steps):
            set_lr(optimizer, lr_factor(step, num_steps, warmup, cfg.schedule))
            batch = {k: v.to(device, non_blocking=True)
                     for k, v in data.train_batch(step, batch_size, seed).items()}
            with runtime.autocast(device, dtype):
                outputs = forward(batch["inputs"])
            loss = loss_fn(outputs, batch)
            if loss.dim() and loss.numel() == 1:  # a (1,)-shaped loss: the contract check warned
                loss = loss.reshape(())
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            if cfg.optimizer.grad_clip is not None:
                torch.nn.utils.clip_grad_norm_(params, cfg.optimizer.grad_clip, foreach=True)
            optimizer.step()
            pending.append(loss.detach())
            done = step + 1
            if len(pending) >= flush_every or done == num_steps:
                flush(done)
                bar.set_postfix(loss=f"{smoothed():.3f}", refresh=False)
            bar.update(units_per_step)
            if done in curve_at:
                t_curve = time.perf_counter()
                flush(done)
                point = evaluate(model, curve_set, loss_fn, cfg.eval.batch_size, device, dtype)
                curve.append(curves.curve_point(
                    done, units_per_step, point["loss"], smoothed()))
                curve_seconds += time.perf_counter() - t_curve
            if ckpt_file is not None and done < num_steps:
                now = time.perf_counter()
                if (every_steps and done % every_steps == 0) or now - last_ckpt >= every_s:
                    flush(done)
                    save(done)
                    last_ckpt = now
            interrupt.step_done(done, num_steps)
            if on_step is not None:
                on_step(done)
            if interrupt.requested() and done < num_steps:
                # SIGTERM / SIGINT: keep this step's work before the scheduler kills us
                if ckpt_file is not None:
                    flush(done)
                    save(done)
                raise interrupt.RunInterrupted(name, done, num_steps, ckpt_file is not None)
    except FloatingPointError as exc:
        # a diverged run fails, and its failed record keeps the curve up to the divergence
        exc.partial_metrics = {LOSS_CURVE_FIELD: curve}
        raise
    finally:
        bar.close()
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    train_seconds = time.perf_counter() - t_start - curve_seconds

    t_eval = time.perf_counter()
    evaluation = evaluate(model, heldout, loss_fn, cfg.eval.batch_size, device, dtype)
    eval_seconds = time.perf_counter() - t_eval
    final_loss = evaluation.pop("loss")
    if not math.isfinite(final_loss):
        exc = FloatingPointError(f"{name}: held-out loss is {final_loss}")
        exc.partial_metrics = {LOSS_CURVE_FIELD: curve}
        raise exc

    if ckpt_file is not None:
        if cfg.keep_checkpoints:
            save(num_steps)
        else:
            ckpt.remove_checkpoint(ckpt_file)

    train_loss = smoothed()
    executed = (num_steps - start_step) * units_per_step
    # bits are nats / ln 2: meaningful only for a loss that declares it counts nats
    in_nats = getattr(loss_fn, "unit", None) == "nats"
    return {
        "final_loss": final_loss,
        "final_loss_stderr": evaluation.pop("stderr"),
        **({"final_loss_bits": final_loss / LN2} if in_nats else {}),
        **{f"heldout_{metric}": value for metric, value in evaluation.items()},
        "heldout_examples": len(heldout["inputs"]),
        "heldout_units": int(heldout["targets"].numel()),
        "train_loss": train_loss,
        **({"train_loss_bits": train_loss / LN2} if in_nats else {}),
        "data_unit": data.unit,
        "tokens_seen": num_units,
        "actual_flops": float(num_units) * flops_per_unit,
        "num_steps_run": num_steps,
        "resumed_from_step": start_step,
        "units_per_second": executed / train_seconds if train_seconds > 0 else float("nan"),
        "train_seconds": train_seconds,
        "eval_seconds": eval_seconds,
        "curve_seconds": curve_seconds,
        LOSS_CURVE_FIELD: curve,
        "curve_heldout_units": int(curve_set["targets"].numel()),
        "corpus_epochs": epochs,
        "device": str(device),
        "precision": str(dtype).removeprefix("torch."),
        "num_threads": torch.get_num_threads() if device.type == "cpu" else None,
        "warmup_steps": warmup,
        "peak_lr": cfg.optimizer.lr,
    }
