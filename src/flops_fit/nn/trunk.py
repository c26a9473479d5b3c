"""A trunk's checkpoints: how a branch gets the state of its trunk at its branch point.

A trunk (`flops_fit.planning.trunks`) is trained in segments, one per branch, in order of their
branch points: the branch at step t loads the trunk's latest state at or before t, trains it at
the peak rate up to t, saves it there, and cools down from it. The trunk's folder holds

- `branch-<step>.pt`: its state at every branch point reached (kept: a failed branch retries
  from it, and a later round's longer branch extends the trunk from the last one);
- `latest.pt`: its state mid-segment, written on the trainer's checkpoint schedule and on
  SIGTERM, so a killed trunk resumes where it was.

Every file holds the trunk's key (the model, batch size, seed, warm-up, optimiser and u-μP
settings): a file of another trunk is moved aside by `flops_fit.nn.checkpoint`, never resumed.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from flops_fit.nn import checkpoint as ckpt

log = logging.getLogger(__name__)

LATEST = "latest.pt"
_BRANCH = re.compile(r"^branch-(\d+)\.pt$")


@dataclass(frozen=True)
class TrunkBranch:
    """Where a branch leaves its trunk, and where the trunk keeps its checkpoints."""

    directory: Path
    trunk_id: str
    branch_step: int  # the branch's first cooldown step: the trunk is needed up to here
    warmup_steps: int  # the trunk's warm-up, shared by all its branches
    trunk_steps: int  # the trunk's longest branch in the plan (its curve is spaced on it)
    # what the trunk was trained on beyond the run's own key: the data and the loss settings
    # (flops_fit.execution.settings), so a trunk of other data is never resumed
    trained_on: tuple[tuple[str, str], ...] = ()


def branch_file(directory: Path, step: int) -> Path:
    return Path(directory) / f"branch-{int(step):09d}.pt"


def trunk_key(run_key: dict[str, Any], trunk: TrunkBranch) -> dict[str, Any]:
    """What a trunk checkpoint must match: the run's key without what only the branch decides
    (its name, length and cooldown), plus the trunk and its warm-up."""
    key = {k: v for k, v in run_key.items() if k not in ("name", "num_steps", "schedule")}
    return {**key, "trunk": trunk.trunk_id, "warmup_steps": int(trunk.warmup_steps),
            "trained_on": dict(trunk.trained_on)}


def _branch_points(directory: Path) -> list[int]:
    if not directory.is_dir():
        return []
    found = (_BRANCH.match(p.name) for p in directory.iterdir())
    return sorted((int(m.group(1)) for m in found if m), reverse=True)


def trunk_state(trunk: TrunkBranch, key: dict[str, Any], model: Any) -> dict[str, Any] | None:
    """The trunk's furthest saved state at or before the branch point, or None (step 0).

    `latest.pt` past the branch point (the trunk went on for a longer branch) is left alone;
    the branch-point files are tried from the furthest down."""
    directory = Path(trunk.directory)
    best = None
    latest = directory / LATEST
    if latest.exists():
        state = ckpt.load_checkpoint(latest, key, model)
        if state is not None and state["step"] <= trunk.branch_step:
            best = state
    for step in _branch_points(directory):
        if step > trunk.branch_step or (best is not None and step <= best["step"]):
            continue
        state = ckpt.load_checkpoint(branch_file(directory, step), key, model)
        if state is not None:
            best = state
            break
    return best


def save_branch_point(trainer: Any, trunk: TrunkBranch, key: dict[str, Any]) -> None:
    """The trunk at the branch point, for the next branch and any retry of this one."""
    trainer.save(branch_file(trunk.directory, trunk.branch_step), key)
    log.debug("%s: trunk %s saved at step %d", trainer.name, trunk.trunk_id, trunk.branch_step)
