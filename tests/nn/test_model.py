"""The u-μP GPT: exact parameter count, shapes, causality, u-μP tags."""

from __future__ import annotations

import itertools

import pytest
import torch

from flops_fit.nn.model import GPT, UMuPConfig
from flops_fit.planning.shapes import (
    ModelShape,
    ShapeFamily,
    embedding_params,
    non_embedding_params,
    shape_ladder,
)


def _meta_model(shape: ModelShape) -> GPT:
    with torch.device("meta"):  # no memory, no init cost: counting only
        return GPT(shape)


@pytest.mark.parametrize(
    "family",
    [
        ShapeFamily(),
        ShapeFamily(max_width=512, head_dim=16, aspect_ratio=16.0),
        ShapeFamily(ffn_multiplier=4.0, ffn_multiple=32, context_length=64, vocab_size=300),
    ],
)
def test_parameter_count_matches_planning_over_the_ladder(family):
    _, shapes = shape_ladder(family)
    assert len(shapes) > 20
    for shape in shapes:
        model = _meta_model(shape)
        assert model.non_embedding_params() == non_embedding_params(shape), shape
        total = sum(p.numel() for p in model.parameters())
        assert total == non_embedding_params(shape) + embedding_params(shape), shape


def test_parameter_count_matches_planning_for_odd_shapes():
    for d, heads, layers, d_ff in itertools.product((8, 24, 96), (1, 2, 4), (1, 3), (8, 50, 130)):
        if d % heads or (d // heads) % 2:
            continue
        shape = ModelShape(
            d_model=d,
            num_layers=layers,
            num_heads=heads,
            d_ff=d_ff,
            vocab_size=256,
            context_length=32,
        )
        assert _meta_model(shape).non_embedding_params() == non_embedding_params(shape)


TINY = [
    ModelShape(d_model=16, num_layers=1, num_heads=1, d_ff=48, vocab_size=256, context_length=16),
    ModelShape(d_model=32, num_layers=2, num_heads=2, d_ff=96, vocab_size=256, context_length=24),
    ModelShape(d_model=48, num_layers=3, num_heads=3, d_ff=64, vocab_size=256, context_length=8),
]


@pytest.mark.parametrize("shape", TINY, ids=lambda s: f"d{s.d_model}L{s.num_layers}")
def test_forward_backward_tiny(shape):
    torch.manual_seed(0)
    model = GPT(shape)
    tokens = torch.randint(0, 256, (3, shape.context_length + 1))
    logits = model(tokens[:, :-1])
    assert logits.shape == (3, shape.context_length, 256)
    loss = model.loss(tokens[:, :-1], tokens[:, 1:])
    assert torch.isfinite(loss)
    # Unit scaling: the initial loss is near the uniform-byte baseline ln 256.
    assert abs(loss.item() - torch.log(torch.tensor(256.0)).item()) < 1.0
    loss.backward()
    for name, p in model.named_parameters():
        assert p.grad is not None and torch.isfinite(p.grad).all(), name
        assert p.grad.abs().sum() > 0, name


def test_activations_are_unit_scaled_at_init():
    shape = ShapeFamily().shape(128, 4)
    torch.manual_seed(0)
    model = GPT(shape)
    seen = []
    for block in model.blocks:
        block.register_forward_hook(lambda m, i, o: seen.append(o.std().item()))
    model(torch.randint(0, 256, (4, shape.context_length)))
    assert all(0.5 < s < 2.0 for s in seen), seen


def test_attention_is_causal():
    shape = TINY[1]
    torch.manual_seed(0)
    model = GPT(shape)
    tokens = torch.randint(0, 256, (2, shape.context_length))
    changed = tokens.clone()
    changed[:, 10] = (changed[:, 10] + 1) % 256
    with torch.no_grad():
        a, b = model(tokens), model(changed)
    assert torch.equal(a[:, :10], b[:, :10])
    assert not torch.allclose(a[:, 10:], b[:, 10:])


def test_umup_tags_and_depth():
    shape = TINY[2]
    model = GPT(shape, UMuPConfig())
    tags = {name: (p.mup_type, p.mup_scaling_depth) for name, p in model.named_parameters()}
    assert tags["embedding"] == ("weight", None)
    assert tags["head"] == ("output", None)
    assert tags["final_norm"] == ("norm", None)
    assert tags["blocks.0.w_qkv"] == ("weight", shape.num_layers)
    assert tags["blocks.2.ffn_norm"] == ("norm", shape.num_layers)


def test_rejects_sequences_longer_than_the_context():
    shape = TINY[0]
    with pytest.raises(ValueError, match="exceeds context"):
        GPT(shape)(torch.zeros(1, shape.context_length + 1, dtype=torch.long))
