"""Crash-safe checkpoints of one training run.

A checkpoint holds the model, the optimiser, the step to resume at, the smoothed training loss
and the RNG states, plus a `run_key` describing the run. It is written atomically (a temporary
file in the same folder, fsync, then `os.replace`), so a crash mid-write leaves the previous
checkpoint intact. A checkpoint whose `run_key` differs from the current run's (another shape,
seed, step count or hyperparameters) is ignored.
"""

from __future__ import annotations

import logging
import os
import tempfile
from pathlib import Path
from typing import Any

import torch

log = logging.getLogger(__name__)

CHECKPOINT_NAME = "checkpoint.pt"


def checkpoint_path(directory: Path | str) -> Path:
    return Path(directory) / CHECKPOINT_NAME


def save_checkpoint(path: Path, state: dict[str, Any]) -> None:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=path.name + ".", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as fh:
            torch.save(state, fh)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def load_checkpoint(path: Path, run_key: dict[str, Any]) -> dict[str, Any] | None:
    """The checkpoint at `path` if it exists and belongs to this run, else None."""
    path = Path(path)
    if not path.is_file():
        return None
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # a corrupt file: start over rather than fail the run
        log.warning("ignoring unreadable checkpoint %s: %s", path, exc)
        return None
    if state.get("run_key") != run_key:
        log.warning("ignoring checkpoint %s: it belongs to a different run configuration", path)
        return None
    return state


def remove_checkpoint(path: Path) -> None:
    path = Path(path)
    path.unlink(missing_ok=True)
    for stale in path.parent.glob(path.name + ".*.tmp"):
        stale.unlink(missing_ok=True)
