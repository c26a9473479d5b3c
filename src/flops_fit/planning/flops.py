"""Training compute per token: the one FLOP count used by planning, training and analysis.

`full` (default) counts every matmul FLOP of a training token, forward + backward = 3 × forward:
  - the non-embedding weight matmuls: 2 · (4·d² + 3·d·d_ff) per block,
  - attention over the context: 2 · 2 · T · d per block (QKᵀ and attention·V, the full context
    as in Kaplan et al. 2020 and Hoffmann et al. 2022 Appendix F),
  - the output head: 2 · d · vocab.
`6nd` is the classic C = 6·N·D. `measured` (any model; the default for plugin models) counts
the FLOPs of one forward + backward with torch's FlopCounterMode (`flops_fit.nn.flop_count`); for
the GPT it equals `full` exactly (tests/nn/test_flop_count.py). At the small widths that fit a CPU, attention and the head are
40-50% of the real cost, so 6·N·D understates compute and hides the U-shape of IsoFLOP curves;
at large widths the two agree.
"""

from __future__ import annotations

from typing import Any

from flops_fit.planning.shapes import ModelShape, non_embedding_params

FLOPS_FORMULAS = ("full", "6nd")  # the analytic counts of the built-in GPT
#: what params:planning.flops_formula may say: auto is full for the GPT, measured for a plugin
PLANNING_FORMULAS = ("auto", "full", "6nd", "measured")
BACKWARD_FACTOR = 2  # backward ≈ 2 × forward for matmuls (grad wrt inputs and wrt weights)
#: C = 6·N·D: 2 FLOPs per parameter per token forward, times (1 + BACKWARD_FACTOR)
FLOPS_PER_PARAM_TOKEN = 2 * (1 + BACKWARD_FACTOR)


def compute_6nd(model_size: Any, num_tokens: Any) -> Any:
    """C = 6·N·D (elementwise for arrays and Series)."""
    return FLOPS_PER_PARAM_TOKEN * model_size * num_tokens


def tokens_6nd(compute: Any, model_size: Any) -> Any:
    """D = C / (6·N), the inverse of `compute_6nd` (elementwise)."""
    return compute / (FLOPS_PER_PARAM_TOKEN * model_size)


def check_formula(formula: str) -> str:
    if formula not in FLOPS_FORMULAS:
        raise ValueError(f"flops_formula must be one of {FLOPS_FORMULAS}, got {formula!r}")
    return formula


def forward_flops_per_token(shape: ModelShape) -> int:
    d, f, L = shape.d_model, shape.d_ff, shape.num_layers
    weights = 2 * (4 * d * d + 3 * d * f) * L
    attention = 2 * 2 * shape.context_length * d * L
    head = 2 * d * shape.vocab_size
    return weights + attention + head


def training_flops_per_token(shape: ModelShape, formula: str = "full") -> int:
    """FLOPs to train on one token (forward + backward)."""
    if check_formula(formula) == "6nd":
        return FLOPS_PER_PARAM_TOKEN * non_embedding_params(shape)
    return (1 + BACKWARD_FACTOR) * forward_flops_per_token(shape)


def training_flops(shape: ModelShape, tokens: int, formula: str = "full") -> float:
    return float(training_flops_per_token(shape, formula)) * float(tokens)


def flops_breakdown(shape: ModelShape) -> dict[str, float]:
    """Share of the full training cost spent in weights, attention and the head."""
    d, f, L = shape.d_model, shape.d_ff, shape.num_layers
    parts = {
        "weights": 2 * (4 * d * d + 3 * d * f) * L,
        "attention": 4 * shape.context_length * d * L,
        "head": 2 * d * shape.vocab_size,
    }
    total = sum(parts.values())
    return {k: v / total for k, v in parts.items()}


def run_flops(record: dict[str, Any], units: float) -> float:
    """A run's training FLOPs: its plan's FLOPs per unit of D (whichever formula made the plan:
    full, 6nd or measured) times the units it trained on."""
    per_unit = record.get("flops_per_token")
    if per_unit is None:  # a GPT plan written before the count was recorded per run
        from flops_fit.planning.shapes import ModelShape

        shape = ModelShape.from_record(record)
        return training_flops(shape, int(units), record.get("flops_formula", "full"))
    return float(per_unit) * float(units)


def readable_budget(compute: float) -> float:
    """A budget rounded to three significant figures: readable labels and experiment ids."""
    return float(f"{float(compute):.3g}")
