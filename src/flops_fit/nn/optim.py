"""u-μP's AdamW (the schedule of one run is `flops_fit.nn.schedule`).

Per-tensor learning rates come from `unit_scaling.optim.lr_scale_func_adam` (the reference
implementation of u-μP's Adam rules), applied to each parameter's `mup_type` tag:
  hidden weights   η · fan_in^-1/2 · L^-1/2   (inside the residual stack of L blocks)
  embedding        η · d_model^-1/2            (u-μP's embedding rule: its fan-in is d_model)
  norm gains       η · L^-1/2 (block norms), η (final norm)
  head ("output")  η
Weight decay is decoupled and LR-independent ("independent weight decay", as in
`unit_scaling.optim`): each step multiplies a weight by 1 - λ·s(t), where s(t) is the schedule
factor, whatever its learning rate. Norm gains are not decayed.

Parameters that share a learning rate share a parameter group, so the `foreach`/`fused` AdamW
kernels can update them together (`unit_scaling.optim.AdamW` makes one group per tensor).
"""

from __future__ import annotations

from typing import Any

import torch
from unit_scaling.optim import lr_scale_func_adam
from unit_scaling.parameter import has_parameter_data


def umup_param_groups(
    model: torch.nn.Module, lr: float, weight_decay: float
) -> list[dict[str, Any]]:
    """Parameter groups with u-μP's per-tensor learning rates and independent weight decay.

    Each group carries `base_lr` (its peak learning rate); the schedule sets
    `lr = base_lr · factor(step)`.
    """
    groups: dict[tuple[float, float], list[torch.nn.Parameter]] = {}
    for name, p in model.named_parameters():
        if not has_parameter_data(p):
            raise ValueError(f"parameter {name} carries no u-μP tag (mup_type)")
        group_lr = lr * lr_scale_func_adam(p)
        decay = 0.0 if p.mup_type in ("norm", "bias") else weight_decay
        # torch's AdamW multiplies by (1 - lr·wd): dividing by the peak LR makes it lr-free.
        groups.setdefault((group_lr, decay / group_lr), []).append(p)
    return [
        {"params": params, "lr": group_lr, "base_lr": group_lr, "weight_decay": wd}
        for (group_lr, wd), params in groups.items()
    ]


def default_param_groups(
    model: torch.nn.Module, lr: float, weight_decay: float
) -> list[dict[str, Any]]:
    """AdamW groups for a model without its own hook: matrices and kernels are decayed, vectors
    (biases, norm gains) are not; one learning rate. Decay is independent of the learning rate,
    as for the GPT (each step multiplies a weight by 1 - λ·s(t))."""
    decay = [p for p in model.parameters() if p.requires_grad and p.dim() >= 2]
    keep = [p for p in model.parameters() if p.requires_grad and p.dim() < 2]
    groups = [{"params": decay, "lr": lr, "base_lr": lr, "weight_decay": weight_decay / lr},
              {"params": keep, "lr": lr, "base_lr": lr, "weight_decay": 0.0}]
    return [g for g in groups if g["params"]]


def param_groups(model: torch.nn.Module, lr: float, weight_decay: float) -> list[dict[str, Any]]:
    """The model's own groups (an optional `param_groups(lr, weight_decay)` method, e.g. the
    GPT's u-μP rules), else `default_param_groups`. Every group must carry `base_lr`."""
    hook = getattr(model, "param_groups", None)
    groups = hook(lr, weight_decay) if callable(hook) else default_param_groups(
        model, lr, weight_decay)
    for group in groups:
        group.setdefault("base_lr", group.get("lr", lr))
        group.setdefault("lr", group["base_lr"])
        # A group without its own decay gets the configured one, LR-independent like the rest
        # (never torch AdamW's own default of 0.01).
        group.setdefault("weight_decay", weight_decay / group["base_lr"])
    return groups


def build_optimizer(
    model: torch.nn.Module,
    *,
    lr: float,
    betas: tuple[float, float],
    eps: float,
    weight_decay: float,
    device_type: str,
) -> torch.optim.AdamW:
    groups = param_groups(model, lr, weight_decay)
    impl = {"fused": True} if device_type == "cuda" else {"foreach": True}
    return torch.optim.AdamW(groups, lr=lr, betas=betas, eps=eps, **impl)


def set_lr(optimizer: torch.optim.Optimizer, factor: float) -> None:
    for group in optimizer.param_groups:
        group["lr"] = group["base_lr"] * factor
