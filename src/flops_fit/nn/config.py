"""`params:torch_backend`, validated: every error names the offending key."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field, fields
from typing import Any

from flops_fit.nn.model import UMuPConfig

SECTION = "torch_backend"


class TorchConfigError(ValueError):
    """An invalid `params:torch_backend` value; the message names the key."""


@dataclass(frozen=True)
class OptimizerConfig:
    lr: float = 0.7  # u-μP's global η (per-tensor rules scale it, see flops_fit.nn.optim)
    betas: tuple[float, float] = (0.9, 0.95)
    eps: float = 1e-8
    weight_decay: float = 0.0  # independent (LR-free) weight decay λ
    grad_clip: float | None = 1.0  # max global gradient norm; null: no clipping


@dataclass(frozen=True)
class ScheduleConfig:
    warmup_fraction: float = 0.2  # of the run's own steps ...
    max_warmup_steps: int = 1000  # ... but at most this many
    min_lr_ratio: float = 0.1  # cosine decays to min_lr_ratio · peak at the last step


@dataclass(frozen=True)
class EvalConfig:
    heldout_tokens: int = 65536  # predicted held-out tokens behind final_loss
    batch_size: int = 64  # windows per evaluation forward pass


@dataclass(frozen=True)
class TorchConfig:
    device: str = "auto"  # auto (CUDA when available) | cpu | cuda | cuda:N
    precision: str = "auto"  # auto (bf16 autocast on CUDA, fp32 on CPU) | float32 | bfloat16
    num_threads: int = 1  # torch intra-op threads per worker process on the CPU
    compile: bool = False  # torch.compile the model (pays on CUDA, not on these CPUs)
    optimizer: OptimizerConfig = field(default_factory=OptimizerConfig)
    schedule: ScheduleConfig = field(default_factory=ScheduleConfig)
    umup: UMuPConfig = field(default_factory=UMuPConfig)
    eval: EvalConfig = field(default_factory=EvalConfig)
    train_loss_ema: float = 0.95  # smoothing of the reported training loss
    checkpoint_every_minutes: float | None = 5.0  # null: never checkpoint on time
    checkpoint_every_steps: int | None = None  # also checkpoint every k steps (tests, debugging)
    keep_checkpoints: bool = False  # keep the final checkpoint of a completed run

    @classmethod
    def from_params(cls, params: dict[str, Any] | None) -> TorchConfig:
        params = {} if params is None else params
        _mapping(SECTION, params)
        _known(SECTION, params, cls)
        kw: dict[str, Any] = {}
        for key in ("device", "precision"):
            if key in params:
                kw[key] = _str(f"{SECTION}.{key}", params[key])
        device = kw.get("device", "auto")
        if not (device in ("auto", "cpu", "cuda") or device.startswith("cuda:")):
            raise TorchConfigError(
                f"params:{SECTION}.device must be auto, cpu, cuda or cuda:N, got {device!r}"
            )
        if kw.get("precision", "auto") not in ("auto", "float32", "bfloat16"):
            raise TorchConfigError(
                f"params:{SECTION}.precision must be auto, float32 or bfloat16, "
                f"got {kw['precision']!r}"
            )
        if "num_threads" in params:
            kw["num_threads"] = _int(f"{SECTION}.num_threads", params["num_threads"])
        for key in ("compile", "keep_checkpoints"):
            if key in params:
                kw[key] = _bool(f"{SECTION}.{key}", params[key])
        if "train_loss_ema" in params:
            v = _num(f"{SECTION}.train_loss_ema", params["train_loss_ema"])
            if not 0 <= v < 1:
                raise TorchConfigError(
                    f"params:{SECTION}.train_loss_ema must be in [0, 1), got {v}"
                )
            kw["train_loss_ema"] = v
        if "checkpoint_every_minutes" in params:
            kw["checkpoint_every_minutes"] = _opt_pos(
                f"{SECTION}.checkpoint_every_minutes", params["checkpoint_every_minutes"]
            )
        if params.get("checkpoint_every_steps") is not None:
            kw["checkpoint_every_steps"] = _int(
                f"{SECTION}.checkpoint_every_steps", params["checkpoint_every_steps"]
            )

        opt = params.get("optimizer") or {}
        _mapping(f"{SECTION}.optimizer", opt)
        _known(f"{SECTION}.optimizer", opt, OptimizerConfig)
        okw: dict[str, Any] = {}
        for key in ("lr", "eps"):
            if key in opt:
                okw[key] = _pos(f"{SECTION}.optimizer.{key}", opt[key])
        if "weight_decay" in opt:
            wd = _num(f"{SECTION}.optimizer.weight_decay", opt["weight_decay"])
            if not 0 <= wd < 1:
                raise TorchConfigError(
                    f"params:{SECTION}.optimizer.weight_decay must be in [0, 1), got {wd}"
                )
            okw["weight_decay"] = wd
        if "grad_clip" in opt:
            okw["grad_clip"] = _opt_pos(f"{SECTION}.optimizer.grad_clip", opt["grad_clip"])
        if "betas" in opt:
            betas = opt["betas"]
            if (
                not isinstance(betas, (list, tuple))
                or len(betas) != 2
                or not all(isinstance(b, (int, float)) and 0 <= b < 1 for b in betas)
            ):
                raise TorchConfigError(
                    f"params:{SECTION}.optimizer.betas must be two numbers in [0, 1), got {betas!r}"
                )
            okw["betas"] = (float(betas[0]), float(betas[1]))
        kw["optimizer"] = OptimizerConfig(**okw)

        sch = params.get("schedule") or {}
        _mapping(f"{SECTION}.schedule", sch)
        _known(f"{SECTION}.schedule", sch, ScheduleConfig)
        skw: dict[str, Any] = {}
        if "warmup_fraction" in sch:
            v = _num(f"{SECTION}.schedule.warmup_fraction", sch["warmup_fraction"])
            if not 0 <= v < 1:
                raise TorchConfigError(
                    f"params:{SECTION}.schedule.warmup_fraction must be in [0, 1), got {v}"
                )
            skw["warmup_fraction"] = v
        if "max_warmup_steps" in sch:
            skw["max_warmup_steps"] = _int(
                f"{SECTION}.schedule.max_warmup_steps", sch["max_warmup_steps"]
            )
        if "min_lr_ratio" in sch:
            v = _num(f"{SECTION}.schedule.min_lr_ratio", sch["min_lr_ratio"])
            if not 0 <= v <= 1:
                raise TorchConfigError(
                    f"params:{SECTION}.schedule.min_lr_ratio must be in [0, 1], got {v}"
                )
            skw["min_lr_ratio"] = v
        kw["schedule"] = ScheduleConfig(**skw)

        um = params.get("umup") or {}
        _mapping(f"{SECTION}.umup", um)
        _known(f"{SECTION}.umup", um, UMuPConfig)
        kw["umup"] = UMuPConfig(**{k: _pos(f"{SECTION}.umup.{k}", v) for k, v in um.items()})

        ev = params.get("eval") or {}
        _mapping(f"{SECTION}.eval", ev)
        _known(f"{SECTION}.eval", ev, EvalConfig)
        kw["eval"] = EvalConfig(**{k: _int(f"{SECTION}.eval.{k}", v) for k, v in ev.items()})
        return cls(**kw)

    def run_key(self) -> dict[str, Any]:
        """What a checkpoint must match to be resumed (settings that change the trajectory)."""
        return {
            "optimizer": asdict(self.optimizer),
            "schedule": asdict(self.schedule),
            "umup": asdict(self.umup),
        }


def _mapping(key: str, value: Any) -> None:
    if not isinstance(value, dict):
        raise TorchConfigError(f"params:{key} must be a mapping, got {type(value).__name__}")


def _known(key: str, given: dict[str, Any], cls: type) -> None:
    allowed = {f.name for f in fields(cls)}
    unknown = sorted(set(given) - allowed)
    if unknown:
        raise TorchConfigError(
            f"unknown key(s) {unknown} in params:{key}; allowed keys: {sorted(allowed)}"
        )


def _num(key: str, value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise TorchConfigError(f"params:{key} must be a number, got {value!r}")
    return float(value)


def _pos(key: str, value: Any) -> float:
    v = _num(key, value)
    if v <= 0:
        raise TorchConfigError(f"params:{key} must be positive, got {value!r}")
    return v


def _opt_pos(key: str, value: Any) -> float | None:
    return None if value is None else _pos(key, value)


def _int(key: str, value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise TorchConfigError(f"params:{key} must be a positive integer, got {value!r}")
    return value


def _bool(key: str, value: Any) -> bool:
    if not isinstance(value, bool):
        raise TorchConfigError(f"params:{key} must be true or false, got {value!r}")
    return value


def _str(key: str, value: Any) -> str:
    if not isinstance(value, str):
        raise TorchConfigError(f"params:{key} must be a string, got {value!r}")
    return value
