"""The built-in byte corpus as a DataSource: random training windows and a fixed held-out set.

Training batches are a pure function of (seed, step): step k of a run draws its `batch_size`
window starts from `numpy.random.default_rng([seed, k])`. Each window holds context_length + 1
bytes: inputs are the first T, targets the last T (next-token prediction), so D counts tokens
and one batch row holds T of them.

The held-out set is the same for every run of a study (it depends on the corpus and the context
length only): windows spread evenly over the held-out split, so it samples every source of the
corpus, never overlapping training text (`flops_fit.data.corpus.split_corpus`).
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from flops_fit.data.corpus import CorpusSplit

log = logging.getLogger(__name__)


class DataError(ValueError):
    """The data cannot feed this run (too small, or too many epochs)."""


def check_epochs(
    num_units: int, train_units: int | None, max_epochs: float | None, run_name: str = "run",
    unit: str = "tokens",
) -> float | None:
    """Epochs of the training set a run of `num_units` sees (None for a generator that never
    repeats); warns when data repeats and raises DataError above `max_epochs` (None: no limit)."""
    if train_units is None:
        return None
    if train_units <= 0:
        raise DataError("the training set is empty")
    epochs = num_units / train_units
    if max_epochs is not None and epochs > max_epochs:
        raise DataError(
            f"{run_name} needs {num_units} training {unit} = {epochs:.2f} epochs of the "
            f"{train_units}-{unit} training set, above params:planning.max_epochs "
            f"({max_epochs:g}); use more data or a smaller budget"
        )
    if epochs > 1:
        log.warning("%s repeats training data: %d %s = %.2f epochs of the training set",
                    run_name, num_units, unit, epochs)
    return epochs


def heldout_windows(heldout: np.ndarray, context_length: int, heldout_tokens: int) -> np.ndarray:
    """(n, context_length + 1) windows spread evenly over the held-out split, non-overlapping,
    with n = ceil(heldout_tokens / context_length) predicted-token rows."""
    window = context_length + 1
    n = max(1, math.ceil(heldout_tokens / context_length))
    available = len(heldout) // window
    if available < n:
        raise DataError(
            f"the held-out split has {len(heldout)} tokens: room for {available} windows of "
            f"{window}, but params:torch_backend.eval.heldout_tokens = {heldout_tokens} needs {n}; "
            "lower heldout_tokens or raise params:corpus.heldout_fraction"
        )
    # Non-overlapping slots of `window` tokens; pick n of them evenly spaced.
    slots = np.linspace(0, available - 1, n).round().astype(np.int64)
    idx = slots[:, None] * window + np.arange(window)[None, :]
    return np.asarray(heldout, dtype=np.uint8)[idx]


@dataclass
class ByteWindows:
    """Next-token windows of `context_length + 1` bytes from a train / held-out split."""

    split: CorpusSplit
    context_length: int
    heldout_tokens: int
    unit: str = "tokens"
    default_loss: str = "flops_fit.nn.losses:next_token_cross_entropy"
    _cache: dict[str, Any] = field(default_factory=dict, repr=False, compare=False)

    def __post_init__(self) -> None:
        window = self.context_length + 1
        if len(self.split.train) < window:
            raise DataError(f"the training split has {len(self.split.train)} tokens, fewer "
                            f"than one window of {window}")
        # Fails here, at the start, when the held-out split is too small.
        heldout_windows(self.split.heldout, self.context_length, self.heldout_tokens)

    @property
    def units_per_example(self) -> int:
        return self.context_length

    @property
    def train_units(self) -> int:
        return int(self.split.train.size)

    def starts(self, step: int, batch_size: int, seed: int) -> np.ndarray:
        num_starts = len(self.split.train) - self.context_length
        rng = np.random.default_rng([int(seed), int(step)])
        return rng.integers(0, num_starts, size=batch_size)

    def train_batch(self, step: int, batch_size: int, seed: int) -> dict[str, Any]:
        import torch

        if "tokens" not in self._cache:
            self._cache["tokens"] = torch.from_numpy(
                np.ascontiguousarray(self.split.train, dtype=np.uint8))
            self._cache["offsets"] = torch.arange(self.context_length + 1)
        starts = torch.from_numpy(self.starts(step, batch_size, seed))
        windows = self._cache["tokens"][starts[:, None] + self._cache["offsets"]].long()
        return {"inputs": windows[:, :-1], "targets": windows[:, 1:]}

    def heldout(self) -> dict[str, Any]:
        import torch

        if "heldout" not in self._cache:
            windows = torch.from_numpy(heldout_windows(
                self.split.heldout, self.context_length, self.heldout_tokens)).long()
            self._cache["heldout"] = {"inputs": windows[:, :-1], "targets": windows[:, 1:]}
        return self._cache["heldout"]

    def __getstate__(self) -> dict[str, Any]:
        state = dict(self.__dict__)
        state["_cache"] = {}  # tensors are rebuilt from the split where the source is used
        return state
