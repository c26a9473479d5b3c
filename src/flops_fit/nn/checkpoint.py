"""Crash-safe checkpoints of one training run.

A checkpoint holds the model, the optimiser, the step to resume at, the smoothed training loss
and the RNG states, plus a `run_key` describing the run. It is written atomically (a temporary
file in the same folder, fsync, then `os.replace`), so a crash mid-write leaves the previous
checkpoint intact.

Whatever else sits at a checkpoint path (a truncated or unreadable file, random bytes, another
object, the checkpoint of another run key or of weights that do not fit the model) is moved
aside to `<name>.corrupt-<time>` or `<name>.other-run-<time>` with one warning, and the run
starts from step 0: a bad file must never fail a run on every attempt, and is kept for a look.
"""

from __future__ import annotations

import logging
import math
import os
import tempfile
import time
import warnings
from pathlib import Path
from typing import Any

import torch

log = logging.getLogger(__name__)

CHECKPOINT_NAME = "checkpoint.pt"
FIELDS = ("run_key", "step", "ema", "ema_steps", "model", "optimizer", "cpu_rng")


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


def load_checkpoint(path: Path, run_key: dict[str, Any],
                    model: torch.nn.Module | None = None) -> dict[str, Any] | None:
    """The checkpoint at `path` if it is one of this run (and its weights fit `model`, when
    given), else None; anything else found there is moved aside with one warning."""
    path = Path(path)
    if not os.path.lexists(path):
        return None
    state: Any = None
    if not path.is_file():
        problem, tag = "it is not a file", "corrupt"
    else:
        try:
            # Only tensors and plain containers are unpickled (never code). torch's message on
            # failure suggests loading with weights_only=False, which would run whatever code
            # the file holds: it is never shown; its warnings about pickle protocols neither.
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                state = torch.load(path, map_location="cpu", weights_only=True)
        except Exception as exc:
            problem = (f"it cannot be read as a checkpoint ({type(exc).__name__}): it is "
                       "truncated, corrupt or was not written by flops-fit")
            tag = "corrupt"
        else:
            problem, tag = _not_of_this_run(state, run_key, model)
    if problem is None:
        return state
    moved = _move_aside(path, tag)
    log.warning("ignoring the checkpoint at %s: %s; %s, and this run starts from step 0",
                path, problem, moved)
    return None


def _not_of_this_run(state: Any, run_key: dict[str, Any],
                     model: torch.nn.Module | None) -> tuple[str | None, str]:
    """(what is wrong, the tag to move it aside with); (None, "") for a checkpoint to resume."""
    if not isinstance(state, dict):
        return f"it holds a {type(state).__name__}, not a checkpoint", "corrupt"
    missing = [k for k in FIELDS if k not in state]
    if missing:
        return f"it holds a dict without {', '.join(missing)}, not a checkpoint", "corrupt"
    key = state["run_key"]
    if key != run_key:
        if not isinstance(key, dict):
            return f"its run_key is a {type(key).__name__}, not a dict", "corrupt"
        differ = sorted(k for k in set(key) | set(run_key) if key.get(k) != run_key.get(k))
        return (f"it belongs to another run (a different {', '.join(map(str, differ))})",
                "other-run")
    step, ema = state["step"], state["ema"]
    steps = run_key.get("num_steps")
    if (isinstance(step, bool) or not isinstance(step, int) or step < 0
            or (isinstance(steps, int) and step > steps)):
        return f"its step {step!r} is not a step of this run", "corrupt"
    if not isinstance(ema, float | int) or not math.isfinite(ema):
        return f"its smoothed training loss {ema!r} is not a finite number", "corrupt"
    for name in ("model", "optimizer"):
        if not isinstance(state[name], dict):
            return f"its {name} state is a {type(state[name]).__name__}", "corrupt"
    if not isinstance(state["cpu_rng"], torch.Tensor):
        return f"its RNG state is a {type(state['cpu_rng']).__name__}", "corrupt"
    if model is not None:
        have = {k: tuple(v.shape) for k, v in model.state_dict().items()}
        saved = {k: tuple(v.shape) if isinstance(v, torch.Tensor) else None
                 for k, v in state["model"].items()}
        if have != saved:
            wrong = sorted(set(have) ^ set(saved) | {k for k in have if saved.get(k) != have[k]})
            return (f"its weights do not fit the model ({len(wrong)} tensor(s) missing, extra "
                    f"or of another shape, e.g. {wrong[0]!r})"), "other-run"
    return None, ""


def _move_aside(path: Path, tag: str) -> str:
    """Rename `path` to `<name>.<tag>-<UTC time>` beside it; says what was done."""
    stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
    target = path.with_name(f"{path.name}.{tag}-{stamp}")
    n = 1
    while os.path.lexists(target):
        target = path.with_name(f"{path.name}.{tag}-{stamp}-{n}")
        n += 1
    try:
        os.rename(path, target)
    except OSError as exc:
        return (f"it could not be moved aside ({type(exc).__name__}: {exc.strerror}) and will "
                "be replaced by this run's first checkpoint")
    return f"moved it to {target.name}"


def remove_checkpoint(path: Path) -> None:
    path = Path(path)
    path.unlink(missing_ok=True)
    for stale in path.parent.glob(path.name + ".*.tmp"):
        stale.unlink(missing_ok=True)
