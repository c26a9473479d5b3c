import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from flops_fit.planning.shapes import (
    ModelShape,
    ShapeFamily,
    non_embedding_params,
    shape_for_target,
    shape_ladder,
)

FAMILY = ShapeFamily()


def test_parameter_count_by_hand():
    shape = ModelShape(d_model=64, num_layers=2, num_heads=2, d_ff=176, vocab_size=256,
                       context_length=128)
    per_block = 4 * 64 * 64 + 3 * 64 * 176 + 2 * 64
    assert non_embedding_params(shape) == 2 * per_block + 64


def test_invalid_shapes_are_rejected():
    with pytest.raises(ValueError, match="num_heads"):
        ModelShape(d_model=60, num_layers=1, num_heads=8, d_ff=64, vocab_size=256, context_length=8)
    with pytest.raises(ValueError, match="d_model"):
        ModelShape(d_model=0, num_layers=1, num_heads=1, d_ff=64, vocab_size=256, context_length=8)


def test_family_shapes_have_valid_heads():
    _, shapes = shape_ladder(FAMILY)
    for shape in shapes:
        assert shape.d_model % shape.num_heads == 0
        assert shape.head_dim % 2 == 0
        assert shape.d_ff >= FAMILY.ffn_multiplier * shape.d_model


def test_ladder_is_strictly_increasing():
    counts, shapes = shape_ladder(FAMILY)
    assert list(counts) == sorted(set(counts))
    assert [non_embedding_params(s) for s in shapes] == list(counts)


@settings(max_examples=200, deadline=None)
@given(st.floats(min_value=1e3, max_value=1e8), st.floats(min_value=1.0, max_value=50.0))
def test_exact_count_is_monotone_in_target(target, factor):
    small = non_embedding_params(shape_for_target(target, FAMILY))
    large = non_embedding_params(shape_for_target(target * factor, FAMILY))
    assert small <= large


@settings(max_examples=100, deadline=None)
@given(st.floats(min_value=2e4, max_value=5e7))
def test_nearest_rung_is_chosen(target):
    counts, _ = shape_ladder(FAMILY)
    chosen = non_embedding_params(shape_for_target(target, FAMILY))
    best = min(counts, key=lambda n: abs(math.log(n / target)))
    assert abs(math.log(chosen / target)) == pytest.approx(abs(math.log(best / target)))


def test_target_must_be_positive():
    with pytest.raises(ValueError, match="positive"):
        shape_for_target(-5, FAMILY)
