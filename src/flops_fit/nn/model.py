"""The project's GPT, parameterised with u-μP (Blake et al. 2024, arXiv:2407.17465).

Architecture: token embedding -> L pre-norm blocks [RMSNorm -> causal multi-head attention with
rotary position embeddings -> residual; RMSNorm -> SwiGLU feed-forward -> residual] -> final
RMSNorm -> untied linear head. No biases, no dropout. The non-embedding parameter count is exactly
`flops_fit.planning.shapes.non_embedding_params(shape)`: 4·d² (W_qkv fused, W_o) + 3·d·d_ff (W_gate and W_up
fused, W_down) + 2·d RMSNorm gains per block, plus d for the final norm gain.

u-μP, as implemented by Graphcore's `unit_scaling` (the paper's reference implementation):
  * every weight is initialised N(0, 1) and every norm gain to 1 ("unit scale");
  * the width dependence lives in fixed forward multipliers instead of the init:
      hidden linear     y = x Wᵀ / sqrt(fan_in)                    (U.linear)
      readout (head)    y = x Wᵀ / fan_in · α_loss-softmax          (U.linear_readout, μP's 1/d)
      attention         softmax(α_attn · q kᵀ / d_head) v · s_attn  (U.scaled_dot_product_attention)
      SwiGLU            (a ⊙ g σ(α_ffn-act · g)) · s_glu            (U.silu_glu)
      residual          x ← (τ_i · f_i(x) + x) / sqrt(1 + τ_i²)    (U.residual_split/_add)
    with s_attn, s_glu the library's empirical unit-scaling factors and τ_i from the paper's
    residual rule (Appendix G; `unit_scaling.transformer_residual_scaling_rule`) that gives every
    attention and FFN branch an equal share of the residual stream, controlled by α_res and
    α_res-attn-ratio;
  * per-tensor Adam learning rates (see `flops_fit.nn.optim`): η·1/sqrt(fan_in) for hidden and
    embedding weights (the embedding's fan-in is d_model), η for the head and the norm gains,
    each times 1/sqrt(L) inside the residual stack (depth-μP).

Speed: `unit_scaling`'s functional ops wrap every scale in an autograd Function that multiplies
whole activation tensors (even by 1.0) in both passes. On a CPU at these widths those elementwise
passes cost as much as the matmuls. This module computes the SAME forward pass with each constant
multiplier folded into the (small) weight matrix it follows — `F.linear(x, W·c)` equals
`F.linear(x, W)·c` — and plain autograd. The gradients then differ from `unit_scaling`'s only by
the library's backward-only scales, which are one constant factor per parameter tensor; Adam(W)
is invariant to such factors (up to ε). tests/nn/test_umup.py checks both claims against a
reference built from `unit_scaling.functional`: identical loss, per-tensor proportional gradients
and identical optimiser steps.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
import unit_scaling as uu
from torch import Tensor, nn
from unit_scaling.core.functional import logarithmic_interpolation

from flops_fit.nn.losses import next_token_cross_entropy
from flops_fit.parameters.torch_backend import UMuPConfig
from flops_fit.planning.shapes import ModelShape, non_embedding_params


def attention_output_scale(seq_len: int, head_dim: int, mult: float) -> float:
    """u-μP's causal attention output scale (as `unit_scaling.functional.scaled_dot_product_
    attention`): interpolates between a flat (uniform) and a one-hot attention pattern."""
    return 1.0 / logarithmic_interpolation(
        alpha=1 / (1 + 4 * head_dim / mult**2),
        lower=(math.log(seq_len) / seq_len) ** 0.5,
        upper=1.0,
    )


def swiglu_output_scale(mult: float) -> float:
    """u-μP's SwiGLU output scale (as `unit_scaling.functional.silu_glu`)."""
    return logarithmic_interpolation(alpha=1 / (1 + 1 / mult**2), lower=2.0, upper=2**0.5)


def rotary_tables(seq_len: int, head_dim: int, base: float) -> tuple[Tensor, Tensor]:
    """cos, sin of shape (seq_len, head_dim/2) for rotary embeddings (Su et al. 2021)."""
    inv_freq = 1.0 / (base ** (torch.arange(0, head_dim, 2, dtype=torch.float64) / head_dim))
    angles = torch.outer(torch.arange(seq_len, dtype=torch.float64), inv_freq)
    return angles.cos().float(), angles.sin().float()


def apply_rotary(x: Tensor, cos: Tensor, sin: Tensor) -> Tensor:
    """Rotate pairs (x[..., i], x[..., i + hd/2]) of a (..., T, hd) tensor by position angles."""
    cos, sin = cos.to(x.dtype), sin.to(x.dtype)  # keep bf16 activations bf16 under autocast
    x1, x2 = x.chunk(2, dim=-1)
    return torch.cat((x1 * cos - x2 * sin, x2 * cos + x1 * sin), dim=-1)


def _weight(out_features: int, in_features: int, mup_type: str = "weight") -> nn.Parameter:
    return uu.Parameter(torch.randn(out_features, in_features), mup_type=mup_type)


def _gain(d: int) -> nn.Parameter:
    return uu.Parameter(torch.ones(d), mup_type="norm")


class Block(nn.Module):
    """Pre-norm transformer block: causal attention with RoPE, then a SwiGLU feed-forward."""

    def __init__(self, shape: ModelShape, cfg: UMuPConfig, tau_attn: float, tau_ffn: float):
        super().__init__()
        d, f = shape.d_model, shape.d_ff
        self.num_heads, self.head_dim, self.d_ff = shape.num_heads, shape.head_dim, f
        self.cfg = cfg
        self.attn_norm = _gain(d)
        self.w_qkv = _weight(3 * d, d)  # W_q, W_k, W_v fused: 3·d² parameters
        self.w_o = _weight(d, d)
        self.ffn_norm = _gain(d)
        self.w_gate_up = _weight(2 * f, d)  # SwiGLU's W_up (first half) and W_gate, fused
        self.w_down = _weight(d, f)
        # Residual weighting: out = (τ f(x) + x) / sqrt(1 + τ²) = f(x)·τ/den + x/den.
        den_attn, den_ffn = math.sqrt(1 + tau_attn**2), math.sqrt(1 + tau_ffn**2)
        self.skip_attn, self.skip_ffn = 1 / den_attn, 1 / den_ffn
        self.branch_attn, self.branch_ffn = tau_attn / den_attn, tau_ffn / den_ffn
        self.qkv_scale = d**-0.5
        self.glu_scale = swiglu_output_scale(cfg.ffn_act_mult)

    def forward(self, x: Tensor, cos: Tensor, sin: Tensor) -> Tensor:
        B, T, d = x.shape
        h, hd, eps = self.num_heads, self.head_dim, self.cfg.norm_eps

        # Attention branch. Every constant multiplier is applied to the (small) weight.
        a = F.rms_norm(x, (d,), self.attn_norm, eps)
        qkv = F.linear(a, self.w_qkv * self.qkv_scale)
        qkv = qkv.view(B, T, 3, h, hd).permute(2, 0, 3, 1, 4)  # (3, B, h, T, hd)
        qk = apply_rotary(qkv[:2], cos, sin)  # rotate queries and keys in one pass
        y = F.scaled_dot_product_attention(
            qk[0], qk[1], qkv[2], is_causal=True, scale=self.cfg.attn_softmax_mult / hd
        )
        y = y.transpose(1, 2).reshape(B, T, d)
        o_scale = attention_output_scale(T, hd, self.cfg.attn_softmax_mult) * d**-0.5
        y = F.linear(y, self.w_o * (o_scale * self.branch_attn))
        x = torch.add(y, x, alpha=self.skip_attn)

        # SwiGLU feed-forward branch.
        a = F.rms_norm(x, (d,), self.ffn_norm, eps)
        up, gate = F.linear(a, self.w_gate_up * self.qkv_scale).chunk(2, dim=-1)
        if self.cfg.ffn_act_mult == 1.0:
            z = up * F.silu(gate)
        else:
            z = up * gate * torch.sigmoid(gate * self.cfg.ffn_act_mult)
        down_scale = self.glu_scale * self.d_ff**-0.5 * self.branch_ffn
        y = F.linear(z, self.w_down * down_scale)
        return torch.add(y, x, alpha=self.skip_ffn)


class GPT(nn.Module):
    """A u-μP GPT for one `ModelShape`; `forward(tokens)` returns logits (B, T, vocab)."""

    def __init__(self, shape: ModelShape, cfg: UMuPConfig | None = None):
        super().__init__()
        cfg = cfg or UMuPConfig()
        self.shape, self.cfg = shape, cfg
        d, L, V = shape.d_model, shape.num_layers, shape.vocab_size
        self.embedding = _weight(V, d)  # lookup table: u-μP's fan-in of an embedding is d
        tau = uu.transformer_residual_scaling_rule(cfg.residual_mult, cfg.residual_attn_ratio)
        # DepthModuleList tags every block parameter with mup_scaling_depth = L (depth-μP LRs).
        self.blocks = uu.DepthModuleList(
            [Block(shape, cfg, tau(2 * i, 2 * L), tau(2 * i + 1, 2 * L)) for i in range(L)]
        )
        self.final_norm = _gain(d)
        self.head = _weight(V, d, mup_type="output")
        cos, sin = rotary_tables(shape.context_length, shape.head_dim, cfg.rope_base)
        self.register_buffer("rope_cos", cos, persistent=False)
        self.register_buffer("rope_sin", sin, persistent=False)
        self.head_scale = cfg.loss_softmax_mult / d

    def forward(self, tokens: Tensor) -> Tensor:
        T = tokens.shape[1]
        if self.shape.context_length < T:
            raise ValueError(f"sequence of {T} tokens exceeds context {self.shape.context_length}")
        cos, sin = self.rope_cos[:T], self.rope_sin[:T]
        x = F.embedding(tokens, self.embedding)
        for block in self.blocks:
            x = block(x, cos, sin)
        x = F.rms_norm(x, (self.shape.d_model,), self.final_norm, self.cfg.norm_eps)
        return F.linear(x, self.head * self.head_scale)

    def loss(self, tokens: Tensor, targets: Tensor) -> Tensor:
        """Mean next-token cross entropy in nats (float32 even under bf16 autocast)."""
        return next_token_cross_entropy(self(tokens), {"targets": targets})

    def non_embedding_params(self) -> int:
        """Parameters other than the token embedding and the output head."""
        skip = {id(self.embedding), id(self.head)}
        return sum(p.numel() for p in self.parameters() if id(p) not in skip)

    def num_params(self) -> int:
        """N of the plugin contract: the exact non-embedding count of `flops_fit.planning.shapes`."""
        return non_embedding_params(self.shape)

    def param_groups(self, lr: float, weight_decay: float) -> list[dict]:
        """The optimiser hook of the plugin contract: u-μP's per-tensor learning rates."""
        from flops_fit.nn.optim import umup_param_groups

        return umup_param_groups(self, lr, weight_decay)


def make_gpt(*, umup: UMuPConfig | dict | None = None, **shape: int) -> GPT:
    """The built-in model factory: `make_gpt(d_model=..., num_layers=..., num_heads=..., d_ff=...,
    vocab_size=..., context_length=..., umup=...)`, the planned shape's fields as keywords."""
    cfg = umup if isinstance(umup, UMuPConfig) else UMuPConfig.from_params(umup)
    return GPT(ModelShape(**shape), cfg)
