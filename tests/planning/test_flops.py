import pytest

from flops_fit.planning.flops import flops_breakdown, training_flops, training_flops_per_token
from flops_fit.planning.shapes import ModelShape, non_embedding_params


def _shape(d=64, layers=2, ctx=128, vocab=256):
    return ModelShape(d_model=d, num_layers=layers, num_heads=2, d_ff=176, vocab_size=vocab,
                      context_length=ctx)


def test_full_count_by_hand():
    s = _shape()
    forward = 2 * (4 * 64**2 + 3 * 64 * 176) * 2 + 4 * 128 * 64 * 2 + 2 * 64 * 256
    assert training_flops_per_token(s) == 3 * forward


def test_6nd_option():
    s = _shape()
    assert training_flops_per_token(s, "6nd") == 6 * non_embedding_params(s)
    assert training_flops(s, 1000, "6nd") == 6.0 * non_embedding_params(s) * 1000


def test_small_models_spend_a_large_share_outside_the_weights():
    small = flops_breakdown(_shape(d=32, layers=1))
    assert small["attention"] + small["head"] > 0.4


def test_large_models_agree_with_6nd():
    big = ModelShape(d_model=4096, num_layers=32, num_heads=32, d_ff=11008, vocab_size=256,
                     context_length=128)
    ratio = training_flops_per_token(big) / training_flops_per_token(big, "6nd")
    assert ratio == pytest.approx(1.0, abs=0.02)


def test_unknown_formula():
    with pytest.raises(ValueError, match="flops_formula"):
        training_flops_per_token(_shape(), "kaplan")
