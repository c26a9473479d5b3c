"""The data: a finite MNIST-1D training set and a fixed held-out set, generated offline.

`mnist1d.data.make_dataset` builds the examples from the package's ten digit templates (no
download; `get_dataset` would fetch a pickle from GitHub, so it is not used). It takes about a
millisecond per example, so the sets stay modest and are generated once per process: flops-fit
resolves the data in several planning nodes and in training, and each call with the same
arguments returns the cached arrays.
"""

from __future__ import annotations

import random
from functools import lru_cache

import numpy as np

NUM_CLASSES = 10  # make_dataset draws num_samples // 10 examples of each digit


@lru_cache(maxsize=4)
def make_data(num_train: int, num_heldout: int, seed: int = 0) -> dict[str, dict[str, np.ndarray]]:
    """{"train": {"inputs": (num_train, 40) float32, "targets": (num_train,) int64},
    "heldout": {...num_heldout rows}}, a pure function of its arguments."""
    from mnist1d.data import get_dataset_args, make_dataset

    if num_train < 1 or num_heldout < 1:
        raise ValueError(f"num_train ({num_train}) and num_heldout ({num_heldout}) must be >= 1")
    total = num_train + num_heldout
    args = get_dataset_args()
    args.num_samples = -(-total // NUM_CLASSES) * NUM_CLASSES  # whole classes, at least total
    args.seed = int(seed)
    args.train_split = 1.0  # split here instead, to the exact sizes asked for
    # make_dataset reseeds Python's and NumPy's global generators; put them back afterwards so
    # generating data has no side effect on anything else in the process.
    py_state, np_state = random.getstate(), np.random.get_state()
    try:
        generated = make_dataset(args)
    finally:
        random.setstate(py_state)
        np.random.set_state(np_state)
    inputs = generated["x"].astype(np.float32)  # already shuffled, centred and unit-variance
    targets = generated["y"].astype(np.int64)
    return {
        "train": {"inputs": inputs[:num_train], "targets": targets[:num_train]},
        "heldout": {"inputs": inputs[num_train:total], "targets": targets[num_train:total]},
    }
