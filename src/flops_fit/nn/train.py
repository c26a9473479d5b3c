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
from flops_fit.nn import checkpoint as ckpt
from flops_fit.nn import curves, runtime
from flops_fit.nn.loop import Trainer
from flops_fit.nn.optim import build_optimizer
from flops_fit.nn.schedule import lr_factor, warmup_steps_for
from flops_fit.nn.trunk import (
    LATEST,
    TrunkBranch,
    branch_file,
    save_branch_point,
    trunk_key,
    trunk_state,
)
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
    warmup_steps: int | None = None,
    trunk: TrunkBranch | None = None,
) -> dict[str, Any]:
    """Train one model for exactly `num_steps` optimiser steps and evaluate it.

    The model is `model_plugin.build(model_kwargs)`, the batches `data.train_batch(step, ...)`
    and the loss `loss(outputs, batch)` (an import path or a callable). `on_step(k)` is called
    after step k (1-based) has been applied and, if due, checkpointed. `warmup_steps`: the
    warm-up (default: the schedule's share of this run). `trunk`: the run is a branch
    (`flops_fit.nn.trunk`): its steps up to `trunk.branch_step` are its trunk's, taken from
    the trunk's checkpoints or trained and saved there. Returns the metrics of the run; raises
    on failure (including a non-finite loss).
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
    if trunk is not None:
        warmup_steps = trunk.warmup_steps
    warmup = (warmup_steps if warmup_steps is not None else warmup_steps_for(
        num_steps, cfg.schedule.warmup_fraction, cfg.schedule.max_warmup_steps))

    device = runtime.resolve_device(cfg.device)
    dtype = runtime.resolve_dtype(cfg.precision, device)
    runtime.configure(device, cfg.num_threads)
    heldout = data.heldout()  # fixed by the data alone: the same for every run of a study
    curve_set = curves.subset(
        heldout, curves.heldout_rows(len(heldout["inputs"]), cfg.curve.heldout_fraction))

    def curve_steps(steps: int) -> set[int]:
        return set(curves.curve_steps(steps, cfg.curve.points,
                                      int(curve_set["targets"].numel()),
                                      steps * units_per_step, cfg.curve.max_cost))

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
    trainer = Trainer(model, optimizer, data, loss_fn, cfg, device, dtype,
                      batch_size=batch_size, seed=seed, name=name, curve_set=curve_set,
                      evaluate=evaluate)
    run_key = {
        "name": name,
        "model": {"factory": model_plugin.factory_path, "kwargs": model_kwargs,
                  "extra": model_plugin.extra},
        "num_steps": num_steps,
        "batch_size": batch_size,
        "seed": int(seed),
        **cfg.run_key(),
    }
    if warmup_steps is not None:  # else the schedule's share of num_steps, which the key holds
        run_key["warmup_steps"] = int(warmup)
    if trunk is not None:
        run_key["trunk"] = {"id": trunk.trunk_id, "branch_step": trunk.branch_step}
    ckpt_file = ckpt.checkpoint_path(checkpoint_dir) if checkpoint_dir is not None else None
    state = ckpt.load_checkpoint(ckpt_file, run_key, model) if ckpt_file is not None else None
    key_of_trunk = trunk_key(run_key, trunk) if trunk is not None else None
    if state is None and trunk is not None:
        state = trunk_state(trunk, key_of_trunk, model)
    if state is not None:
        trainer.restore(state)
        log.info("%s: resuming from %s at step %d/%d", name,
                 "its checkpoint" if state["run_key"] == run_key else "its trunk",
                 trainer.step, num_steps)
    start_step = trainer.step

    def lr_at(step: int) -> float:
        return lr_factor(step, num_steps, warmup, cfg.schedule)

    unit_label = {"tokens": "tok", "examples": "ex"}.get(data.unit, data.unit)
    bar = _progress_bar(num_units, start_step * units_per_step, name, show_progress, unit_label)
    try:
        if trunk is not None and trainer.step <= trunk.branch_step:
            # the trunk's own steps: its checkpoints, its curve spacing
            advanced = trainer.step < trunk.branch_step
            trainer.advance(trunk.branch_step, lr_at, total=num_steps,
                            curve_at=curve_steps(trunk.trunk_steps),
                            checkpoint=Path(trunk.directory) / LATEST, key=key_of_trunk,
                            bar=bar, on_step=on_step)
            if advanced or not branch_file(trunk.directory, trunk.branch_step).exists():
                save_branch_point(trainer, trunk, key_of_trunk)
        after = trunk.branch_step if trunk is not None else 0
        trainer.advance(num_steps, lr_at, total=num_steps,
                        curve_at={s for s in curve_steps(num_steps) if s > after},
                        checkpoint=ckpt_file, key=run_key, bar=bar, on_step=on_step)
    except FloatingPointError as exc:
        # a diverged run fails, and its failed record keeps the curve up to the divergence
        exc.partial_metrics = {LOSS_CURVE_FIELD: trainer.curve}
        raise
    finally:
        bar.close()

    t_eval = time.perf_counter()
    evaluation = evaluate(model, heldout, loss_fn, cfg.eval.batch_size, device, dtype)
    eval_seconds = time.perf_counter() - t_eval
    final_loss = evaluation.pop("loss")
    if not math.isfinite(final_loss):
        exc = FloatingPointError(f"{name}: held-out loss is {final_loss}")
        exc.partial_metrics = {LOSS_CURVE_FIELD: trainer.curve}
        raise exc

    if ckpt_file is not None:
        if cfg.keep_checkpoints:
            trainer.save(ckpt_file, run_key)
        else:
            ckpt.remove_checkpoint(ckpt_file)

    train_loss = trainer.smoothed()
    trained = num_steps - start_step
    train_seconds = trainer.train_seconds
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
        # what this call trained (a resumed run or a branch: less than its D)
        "trained_flops": float(trained * units_per_step) * flops_per_unit,
        "num_steps_run": num_steps,
        "resumed_from_step": start_step,
        "units_per_second": (trained * units_per_step / train_seconds if train_seconds > 0
                             else float("nan")),
        "train_seconds": train_seconds,
        "eval_seconds": eval_seconds,
        "curve_seconds": trainer.curve_seconds,
        LOSS_CURVE_FIELD: trainer.curve,
        "curve_heldout_units": int(curve_set["targets"].numel()),
        "corpus_epochs": epochs,
        "device": str(device),
        "precision": str(dtype).removeprefix("torch."),
        "num_threads": torch.get_num_threads() if device.type == "cpu" else None,
        "warmup_steps": warmup,
        "peak_lr": cfg.optimizer.lr,
    }
