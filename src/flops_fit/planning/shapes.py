"""The project's GPT family: model shapes and their exact parameter counts.

One function, `non_embedding_params`, is THE parameter count of the project. The planning
pipeline records it as N (the count that enters C = 6·N·D), and the model built for training
must have exactly this many non-embedding parameters (tests/test_model_params.py proves it).

N counts every weight inside the transformer blocks plus the final norm: attention
(W_q, W_k, W_v, W_o: 4·d²), the SwiGLU feed-forward (gate, up, down: 3·d·d_ff) and the RMSNorm
gains (2·d per block, d for the final norm). It excludes the token embedding and the untied
output head (vocab·d each), following Kaplan et al. (2020) and Hoffmann et al. (2022): embedding
parameters do not follow the same scaling as the rest.
"""

from __future__ import annotations

import bisect
import math
from dataclasses import asdict, dataclass, fields
from functools import lru_cache
from typing import Any

from pydantic import BaseModel, ConfigDict, model_validator

from flops_fit.parameters.base import PositiveInt, PositiveNumber


@dataclass(frozen=True, order=True)
class ModelShape:
    d_model: int
    num_layers: int
    num_heads: int
    d_ff: int
    vocab_size: int
    context_length: int

    def __post_init__(self) -> None:
        for f in fields(self):
            value = getattr(self, f.name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ValueError(f"ModelShape.{f.name} must be a positive integer, got {value!r}")
        if self.d_model % self.num_heads:
            raise ValueError(
                f"ModelShape: d_model={self.d_model} is not divisible by num_heads={self.num_heads}"
            )
        if self.head_dim % 2:
            raise ValueError(
                f"ModelShape: head_dim={self.head_dim} must be even for rotary embeddings"
            )

    @property
    def head_dim(self) -> int:
        return self.d_model // self.num_heads

    def to_dict(self) -> dict[str, int]:
        return asdict(self)

    @classmethod
    def from_record(cls, record: dict[str, Any]) -> ModelShape:
        """Build a shape from a plan/result record (extra keys are ignored)."""
        missing = [f.name for f in fields(cls) if f.name not in record]
        if missing:
            raise KeyError(f"record is missing model-shape field(s) {missing}")
        return cls(**{f.name: int(record[f.name]) for f in fields(cls)})


SHAPE_FIELDS = tuple(f.name for f in fields(ModelShape))


def non_embedding_params(shape: ModelShape) -> int:
    """N: every parameter except the token embedding and the output head."""
    d, f = shape.d_model, shape.d_ff
    per_block = 4 * d * d + 3 * d * f + 2 * d
    return shape.num_layers * per_block + d


def embedding_params(shape: ModelShape) -> int:
    """Token embedding plus the untied output head."""
    return 2 * shape.vocab_size * shape.d_model


def total_params(shape: ModelShape) -> int:
    return non_embedding_params(shape) + embedding_params(shape)


class ShapeFamily(BaseModel):
    """Rules that turn a width into a full shape; depth follows width by an aspect ratio.

    This is `params:planning.model_family`; defaults equal conf/base/parameters_planning.yml.
    """

    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)

    vocab_size: PositiveInt = 256
    context_length: PositiveInt = 128
    head_dim: PositiveInt = 32
    ffn_multiplier: PositiveNumber = 8 / 3  # SwiGLU hidden width = 8/3 d_model, rounded up
    ffn_multiple: PositiveInt = 16
    width_multiple: PositiveInt = 8
    min_width: PositiveInt = 8
    max_width: PositiveInt = 1024
    aspect_ratio: PositiveNumber = 32.0  # preferred d_model / num_layers
    max_layers: PositiveInt = 32

    @model_validator(mode="after")
    def _widths(self) -> ShapeFamily:
        if self.min_width > self.max_width:
            raise ValueError(f"min_width ({self.min_width}) is above max_width ({self.max_width})")
        if self.min_width % 2 or self.width_multiple % 2:
            raise ValueError("min_width and width_multiple must be even")
        return self

    def num_heads(self, d_model: int) -> int:
        heads = max(1, d_model // self.head_dim)
        while heads > 1 and (d_model % heads or (d_model // heads) % 2):
            heads -= 1
        return heads

    def d_ff(self, d_model: int) -> int:
        raw = self.ffn_multiplier * d_model
        return max(self.ffn_multiple, int(math.ceil(raw / self.ffn_multiple)) * self.ffn_multiple)

    def shape(self, d_model: int, num_layers: int) -> ModelShape:
        return ModelShape(
            d_model=d_model,
            num_layers=num_layers,
            num_heads=self.num_heads(d_model),
            d_ff=self.d_ff(d_model),
            vocab_size=self.vocab_size,
            context_length=self.context_length,
        )


@lru_cache(maxsize=32)
def shape_ladder(family: ShapeFamily) -> tuple[tuple[int, ...], tuple[ModelShape, ...]]:
    """All shapes of the family, sorted by exact N, one shape per distinct N.

    For each width the depth is the aspect-ratio depth rounded down and up; where two shapes have
    the same N the one closer to the preferred aspect ratio wins. Choosing the nearest rung of a
    sorted ladder makes exact N monotone in the target size.
    """
    best: dict[int, tuple[float, ModelShape]] = {}
    start = max(family.min_width, family.width_multiple)
    start -= start % family.width_multiple
    start = max(start, family.min_width)
    for d in range(start, family.max_width + 1, family.width_multiple):
        ideal = d / family.aspect_ratio
        for depth in {math.floor(ideal), math.ceil(ideal)}:
            depth = min(max(depth, 1), family.max_layers)
            shape = family.shape(d, depth)
            n = non_embedding_params(shape)
            penalty = abs(math.log((d / depth) / family.aspect_ratio))
            if n not in best or penalty < best[n][0]:
                best[n] = (penalty, shape)
    counts = tuple(sorted(best))
    return counts, tuple(best[n][1] for n in counts)


def shape_for_target(target_params: float, family: ShapeFamily) -> ModelShape:
    """The family's shape whose exact N is nearest (in log space) to `target_params`."""
    if not (target_params > 0 and math.isfinite(target_params)):
        raise ValueError(f"target model size must be positive and finite, got {target_params!r}")
    counts, shapes = shape_ladder(family)
    i = bisect.bisect_left(counts, target_params)
    if i == 0:
        return shapes[0]
    if i == len(counts):
        return shapes[-1]
    lower, upper = counts[i - 1], counts[i]
    log_t = math.log(target_params)
    return shapes[i - 1] if log_t - math.log(lower) <= math.log(upper) - log_t else shapes[i]
