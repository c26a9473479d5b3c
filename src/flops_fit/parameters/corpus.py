"""`params:corpus`: how the training text becomes byte tokens and a train / held-out split."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from flops_fit.parameters.base import Number, PositiveInt, Section


class CorpusConfig(Section):
    SECTION = "corpus"

    tokenizer: Literal["bytes"] = "bytes"  # UTF-8 bytes, vocabulary 256
    heldout_fraction: Number = Field(0.02, gt=0, lt=0.5)
    block_size: PositiveInt = 4096
