"""Batches for one run: random training windows and a fixed held-out evaluation set.

Training batches are a pure function of (seed, step): step k of a run draws its `batch_size`
window starts from `numpy.random.default_rng([seed, k])`. A run resumed from a checkpoint at
step k therefore sees exactly the batches an uninterrupted run would, with no sampler state to
save. Each window holds context_length + 1 bytes: inputs are the first T, targets the last T.

The held-out set is the same for every run of a study (it depends on the corpus and the
context length only): `n` windows spread evenly over the held-out split, so it samples every
source of the corpus, never overlapping training text (`flops_fit.corpus.split_corpus`).
"""

from __future__ import annotations

import logging
import math

import numpy as np
import torch

from flops_fit.corpus import CorpusSplit

log = logging.getLogger(__name__)


class DataError(ValueError):
    """The corpus cannot feed this run (too small, or too many epochs)."""


def check_epochs(
    num_tokens: int, train_tokens: int, max_epochs: float | None, run_name: str = "run"
) -> float:
    """Epochs of the training split a run of `num_tokens` sees; warns when data repeats and
    raises DataError above `max_epochs` (None: no limit)."""
    if train_tokens <= 0:
        raise DataError("the training split of the corpus is empty")
    epochs = num_tokens / train_tokens
    if max_epochs is not None and epochs > max_epochs:
        raise DataError(
            f"{run_name} needs {num_tokens} training tokens = {epochs:.2f} epochs of the "
            f"{train_tokens}-token training corpus, above params:planning.max_epochs "
            f"({max_epochs:g}); use a larger corpus or a smaller budget"
        )
    if epochs > 1:
        log.warning(
            "%s repeats training data: %d tokens = %.2f epochs of the training corpus",
            run_name,
            num_tokens,
            epochs,
        )
    return epochs


class TrainBatches:
    """Random windows of `context_length + 1` tokens from the training split."""

    def __init__(
        self,
        train: np.ndarray,
        context_length: int,
        batch_size: int,
        seed: int,
        device: torch.device,
    ):
        window = context_length + 1
        if len(train) < window:
            raise DataError(
                f"the training split has {len(train)} tokens, fewer than one window of {window}"
            )
        self.tokens = torch.from_numpy(np.ascontiguousarray(train, dtype=np.uint8)).to(device)
        self.offsets = torch.arange(window, device=device)
        self.num_starts = len(train) - window + 1
        self.batch_size, self.seed, self.device = batch_size, int(seed), device

    def starts(self, step: int) -> np.ndarray:
        rng = np.random.default_rng([self.seed, int(step)])
        return rng.integers(0, self.num_starts, size=self.batch_size)

    def batch(self, step: int) -> tuple[torch.Tensor, torch.Tensor]:
        starts = torch.from_numpy(self.starts(step)).to(self.device)
        windows = self.tokens[starts[:, None] + self.offsets].long()
        return windows[:, :-1], windows[:, 1:]


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


def corpus_tokens(split: CorpusSplit) -> tuple[int, int]:
    return int(split.train.size), int(split.heldout.size)
