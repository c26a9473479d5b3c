"""`params:torch_backend`: the u-μP GPT trainer (device, precision, optimiser, schedule, u-μP).

Defaults equal `conf/base/parameters_torch_backend.yml` (tests/parameters/test_defaults.py checks
it). This module does not import torch; `flops_fit.nn` reads these models.
"""

from __future__ import annotations

import re
from typing import Any, Literal

from pydantic import Field, StrictBool, field_validator, model_serializer, model_validator

from flops_fit.parameters.base import (
    NonNegativeInt,
    Number,
    PositiveInt,
    PositiveNumber,
    Section,
)

_DEVICE = re.compile(r"^(auto|cpu|cuda|cuda:\d+)$")


class OptimizerParams(Section):
    """AdamW with u-μP's per-tensor learning rates (flops_fit.nn.optim)."""

    SECTION = "torch_backend.optimizer"

    lr: PositiveNumber = 0.7  # u-μP's global η; swept 0.125-4 on 16-128 wide models
    betas: tuple[Number, Number] = (0.9, 0.95)
    eps: PositiveNumber = 1e-8
    weight_decay: Number = Field(0.0, ge=0, lt=1)  # independent (LR-free) decay per step
    grad_clip: PositiveNumber | None = 1.0  # max global gradient norm; null: no clipping

    @field_validator("betas")
    @classmethod
    def _betas(cls, betas: tuple[float, float]) -> tuple[float, float]:
        if not all(0 <= b < 1 for b in betas):
            raise ValueError("must be two numbers in [0, 1)")
        return betas


class ScheduleParams(Section):
    """Linear warm-up, then a cosine decay over the run's own length, or warm-up / stable /
    decay (`flops_fit.nn.schedule`)."""

    SECTION = "torch_backend.schedule"

    kind: Literal["cosine", "wsd"] = "cosine"
    warmup_fraction: Number = Field(0.2, ge=0, lt=1)  # of the run's steps ...
    max_warmup_steps: PositiveInt = 1000  # ... at most
    min_lr_ratio: Number = Field(0.1, ge=0, le=1)  # the last step's LR relative to the peak
    cooldown_fraction: Number = Field(0.2, gt=0, le=1)  # wsd: the cooldown's share of the run
    cooldown_shape: Literal["1-sqrt", "linear", "cosine"] = "1-sqrt"  # wsd: its shape
    # planning.design trunks: a trunk warms up over at least this share of its steps
    trunk_warmup_fraction: Number = Field(0.1, ge=0, lt=1)

    @model_serializer(mode="wrap")
    def _what_shapes_the_run(self, handler: Any) -> dict[str, Any]:
        """The cooldown keys only under `wsd`: under cosine they change nothing, so neither the
        stored training settings nor a checkpoint's run key should hold them. Never the trunk's
        warm-up share: planning applies it, and each branch's `warmup_steps` carries it."""
        data = handler(self)
        data.pop("trunk_warmup_fraction", None)
        if self.kind != "wsd":
            for key in ("cooldown_fraction", "cooldown_shape"):
                data.pop(key, None)
        return data

    @model_validator(mode="after")
    def _room_for_both(self) -> ScheduleParams:
        if self.kind == "wsd" and self.warmup_fraction + self.cooldown_fraction > 1:
            raise ValueError(
                f"warmup_fraction ({self.warmup_fraction:g}) + cooldown_fraction "
                f"({self.cooldown_fraction:g}) exceed the run: they must sum to at most 1"
            )
        return self


class UMuPConfig(Section):
    """u-μP's hyperparameters (Blake et al. 2024); 1.0 is the paper's unit-scaled default."""

    SECTION = "torch_backend.umup"

    residual_mult: PositiveNumber = 1.0  # α_res: residual branches vs the embedding
    residual_attn_ratio: PositiveNumber = 1.0  # α_res-attn-ratio: attention vs FFN branches
    attn_softmax_mult: PositiveNumber = 1.0  # α_attn: attention logit multiplier
    ffn_act_mult: PositiveNumber = 1.0  # α_ffn-act: SwiGLU gate multiplier
    loss_softmax_mult: PositiveNumber = 1.0  # α_loss-softmax: output logit multiplier
    rope_base: PositiveNumber = 10000.0
    norm_eps: PositiveNumber = 1e-5


class EvalParams(Section):
    SECTION = "torch_backend.eval"

    heldout_tokens: PositiveInt = 65536  # final_loss = mean over this many held-out tokens
    batch_size: PositiveInt = 64  # windows per evaluation forward pass


class CurveParams(Section):
    """Every run's loss curve (`flops_fit.nn.curves`)."""

    SECTION = "torch_backend.curve"

    points: NonNegativeInt = 16  # held-out evaluations per run, log-spaced in steps; 0: none
    heldout_fraction: Number = Field(0.0625, gt=0, le=1)  # each on this share of the held-out rows
    max_cost: Number = Field(0.05, gt=0, le=1)  # fewer points where they would cost more of the run


class TorchConfig(Section):
    SECTION = "torch_backend"

    device: str = "auto"  # auto: CUDA when available, else CPU | cpu | cuda | cuda:N
    precision: Literal["auto", "float32", "bfloat16"] = "auto"
    num_threads: PositiveInt = 1  # torch threads per worker process on the CPU
    compile: StrictBool = False  # torch.compile the model: pays on CUDA, not on small CPUs
    optimizer: OptimizerParams = OptimizerParams()
    schedule: ScheduleParams = ScheduleParams()
    umup: UMuPConfig = UMuPConfig()
    eval: EvalParams = EvalParams()
    curve: CurveParams = CurveParams()
    train_loss_ema: Number = Field(0.95, ge=0, lt=1)  # bias-corrected EMA of the train loss
    checkpoint_every_minutes: PositiveNumber | None = 5.0  # null: never on time
    checkpoint_every_steps: PositiveInt | None = None  # also every k steps (tests, debugging)
    keep_checkpoints: StrictBool = False  # keep a completed run's final checkpoint

    @field_validator("device")
    @classmethod
    def _device(cls, device: str) -> str:
        if not _DEVICE.match(device):
            raise ValueError("must be auto, cpu, cuda or cuda:N")
        return device

    def run_key(self) -> dict[str, Any]:
        """What a checkpoint must match to be resumed (settings that change the trajectory)."""
        return self.model_dump(mode="json", include={"optimizer", "schedule", "umup"})
