"""Tiny plugins for the plugin-contract tests, named by import path as a user's would be
(`tests.plugins.toy_plugins:mlp`). Each bad one breaks exactly one contract.

Every kwarg has a default: `kedro run --params` cannot pass a nested `training.model.kwargs`.
"""

from __future__ import annotations

import os
import time

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

IN_FEATURES = 8
NUM_CLASSES = 3


# ---- models -------------------------------------------------------------------------------


class MLP(nn.Module):
    """A width-scaled classifier with no embedding: every parameter counts in N."""

    def __init__(self, width: int, depth: int = 2, in_features: int = IN_FEATURES,
                 num_classes: int = NUM_CLASSES):
        super().__init__()
        dims = [in_features] + [width] * depth
        pairs = zip(dims[:-1], dims[1:], strict=True)
        self.hidden = nn.ModuleList(nn.Linear(a, b) for a, b in pairs)
        self.head = nn.Linear(width, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for layer in self.hidden:
            x = torch.relu(layer(x))
        return self.head(x)


def mlp_params(width: int, depth: int = 2, in_features: int = IN_FEATURES,
               num_classes: int = NUM_CLASSES) -> int:
    """N of `mlp(width, ...)`, by hand."""
    dims = [in_features] + [width] * depth + [num_classes]
    return sum(a * b + b for a, b in zip(dims[:-1], dims[1:], strict=True))


def mlp(width: int, depth: int = 2, in_features: int = IN_FEATURES,
        num_classes: int = NUM_CLASSES) -> MLP:
    return MLP(width, depth, in_features, num_classes)


MAX_WIDTH = 64


def mlp_up_to_64(width: int, depth: int = 2) -> MLP:
    """Fails for the larger planned sizes, as a real factory with a hard limit might."""
    if width > MAX_WIDTH:
        raise ValueError(f"width {width} is above the supported maximum {MAX_WIDTH}")
    return MLP(width, depth)


def fixed_size(width: int) -> MLP:
    """Takes a size parameter and ignores it: N never changes."""
    del width
    return MLP(16)


def shrinking(width: int) -> MLP:
    """N falls as `width` grows (hidden = 300 - width)."""
    return MLP(max(1, 300 - int(width)))


def not_a_module(width: int) -> dict:
    return {"width": width}


class WithEmbedding(nn.Module):
    """An embedding table (not counted in N) and a linear head (counted)."""

    def __init__(self, width: int, vocab: int = 50):
        super().__init__()
        self.embed = nn.Embedding(vocab, width)
        self.bag = nn.EmbeddingBag(vocab, width)
        self.proj = nn.Linear(width, NUM_CLASSES)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.proj(self.embed(x).mean(dim=1))


class WithNumParams(MLP):
    """Says its own N (as the built-in GPT does)."""

    def num_params(self) -> int:
        return 12345


def with_num_params(width: int) -> WithNumParams:
    return WithNumParams(width)


# ---- data ---------------------------------------------------------------------------------


def _split(rng: np.random.Generator, rows: int) -> dict[str, np.ndarray]:
    return {"inputs": rng.standard_normal((rows, IN_FEATURES)).astype(np.float32),
            "targets": rng.integers(0, NUM_CLASSES, rows)}


def arrays(n_train: int = 64, n_heldout: int = 16, seed: int = 0) -> dict:
    """What a user's data factory may return: a mapping of train and held-out arrays."""
    rng = np.random.default_rng(seed)
    return {"train": _split(rng, n_train), "heldout": _split(rng, n_heldout)}


class _Source:
    """A minimal DataSource of fresh random examples (no fixed training set)."""

    unit = "examples"
    units_per_example = 1
    train_units = None
    default_loss = "flops_fit.nn.losses:classification_cross_entropy"

    def train_batch(self, step: int, batch_size: int, seed: int) -> dict:
        g = torch.Generator().manual_seed(seed * 1_000_003 + step)
        return {"inputs": torch.randn(batch_size, IN_FEATURES, generator=g),
                "targets": torch.randint(0, NUM_CLASSES, (batch_size,), generator=g)}

    def heldout(self) -> dict:
        return self.train_batch(10**6, 8, 12345)


class _NoTargets(_Source):
    def train_batch(self, step: int, batch_size: int, seed: int) -> dict:
        batch = super().train_batch(step, batch_size, seed)
        return {"inputs": batch["inputs"], "labels": batch["targets"]}


class _Impure(_Source):
    def train_batch(self, step: int, batch_size: int, seed: int) -> dict:
        # The global RNG: two calls with the same arguments differ (a resumed run would not
        # see the batches of an uninterrupted one).
        return {"inputs": torch.randn(batch_size, IN_FEATURES),
                "targets": torch.randint(0, NUM_CLASSES, (batch_size,))}


class _Slow(_Source):
    """Fresh examples, each batch taking `delay` seconds: runs long enough to be stopped."""

    def __init__(self, delay: float):
        self.delay = delay

    def train_batch(self, step: int, batch_size: int, seed: int) -> dict:
        time.sleep(self.delay)
        return super().train_batch(step, batch_size, seed)


class _HangsOnce(_Source):
    """The first run to reach step `after` blocks for an hour (a stuck loader); later runs
    train. Which run hangs is decided by creating `marker` (exclusive), so one run in all
    processes (Dask workers included) hangs."""

    def __init__(self, marker: str, after: int = 2):
        self.marker, self.after = marker, after

    def train_batch(self, step: int, batch_size: int, seed: int) -> dict:
        if step == self.after:
            try:
                os.close(os.open(self.marker, os.O_CREAT | os.O_EXCL | os.O_WRONLY))
            except FileExistsError:
                pass
            else:
                time.sleep(3600)
        return super().train_batch(step, batch_size, seed)


def slow(delay: float = 0.005) -> _Slow:
    return _Slow(delay)


def hangs_once(marker: str, after: int = 2) -> _HangsOnce:
    return _HangsOnce(marker, after)


def fresh() -> _Source:
    return _Source()


def no_targets() -> _NoTargets:
    return _NoTargets()


def impure() -> _Impure:
    return _Impure()


# ---- losses -------------------------------------------------------------------------------


def vector_loss(outputs: torch.Tensor, batch: dict) -> torch.Tensor:
    """Forgot to reduce: one loss per example."""
    return F.cross_entropy(outputs, batch["targets"], reduction="none")


def nan_loss(outputs: torch.Tensor, batch: dict) -> torch.Tensor:
    return outputs.sum() * float("nan")


def float_loss(outputs: torch.Tensor, batch: dict) -> float:
    """A python float: no gradient reaches the model."""
    return float(F.cross_entropy(outputs, batch["targets"]).detach())


def sequence_loss(outputs: torch.Tensor, batch: dict) -> torch.Tensor:
    """Written for (B, T, V) sequence logits: cannot take a classifier's (B, K)."""
    return F.cross_entropy(outputs.transpose(1, 2), batch["targets"])


NOT_CALLABLE = 42


def constant_loss(outputs: torch.Tensor, batch: dict) -> torch.Tensor:
    """A finite scalar that does not depend on the model."""
    return torch.tensor(1.0)


def mse_loss(outputs: torch.Tensor, batch: dict) -> torch.Tensor:
    """Mean squared error of the outputs against one-hot targets: not a log-likelihood."""
    return F.mse_loss(outputs, F.one_hot(batch["targets"], outputs.shape[-1]).float())


mse_loss.unit = "mse"


def unitless_loss(outputs: torch.Tensor, batch: dict) -> torch.Tensor:
    """The same error, declaring no unit."""
    return mse_loss(outputs, batch)


def numeric_unit_loss(outputs: torch.Tensor, batch: dict) -> torch.Tensor:
    return mse_loss(outputs, batch)


numeric_unit_loss.unit = 2


def blank_unit_loss(outputs: torch.Tensor, batch: dict) -> torch.Tensor:
    return mse_loss(outputs, batch)


blank_unit_loss.unit = "  "


def broken_data() -> dict:
    raise OSError("the data folder is not mounted")


def a_list() -> list:
    return [1, 2, 3]


def arrays_without_targets() -> dict:
    data = arrays()
    return {split: {"inputs": part["inputs"]} for split, part in data.items()}


# ---- held-out data and losses the probe on held-out examples must catch --------------------


def nan_heldout() -> dict:
    """One NaN among the held-out inputs: every run's held-out loss would be NaN."""
    data = arrays()
    data["heldout"]["inputs"][3, 2] = np.nan
    return data


def narrow_heldout() -> dict:
    """Held-out inputs of 5 features where the training batches have 8."""
    data = arrays()
    data["heldout"]["inputs"] = data["heldout"]["inputs"][:, :5]
    return data


def empty_heldout() -> dict:
    data = arrays()
    data["heldout"] = {k: v[:0] for k, v in data["heldout"].items()}
    return data


def unknown_heldout_labels() -> dict:
    """Held-out labels the classifier has no output for (finite, well shaped)."""
    data = arrays()
    data["heldout"]["targets"] = data["heldout"]["targets"] + NUM_CLASSES
    return data


class _EmptyHeldout(_Source):
    def heldout(self) -> dict:
        return {k: v[:0] for k, v in super().heldout().items()}


def empty_heldout_source() -> _EmptyHeldout:
    return _EmptyHeldout()


def one_element_loss(outputs: torch.Tensor, batch: dict) -> torch.Tensor:
    """A mean kept as shape (1,), as `keepdim=True` or `torch.stack([...])` leave it."""
    return F.cross_entropy(outputs, batch["targets"]).reshape(1)


def integer_loss(outputs: torch.Tensor, batch: dict) -> torch.Tensor:
    """The number of errors: an integer tensor, with no gradient."""
    return (outputs.argmax(-1) != batch["targets"]).sum()


# ---- helpers for the tests ----------------------------------------------------------------

HERE = "tests.plugins.toy_plugins:"


def training_params(model: str = "mlp", data: str | None = "fresh", loss: str | None = None,
                    size: dict | None = None, kwargs: dict | None = None,
                    data_kwargs: dict | None = None, **extra) -> dict:
    """`params:training` naming the toy plugins of this module by their short names."""
    return {
        "backend": "torch",
        "executor": "sequential",
        "model": {"factory": HERE + model, "size_param": "width", "kwargs": kwargs or {},
                  "size": size or {"min": 1, "max": 256}},
        "data": {"factory": HERE + data if data else None, "kwargs": data_kwargs or {}},
        "loss": HERE + loss if loss else None,
        **extra,
    }


def make_study(**kw):
    """The Study planning and training build, from `training_params(**kw)`."""
    from flops_fit.parameters.training import TrainingConfig
    from flops_fit.plugins.study import build_study

    return build_study(None, TrainingConfig.from_params(training_params(**kw)))
