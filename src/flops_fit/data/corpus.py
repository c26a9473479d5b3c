"""The training corpus: byte tokenisation and a deterministic train / held-out split.

Tokens are UTF-8 bytes (vocabulary 256): at the model sizes that fit a CPU a BPE vocabulary
would cost more parameters and FLOPs in the embedding and head than the model itself.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from flops_fit.parameters.corpus import CorpusConfig

BYTE_VOCAB_SIZE = 256


class CorpusError(ValueError):
    """The corpus is empty or too small for the split."""


@dataclass(frozen=True)
class CorpusSplit:
    train: np.ndarray
    heldout: np.ndarray


def encode_bytes(text: str | bytes) -> np.ndarray:
    data = text.encode("utf-8") if isinstance(text, str) else bytes(text)
    return np.frombuffer(data, dtype=np.uint8).copy()


def split_corpus(tokens: np.ndarray, heldout_fraction: float, block_size: int) -> CorpusSplit:
    """Cut the corpus into blocks and send every k-th block to the held-out set.

    Interleaving (rather than holding out the tail) makes the held-out set sample every source
    of the corpus; blocks are contiguous and disjoint, so no held-out byte is ever trained on.
    `params:corpus` (flops_fit.parameters.corpus) bounds the fraction and the block size.
    """
    tokens = np.asarray(tokens, dtype=np.uint8)
    n_blocks = len(tokens) // block_size
    every = max(2, int(round(1.0 / heldout_fraction)))
    if n_blocks < every:
        raise CorpusError(
            f"corpus has {len(tokens)} bytes, too few for {every} blocks of {block_size} bytes; "
            "use a larger corpus or a smaller params:corpus.block_size"
        )
    usable = tokens[: n_blocks * block_size].reshape(n_blocks, block_size)
    is_heldout = (np.arange(n_blocks) % every) == every - 1
    return CorpusSplit(train=usable[~is_heldout].ravel(), heldout=usable[is_heldout].ravel())


def prepare_corpus(text: str | bytes, params: CorpusConfig | Mapping[str, Any]) -> CorpusSplit:
    if text is None or len(text) == 0:
        raise CorpusError("the corpus is empty: check the `corpus` entry of the catalog")
    cfg = CorpusConfig.from_params(params)  # tokenizer: bytes is the only choice
    return split_corpus(encode_bytes(text), cfg.heldout_fraction, cfg.block_size)


def corpus_summary(split: CorpusSplit) -> dict[str, Any]:
    return {
        "tokenizer": "bytes",
        "vocab_size": BYTE_VOCAB_SIZE,
        "train_tokens": int(split.train.size),
        "heldout_tokens": int(split.heldout.size),
    }
