"""The data contract: what the training loop reads, and the adapters that turn what a user brings
(a catalog entry or a factory named in parameters) into it.

A `DataSource` gives batches as dicts of CPU tensors with at least `inputs` and `targets` (dim 0:
the example); the model is called as `model(batch["inputs"])`. `train_batch(step, batch_size,
seed)` is a pure function of its arguments, so a run resumed at step k sees exactly the batches
an uninterrupted run would, with no sampler state in the checkpoint. `heldout()` is the fixed
evaluation set, the same for every run of a study. A source is pickled to Dask workers.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

import numpy as np

from flops_fit.plugins.imports import PluginError

REQUIRED_KEYS = ("inputs", "targets")
NEXT_TOKEN_LOSS = "flops_fit.nn.losses:next_token_cross_entropy"
CLASSIFICATION_LOSS = "flops_fit.nn.losses:classification_cross_entropy"


@runtime_checkable
class DataSource(Protocol):
    unit: str  # what D counts: "tokens" for language models, "examples" for classifiers
    units_per_example: int  # units in one batch row (T for a language model, 1 for a classifier)
    train_units: int | None  # units in the training set; None: fresh examples every step
    default_loss: str  # import path of the loss used when params:training.loss is null

    def train_batch(self, step: int, batch_size: int, seed: int) -> dict[str, Any]: ...

    def heldout(self) -> dict[str, Any]: ...


def check_batch(batch: Any, what: str) -> None:
    """A batch is a mapping with `inputs` and `targets` tensors of equal length; `what` names
    where it came from (the parameter or catalog entry and the call)."""
    import torch

    if not isinstance(batch, Mapping):
        raise PluginError(f"{what} is a {type(batch).__name__}, not a dict of "
                          "tensors with keys 'inputs' and 'targets'")
    missing = [k for k in REQUIRED_KEYS if k not in batch]
    if missing:
        raise PluginError(f"{what} has keys {sorted(map(str, batch))}, "
                          f"missing {missing} (a batch needs 'inputs' and 'targets')")
    for name, value in batch.items():
        if not isinstance(value, torch.Tensor):
            raise PluginError(f"{what}[{name!r}] is a {type(value).__name__}, "
                              "not a torch.Tensor")
    scalars = [name for name, value in batch.items() if not value.dim()]
    if scalars:
        raise PluginError(f"{what}[{scalars[0]!r}] is a 0-dim tensor; dim 0 of every tensor "
                          "must index the examples")
    rows = {name: int(value.shape[0]) for name, value in batch.items()}
    if not any(rows.values()):
        raise PluginError(f"{what} is empty: its tensors hold 0 examples; it needs at least one")
    if len(set(rows.values())) != 1 or 0 in rows.values():
        raise PluginError(f"{what} tensors disagree on the number of examples "
                          f"(dim 0): {rows}")


def _as_arrays(value: Any, where: str) -> dict[str, np.ndarray]:
    if not isinstance(value, Mapping):
        raise PluginError(f"{where} must be a mapping of arrays with 'inputs' and 'targets', "
                          f"got {type(value).__name__}")
    arrays = {str(k): np.asarray(v) for k, v in value.items()}
    missing = [k for k in REQUIRED_KEYS if k not in arrays]
    if missing:
        raise PluginError(f"{where} has keys {sorted(arrays)}, missing {missing}")
    lengths = {k: (a.shape[0] if a.ndim else 0) for k, a in arrays.items()}
    if not any(lengths.values()) and all(a.ndim for a in arrays.values()):
        raise PluginError(f"{where} is empty: its arrays hold 0 examples; it needs at least one")
    if len(set(lengths.values())) != 1 or 0 in lengths.values():
        raise PluginError(f"{where}: arrays disagree on the number of examples: {lengths}")
    return arrays


def _tensor(array: np.ndarray):
    import torch

    tensor = torch.from_numpy(np.ascontiguousarray(array))
    # Integer targets become int64 (what cross entropy takes); floats stay as given.
    return tensor.long() if not tensor.is_floating_point() else tensor


@dataclass
class TensorSource:
    """A finite data set held in memory: `train` and `heldout` map names to arrays.

    Each epoch is a fresh permutation of the training examples (from `default_rng([seed,
    epoch])`), and step k takes positions k·B .. (k+1)·B of the concatenated epochs, so no
    example repeats before every other has been seen once.
    """

    train: dict[str, np.ndarray]
    heldout_arrays: dict[str, np.ndarray]
    unit: str = "examples"
    default_loss: str = CLASSIFICATION_LOSS
    _heldout: dict[str, Any] | None = field(default=None, repr=False, compare=False)

    def __post_init__(self) -> None:
        self.train = _as_arrays(self.train, "the training set")
        self.heldout_arrays = _as_arrays(self.heldout_arrays, "the held-out set")
        self.num_examples = int(self.train["inputs"].shape[0])
        self._perm_key: tuple[int, int] | None = None
        self._perm: np.ndarray | None = None
        if self.unit == "tokens" and self.default_loss == CLASSIFICATION_LOSS:
            self.default_loss = NEXT_TOKEN_LOSS
        targets = self.train["targets"]
        # A classifier's target is one label per example; a sequence model's is one per token.
        self.units_per_example = 1 if self.unit != "tokens" else int(np.prod(targets.shape[1:]))

    @property
    def train_units(self) -> int:
        return self.num_examples * self.units_per_example

    def indices(self, step: int, batch_size: int, seed: int) -> np.ndarray:
        n = self.num_examples
        start = int(step) * int(batch_size)
        out = np.empty(batch_size, dtype=np.int64)
        filled = 0
        while filled < batch_size:
            epoch, offset = divmod(start + filled, n)
            perm = self._permutation(int(seed), epoch)
            take = min(batch_size - filled, n - offset)
            out[filled:filled + take] = perm[offset:offset + take]
            filled += take
        return out

    def _permutation(self, seed: int, epoch: int) -> np.ndarray:
        # One permutation per (seed, epoch), kept for the next steps of the same epoch.
        key = (seed, epoch)
        if self._perm_key != key:
            self._perm = np.random.default_rng([seed, epoch]).permutation(self.num_examples)
            self._perm_key = key
        return self._perm

    def train_batch(self, step: int, batch_size: int, seed: int) -> dict[str, Any]:
        idx = self.indices(step, batch_size, seed)
        return {k: _tensor(a[idx]) for k, a in self.train.items()}

    def heldout(self) -> dict[str, Any]:
        if self._heldout is None:
            self._heldout = {k: _tensor(a) for k, a in self.heldout_arrays.items()}
        return self._heldout

    def __getstate__(self) -> dict[str, Any]:
        state = dict(self.__dict__)
        state["_heldout"] = None  # rebuilt from the arrays where it is used
        state["_perm_key"] = state["_perm"] = None
        return state


def as_source(value: Any, where: str, unit: str | None = None) -> DataSource:
    """A DataSource from what a catalog entry or data factory returned.

    Accepts a DataSource, or a mapping {"train": {...}, "heldout": {...}} of arrays.
    """
    if isinstance(value, DataSource):
        return value
    if isinstance(value, Mapping) and {"train", "heldout"} <= set(value):
        try:
            return TensorSource(value["train"], value["heldout"], unit=unit or "examples")
        except PluginError as exc:
            raise PluginError(f"{where}: {exc}") from exc
    raise PluginError(
        f"{where} gave a {type(value).__name__}; it must be a DataSource (unit, "
        "units_per_example, train_units, default_loss, train_batch(step, batch_size, seed), "
        "heldout()) or a mapping {'train': {'inputs': ..., 'targets': ...}, 'heldout': {...}}"
    )
