"""The optimiser steps of one training trajectory, resumable at any step.

`Trainer` holds a model, its optimiser and what the loop keeps between steps (the step reached,
the smoothed training loss, the loss curve). `advance(stop, ...)` trains from the step reached to
`stop`; `state(key)` / `restore(state)` are its checkpoint. A run of its own advances once to its
last step; a branch of a trunk (`flops_fit.nn.trunk`) advances the trunk to its branch point,
then itself to its last step. Both are the same steps, which is what makes a branch exactly the
run it stands for.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

from flops_fit.execution import interrupt
from flops_fit.nn import checkpoint as ckpt
from flops_fit.nn import curves, runtime
from flops_fit.nn.optim import set_lr


class Trainer:
    """One model's trajectory: model, optimiser, data, loss, and the state between steps."""

    def __init__(self, model: torch.nn.Module, optimizer: torch.optim.Optimizer,
                 data: Any, loss_fn: Callable[..., torch.Tensor], cfg: Any,
                 device: torch.device, dtype: torch.dtype, *, batch_size: int, seed: int,
                 name: str, curve_set: dict[str, torch.Tensor], evaluate: Callable[..., dict]):
        self.model, self.optimizer, self.data, self.loss_fn = model, optimizer, data, loss_fn
        self.cfg, self.device, self.dtype = cfg, device, dtype
        self.batch_size, self.seed, self.name = batch_size, int(seed), name
        self.units_per_step = batch_size * int(data.units_per_example)
        self.curve_set, self._evaluate = curve_set, evaluate
        self.forward = torch.compile(model) if cfg.compile else model
        self.params = list(model.parameters())
        self.step, self.ema, self.ema_steps = 0, 0.0, 0
        self.curve: list[dict[str, float | int]] = []
        self.train_seconds = self.curve_seconds = 0.0
        self.pending: list[torch.Tensor] = []  # losses not yet copied to the host
        self.flush_every = 1 if device.type == "cpu" else 25  # CUDA: batched copies

    # -- checkpoints ---------------------------------------------------------------------
    def state(self, key: dict[str, Any]) -> dict[str, Any]:
        self.flush()
        cuda = self.device.type == "cuda"
        return {"run_key": key, "step": self.step, "ema": self.ema, "ema_steps": self.ema_steps,
                "curve": list(self.curve), "model": self.model.state_dict(),
                "optimizer": self.optimizer.state_dict(), "cpu_rng": torch.get_rng_state(),
                "cuda_rng": torch.cuda.get_rng_state(self.device) if cuda else None}

    def restore(self, state: dict[str, Any]) -> None:
        self.model.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        torch.set_rng_state(state["cpu_rng"])
        if self.device.type == "cuda" and state.get("cuda_rng") is not None:
            torch.cuda.set_rng_state(state["cuda_rng"], self.device)
        self.step, self.ema, self.ema_steps = state["step"], state["ema"], state["ema_steps"]
        self.curve = [p for p in state.get("curve", []) if p["step"] <= self.step]

    def save(self, path: Path, key: dict[str, Any]) -> None:
        ckpt.save_checkpoint(path, self.state(key))

    # -- the loss ------------------------------------------------------------------------
    def flush(self) -> None:
        """Copy the pending losses to the host, fail on a non-finite one, update the EMA."""
        if not self.pending:
            return
        values = torch.stack(self.pending).float().cpu().tolist()
        self.pending.clear()
        beta = self.cfg.train_loss_ema
        for v in values:
            if not math.isfinite(v):
                raise FloatingPointError(
                    f"{self.name}: training loss became {v} by step {self.step}")
            self.ema = beta * self.ema + (1 - beta) * v
            self.ema_steps += 1

    def smoothed(self) -> float:
        """The bias-corrected EMA of the training loss so far."""
        beta = self.cfg.train_loss_ema
        return self.ema / (1 - beta**self.ema_steps) if self.ema_steps else float("nan")

    # -- the steps -----------------------------------------------------------------------
    def advance(self, stop: int, lr_at: Callable[[int], float], *, total: int,
                curve_at: set[int], checkpoint: Path | None, key: dict[str, Any],
                bar: Any = None, on_step: Callable[[int], None] | None = None) -> None:
        """Train from the step reached to `stop`, at `lr_at(step)` of the peak rate.

        `total`: the run's last step (progress and interrupts count to it); `curve_at`: steps
        after which a curve point is evaluated; `checkpoint`: where the periodic and the
        interrupt checkpoints go, under `key`. SIGTERM / SIGINT: the step's work is saved there
        and `RunInterrupted` raised."""
        cfg = self.cfg
        every_s = (cfg.checkpoint_every_minutes or math.inf) * 60.0
        every_steps = cfg.checkpoint_every_steps
        start = last_ckpt = time.perf_counter()
        curve_seconds = 0.0
        self.model.train()
        interrupt.step_done(self.step, total)
        try:
            for step in range(self.step, stop):
                set_lr(self.optimizer, lr_at(step))
                batch = {k: v.to(self.device, non_blocking=True)
                         for k, v in self.data.train_batch(step, self.batch_size,
                                                           self.seed).items()}
                with runtime.autocast(self.device, self.dtype):
                    outputs = self.forward(batch["inputs"])
                loss = self.loss_fn(outputs, batch)
                if loss.dim() and loss.numel() == 1:  # a (1,)-shaped loss: the check warned
                    loss = loss.reshape(())
                self.optimizer.zero_grad(set_to_none=True)
                loss.backward()
                if cfg.optimizer.grad_clip is not None:
                    torch.nn.utils.clip_grad_norm_(self.params, cfg.optimizer.grad_clip,
                                                   foreach=True)
                self.optimizer.step()
                self.pending.append(loss.detach())
                self.step = done = step + 1
                if len(self.pending) >= self.flush_every or done == stop:
                    self.flush()
                    if bar is not None:
                        bar.set_postfix(loss=f"{self.smoothed():.3f}", refresh=False)
                if bar is not None:
                    bar.update(self.units_per_step)
                if done in curve_at:
                    t_curve = time.perf_counter()
                    self.flush()
                    point = self._evaluate(self.model, self.curve_set, self.loss_fn,
                                           cfg.eval.batch_size, self.device, self.dtype)
                    self.curve.append(curves.curve_point(done, self.units_per_step,
                                                         point["loss"], self.smoothed()))
                    curve_seconds += time.perf_counter() - t_curve
                if checkpoint is not None and done < stop:
                    now = time.perf_counter()
                    if (every_steps and done % every_steps == 0) or now - last_ckpt >= every_s:
                        self.save(checkpoint, key)
                        last_ckpt = now
                interrupt.step_done(done, total)
                if on_step is not None:
                    on_step(done)
                if interrupt.requested() and done < total:
                    # SIGTERM / SIGINT: keep this step's work before the scheduler kills us
                    if checkpoint is not None:
                        self.save(checkpoint, key)
                    raise interrupt.RunInterrupted(self.name, done, total,
                                                   checkpoint is not None)
        finally:
            if self.device.type == "cuda":
                torch.cuda.synchronize(self.device)
            self.curve_seconds += curve_seconds
            self.train_seconds += time.perf_counter() - start - curve_seconds
