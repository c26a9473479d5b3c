"""Every run's loss curve: the held-out loss at a few steps during training.

The steps are log-spaced from the first to the last (a run changes fastest early), on evenly
strided rows of the held-out set (the same rows at every point of every run of a study, so
curves compare; strided, so they span the whole held-out set as the final loss does). A point costs one forward pass over those rows, about a third of a training step's
FLOPs per unit; a run gets fewer points where all of them would cost more than `max_cost` of
its training FLOPs, and at least one, at its last step.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import numpy as np

from flops_fit.planning.flops import BACKWARD_FACTOR
from flops_fit.schema import LOSS_CURVE_POINT_FIELDS

#: a forward pass's FLOPs per unit relative to a training step's (forward + backward)
FORWARD_SHARE = 1.0 / (1 + BACKWARD_FACTOR)


def heldout_rows(total_rows: int, fraction: float) -> int:
    """How many rows of the held-out set a curve point evaluates (at least one)."""
    return max(1, min(total_rows, int(round(fraction * total_rows))))


def subset(heldout: Mapping[str, Any], rows: int) -> dict[str, Any]:
    """`rows` evenly strided rows of every held-out tensor (all of them when `rows` is)."""
    total = len(next(iter(heldout.values())))
    stride = max(1, total // max(1, rows))
    return {name: value[::stride][:rows] for name, value in heldout.items()}


def curve_steps(num_steps: int, points: int, subset_units: int, train_units: int,
                max_cost: float) -> list[int]:
    """The 1-based steps after which a run evaluates its curve point: at most `points`,
    log-spaced, the last at `num_steps`; none when `points` is 0."""
    if points <= 0 or num_steps < 1:
        return []
    cost_per_point = FORWARD_SHARE * subset_units / max(1, train_units)
    affordable = math.floor(max_cost / cost_per_point) if cost_per_point > 0 else points
    n = max(1, min(points, affordable, num_steps))
    if n == 1:
        return [num_steps]
    steps = np.unique(np.round(np.geomspace(1, num_steps, n)).astype(int))
    return [int(s) for s in steps]


def curve_point(step: int, units_per_step: int, heldout_loss: float,
                train_loss: float) -> dict[str, float | int]:
    values = (int(step), int(step) * int(units_per_step), float(heldout_loss), float(train_loss))
    return dict(zip(LOSS_CURVE_POINT_FIELDS, values, strict=True))
