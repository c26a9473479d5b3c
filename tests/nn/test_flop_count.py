"""Measured training FLOPs (FlopCounterMode on meta tensors) against the analytic counts."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from flops_fit.nn.flop_count import training_flops_breakdown, training_flops_per_example
from flops_fit.nn.losses import cross_entropy
from flops_fit.nn.model import GPT
from flops_fit.planning.flops import training_flops_per_token
from flops_fit.planning.shapes import ShapeFamily, shape_for_target


def next_token_loss(out, b):
    return cross_entropy(out.flatten(0, 1).float(), b["targets"].flatten())


def mse_loss(out, b):
    return F.mse_loss(out, b["targets"])


def _windows(rows: int, T: int) -> dict[str, torch.Tensor]:
    tokens = torch.zeros(rows, T, dtype=torch.long)
    return {"inputs": tokens, "targets": tokens.clone()}


@pytest.mark.parametrize("target", [2e3, 1e4, 5e4, 2e5, 8e5])
def test_gpt_measured_equals_analytic_full_count(target):
    """The measured count of the built-in GPT equals the analytic `full` count EXACTLY.

    Why there is no difference at all:
      * weight matmuls (W_qkv, W_o, W_gate_up, W_down) and the head: forward 2·in·out per token,
        backward 2·in·out for the weight gradient plus 2·in·out for the input gradient — the
        input gradient is computed even for the first block, because its input is the embedding
        output, which requires grad (the embedding table is trained); the u-μP constants folded
        into the weights are elementwise products of weight tensors and count 0;
      * attention: on meta, sdpa decomposes into two dense bmm (QKᵀ, attention·V), 2·T·d FLOPs
        per token each, times 3 with the backward; the causal mask is applied to the dense
        product, matching the analytic count's full-context convention (no ½);
      * rms_norm, rotary, SwiGLU gating, residual adds, the embedding lookup and the fused
        softmax cross entropy are elementwise / gathers: 0 in both counts.
    So aten.mm = 3·(weights + head) and aten.bmm = 3·attention, term by term.
    """
    shape = shape_for_target(target, ShapeFamily())
    T, d, L = shape.context_length, shape.d_model, shape.num_layers
    batch = _windows(1, T)
    measured = training_flops_per_example(lambda: GPT(shape), batch, next_token_loss)
    assert measured == training_flops_per_token(shape, "full") * T

    parts = training_flops_breakdown(lambda: GPT(shape), batch, next_token_loss)
    weights = 2 * (4 * d * d + 3 * d * shape.d_ff) * L + 2 * d * shape.vocab_size
    assert parts == {"aten.bmm": 3 * 4 * T * d * L * T, "aten.mm": 3 * weights * T}


def test_count_is_per_example():
    shape = shape_for_target(1e4, ShapeFamily())
    T = shape.context_length
    one = training_flops_per_example(lambda: GPT(shape), _windows(1, T), next_token_loss)
    three = training_flops_per_example(lambda: GPT(shape), _windows(3, T), next_token_loss)
    assert one == three


def _mlp_formula(widths: list[int]) -> int:
    """Per example: every layer 2·in·out forward + 2·in·out weight gradient, every layer but the
    first 2·in·out input gradient (the raw input does not require grad); biases count 0."""
    pairs = list(zip(widths[:-1], widths[1:], strict=True))
    return sum(6 * i * o for i, o in pairs) - 2 * pairs[0][0] * pairs[0][1]


@pytest.mark.parametrize("widths", [[10, 20, 30, 5], [64, 256, 256, 10]])
def test_mlp_measured_below_6n_and_exact(widths):
    def build():
        layers = []
        for i, (a, b) in enumerate(zip(widths[:-1], widths[1:], strict=True)):
            layers += [nn.ReLU()] if i else []
            layers.append(nn.Linear(a, b))
        return nn.Sequential(*layers)

    batch = {"inputs": torch.randn(4, widths[0]), "targets": torch.randn(4, widths[-1])}
    measured = training_flops_per_example(build, batch, mse_loss)
    n = sum(p.numel() for p in build().parameters())
    assert measured == _mlp_formula(widths)
    assert measured < 6 * n
    assert sum(training_flops_breakdown(build, batch, mse_loss).values()) == measured


class _Elementwise(nn.Module):
    def __init__(self):
        super().__init__()
        self.gain = nn.Parameter(torch.ones(8))

    def forward(self, x):
        return x * self.gain


def test_zero_countable_flops_raises():
    batch = {"inputs": torch.randn(2, 8), "targets": torch.randn(2, 8)}
    assert training_flops_breakdown(_Elementwise, batch, mse_loss) == {}
    with pytest.raises(ValueError, match="counted 0 FLOPs"):
        training_flops_per_example(_Elementwise, batch, mse_loss)


def test_loss_without_parameters_raises():
    batch = {"inputs": torch.randn(2, 8), "targets": torch.randn(2, 8)}
    with pytest.raises(ValueError, match="does not depend on any trainable parameter"):
        training_flops_per_example(nn.Identity, batch, mse_loss)


class _ReadsValues(nn.Linear):
    def forward(self, x):
        return super().forward(x) * float(x.sum().item())


def test_data_dependent_model_names_the_meta_problem():
    batch = {"inputs": torch.randn(2, 8), "targets": torch.randn(2, 8)}
    with pytest.raises(RuntimeError, match="meta tensors"):
        training_flops_per_example(lambda: _ReadsValues(8, 8), batch, mse_loss)


def test_batch_needs_rows():
    with pytest.raises(ValueError, match="at least one row"):
        training_flops_per_example(_Elementwise, {"inputs": torch.zeros(0, 8)}, mse_loss)
