"""One training run: a u-μP GPT trained on exactly `num_steps · batch_size · context_length`
tokens, then evaluated on a fixed held-out set.

Framework-free: a notebook user calls `train_run(shape, ...)` directly;
`flops_fit.backends.torch_backend` adapts it to the training pipeline's backend interface.
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
import torch.nn.functional as F

from flops_fit.corpus import CorpusSplit
from flops_fit.flops import training_flops_per_token
from flops_fit.nn import checkpoint as ckpt
from flops_fit.nn import runtime
from flops_fit.nn.data import TrainBatches, check_epochs, heldout_windows
from flops_fit.nn.losses import cross_entropy
from flops_fit.nn.model import GPT
from flops_fit.nn.optim import build_optimizer, lr_factor, set_lr, warmup_steps_for
from flops_fit.parameters.torch_backend import TorchConfig
from flops_fit.shapes import ModelShape

log = logging.getLogger(__name__)

LN2 = math.log(2.0)


def evaluate(
    model: torch.nn.Module,
    windows: np.ndarray,
    batch_size: int,
    device: torch.device,
    dtype: torch.dtype,
) -> tuple[float, float, int]:
    """Mean next-token loss (nats) over the windows, its standard error, and the token count.

    The standard error is taken over per-window means (tokens within a window are correlated).
    """
    data = torch.from_numpy(windows).to(device).long()
    window_means = []
    was_training = model.training
    model.eval()
    with torch.no_grad(), runtime.autocast(device, dtype):
        for i in range(0, len(data), batch_size):
            chunk = data[i : i + batch_size]
            logits = model(chunk[:, :-1])
            losses = F.cross_entropy(
                logits.flatten(0, 1).float(), chunk[:, 1:].flatten(), reduction="none"
            )
            window_means.append(losses.view(len(chunk), -1).mean(dim=1).double().cpu())
    model.train(was_training)
    means = torch.cat(window_means).numpy()
    stderr = float(means.std(ddof=1) / math.sqrt(len(means))) if len(means) > 1 else float("nan")
    return float(means.mean()), stderr, int(data[:, 1:].numel())


def _progress_bar(total: int, initial: int, desc: str, enabled: bool):
    from tqdm.auto import tqdm

    return tqdm(
        total=total,
        initial=initial,
        desc=desc,
        unit="tok",
        unit_scale=True,
        disable=not enabled,
        leave=False,
        mininterval=1.0,
        smoothing=0.1,
        dynamic_ncols=True,
    )


def train_run(
    shape: ModelShape,
    *,
    num_steps: int,
    batch_size: int,
    corpus: CorpusSplit,
    config: TorchConfig | None = None,
    seed: int = 0,
    flops_formula: str = "full",
    max_epochs: float | None = None,
    checkpoint_dir: Path | str | None = None,
    show_progress: bool = False,
    name: str = "run",
    on_step: Callable[[int], None] | None = None,
) -> dict[str, Any]:
    """Train one model for exactly `num_steps` optimiser steps and evaluate it.

    `on_step(k)` is called after step k (1-based) has been applied and, if due, checkpointed.
    Returns the metrics of the run; raises on failure (including a non-finite loss).
    """
    cfg = config or TorchConfig()
    if num_steps < 1 or batch_size < 1:
        raise ValueError(
            f"{name}: num_steps ({num_steps}) and batch_size ({batch_size}) must be >= 1"
        )
    T = shape.context_length
    tokens_per_step = batch_size * T
    num_tokens = num_steps * tokens_per_step
    train_tokens = int(corpus.train.size)
    epochs = check_epochs(num_tokens, train_tokens, max_epochs, name)

    device = runtime.resolve_device(cfg.device)
    dtype = runtime.resolve_dtype(cfg.precision, device)
    runtime.configure(device, cfg.num_threads)

    # Data: the held-out windows are fixed by the corpus and the context length alone.
    batches = TrainBatches(corpus.train, T, batch_size, seed, device)
    eval_windows = heldout_windows(corpus.heldout, T, cfg.eval.heldout_tokens)

    # Model and optimiser: initialised on the CPU so a seed gives the same weights anywhere.
    torch.manual_seed(seed)
    model = GPT(shape, cfg.umup)
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
        "shape": shape.to_dict(),
        "num_steps": num_steps,
        "batch_size": batch_size,
        "seed": int(seed),
        **cfg.run_key(),
    }
    ckpt_file = ckpt.checkpoint_path(checkpoint_dir) if checkpoint_dir is not None else None
    start_step, ema, ema_steps = 0, 0.0, 0
    state = ckpt.load_checkpoint(ckpt_file, run_key) if ckpt_file is not None else None
    if state is not None:
        model.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        torch.set_rng_state(state["cpu_rng"])
        if device.type == "cuda" and state.get("cuda_rng") is not None:
            torch.cuda.set_rng_state(state["cuda_rng"], device)
        start_step, ema, ema_steps = state["step"], state["ema"], state["ema_steps"]
        log.info("%s: resuming from checkpoint at step %d/%d", name, start_step, num_steps)

    def save(step: int) -> None:
        ckpt.save_checkpoint(
            ckpt_file,
            {
                "run_key": run_key,
                "step": step,
                "ema": ema,
                "ema_steps": ema_steps,
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

    bar = _progress_bar(num_tokens, start_step * tokens_per_step, name, show_progress)
    model.train()
    t_start = last_ckpt = time.perf_counter()
    try:
        for step in range(start_step, num_steps):
            set_lr(optimizer, lr_factor(step, num_steps, warmup, cfg.schedule.min_lr_ratio))
            inputs, targets = batches.batch(step)
            with runtime.autocast(device, dtype):
                logits = forward(inputs)
            loss = cross_entropy(logits.flatten(0, 1).float(), targets.flatten())
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            if cfg.optimizer.grad_clip is not None:
                torch.nn.utils.clip_grad_norm_(params, cfg.optimizer.grad_clip, foreach=True)
            optimizer.step()
            pending.append(loss.detach())
            done = step + 1
            if len(pending) >= flush_every or done == num_steps:
                flush(done)
                bar.set_postfix(loss=f"{ema / (1 - beta**ema_steps):.3f}", refresh=False)
            bar.update(tokens_per_step)
            if ckpt_file is not None and done < num_steps:
                now = time.perf_counter()
                if (every_steps and done % every_steps == 0) or now - last_ckpt >= every_s:
                    flush(done)
                    save(done)
                    last_ckpt = now
            if on_step is not None:
                on_step(done)
    finally:
        bar.close()
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    train_seconds = time.perf_counter() - t_start

    t_eval = time.perf_counter()
    final_loss, stderr, heldout_tokens = evaluate(
        model, eval_windows, cfg.eval.batch_size, device, dtype
    )
    eval_seconds = time.perf_counter() - t_eval
    if not math.isfinite(final_loss):
        raise FloatingPointError(f"{name}: held-out loss is {final_loss}")

    if ckpt_file is not None:
        if cfg.keep_checkpoints:
            save(num_steps)
        else:
            ckpt.remove_checkpoint(ckpt_file)

    train_loss = ema / (1 - beta**ema_steps) if ema_steps else float("nan")
    tokens_seen = num_steps * tokens_per_step
    executed = (num_steps - start_step) * tokens_per_step
    return {
        "final_loss": final_loss,
        "final_loss_stderr": stderr,
        "final_loss_bits_per_byte": final_loss / LN2,
        "heldout_tokens": heldout_tokens,
        "train_loss": train_loss,
        "train_loss_bits_per_byte": train_loss / LN2,
        "tokens_seen": tokens_seen,
        "actual_flops": float(tokens_seen) * training_flops_per_token(shape, flops_formula),
        "num_steps_run": num_steps,
        "resumed_from_step": start_step,
        "tokens_per_second": executed / train_seconds if train_seconds > 0 else float("nan"),
        "train_seconds": train_seconds,
        "eval_seconds": eval_seconds,
        "corpus_epochs": epochs,
        "device": str(device),
        "precision": str(dtype).removeprefix("torch."),
        "num_threads": torch.get_num_threads() if device.type == "cpu" else None,
        "warmup_steps": warmup,
        "peak_lr": cfg.optimizer.lr,
    }
