"""The learning-rate schedule of one run: a factor of the peak learning rate at every step.

Two kinds, both with a linear warm-up over the run's first steps:
  cosine  the warm-up, then a cosine decay over the rest of the run to `min_lr_ratio`;
  wsd     warm-up / stable / decay (Hägele et al. 2024, arXiv:2405.18392): the warm-up, the peak
          held constant, then a cooldown over the run's last `cooldown_fraction` of steps to
          `min_lr_ratio`, shaped `1-sqrt` (the paper's best), `linear` or `cosine`.

A WSD run of D steps is the constant-rate run up to its cooldown, then the cooldown: every
step before the cooldown is the same for any run length whose warm-up is the same, which is
what lets one constant-rate run stand in for the first steps of several.
"""

from __future__ import annotations

import math
from typing import Any


def warmup_steps_for(total_steps: int, warmup_fraction: float, max_warmup_steps: int) -> int:
    """Warm-up length of a run: a fraction of its own length, at most `max_warmup_steps`."""
    return max(1, min(max_warmup_steps, int(round(warmup_fraction * total_steps))))


def cooldown_steps_for(total_steps: int, cooldown_fraction: float) -> int:
    """Steps of a WSD run's cooldown: its last `cooldown_fraction` of steps, at least one."""
    return max(1, min(total_steps, int(round(cooldown_fraction * total_steps))))


def _decay(progress: float, shape: str) -> float:
    """From 1 at progress 0 to 0 at progress 1."""
    if shape == "cosine":
        return 0.5 * (1 + math.cos(math.pi * progress))
    if shape == "linear":
        return 1.0 - progress
    if shape == "1-sqrt":
        return 1.0 - math.sqrt(progress)
    raise ValueError(f"torch_backend.schedule.cooldown_shape: unknown shape {shape!r}")


def lr_factor(step: int, total_steps: int, warmup_steps: int, schedule: Any) -> float:
    """The factor of the peak learning rate at 0-based `step` of a `total_steps` run.

    `schedule` holds `kind`, `min_lr_ratio` and, for `wsd`, `cooldown_fraction` and
    `cooldown_shape` (`flops_fit.parameters.torch_backend.ScheduleParams`). The last step is at
    `min_lr_ratio` in both kinds.
    """
    if step < warmup_steps:
        return (step + 1) / warmup_steps
    floor = float(schedule.min_lr_ratio)
    if schedule.kind == "cosine":
        decay_steps = max(1, total_steps - warmup_steps)
        progress = min(1.0, (step - warmup_steps + 1) / decay_steps)
        return floor + (1 - floor) * _decay(progress, "cosine")
    if schedule.kind == "wsd":
        cooldown = cooldown_steps_for(total_steps, schedule.cooldown_fraction)
        start = total_steps - cooldown
        if step < start:
            return 1.0
        progress = min(1.0, (step - start + 1) / cooldown)
        return floor + (1 - floor) * _decay(progress, schedule.cooldown_shape)
    raise ValueError(f"torch_backend.schedule.kind: unknown kind {schedule.kind!r}")
