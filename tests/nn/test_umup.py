"""The fast GPT computes u-μP exactly as `unit_scaling` (Graphcore's reference) would.

The reference below is the same network written with `unit_scaling.functional` ops, which apply
u-μP's scales in the forward pass and unit scaling's (different) scales in the backward pass.
Claims checked:
  * the loss is the same (same forward multipliers, residual rule, attention and SwiGLU scales);
  * each parameter's gradient differs only by one constant factor per tensor;
  * hence AdamW, invariant to such factors, takes the same steps from both (with per-tensor LRs
    from `unit_scaling.optim.AdamW`'s rules on the reference side).
"""

from __future__ import annotations

import copy

import torch
import unit_scaling as uu
import unit_scaling.functional as U

from flops_fit.nn.model import GPT, UMuPConfig, apply_rotary
from flops_fit.nn.optim import build_optimizer
from flops_fit.planning.shapes import ModelShape

SHAPE = ModelShape(
    d_model=32, num_layers=3, num_heads=2, d_ff=48, vocab_size=256, context_length=16
)
CFG = UMuPConfig(
    residual_mult=0.8,
    residual_attn_ratio=1.3,
    attn_softmax_mult=1.5,
    ffn_act_mult=2.0,
    loss_softmax_mult=0.7,
)


def reference_loss(model: GPT, tokens: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    shape, cfg = model.shape, model.cfg
    d, h, hd, f = shape.d_model, shape.num_heads, shape.head_dim, shape.d_ff
    B, T = tokens.shape
    cos, sin = model.rope_cos[:T], model.rope_sin[:T]
    x = U.embedding(tokens, model.embedding)
    for blk in model.blocks:
        tau = blk.branch_attn / blk.skip_attn
        r, skip = U.residual_split(x, tau)
        r = U.rms_norm(r, (d,), blk.attn_norm, cfg.norm_eps)
        qkv = U.linear(r, blk.w_qkv, None).view(B, T, 3, h, hd).permute(2, 0, 3, 1, 4)
        q, k, v = apply_rotary(qkv[0], cos, sin), apply_rotary(qkv[1], cos, sin), qkv[2]
        y = U.scaled_dot_product_attention(q, k, v, is_causal=True, mult=cfg.attn_softmax_mult)
        y = U.linear(y.transpose(1, 2).reshape(B, T, d), blk.w_o, None)
        x = U.residual_add(y, skip, tau)

        tau = blk.branch_ffn / blk.skip_ffn
        r, skip = U.residual_split(x, tau)
        r = U.rms_norm(r, (d,), blk.ffn_norm, cfg.norm_eps)
        # as unit_scaling.MLP: separate up / gate / down linears with constraint=None
        up = U.linear(r, blk.w_gate_up[:f], None, constraint=None)
        gate = U.linear(r, blk.w_gate_up[f:], None, constraint=None)
        z = U.silu_glu(up, gate, mult=cfg.ffn_act_mult)
        y = U.linear(z, blk.w_down, None, constraint=None)
        x = U.residual_add(y, skip, tau)
    x = U.rms_norm(x, (d,), model.final_norm, cfg.norm_eps)
    logits = U.linear_readout(x, model.head, None)
    return U.cross_entropy(logits.flatten(0, 1), targets.flatten(), mult=cfg.loss_softmax_mult)


def _batch(seed: int):
    g = torch.Generator().manual_seed(seed)
    tokens = torch.randint(0, 256, (4, SHAPE.context_length + 1), generator=g)
    return tokens[:, :-1], tokens[:, 1:]


def test_same_loss_and_per_tensor_proportional_gradients():
    torch.manual_seed(0)
    model = GPT(SHAPE, CFG)
    ref = copy.deepcopy(model)
    x, y = _batch(1)
    loss = model.loss(x, y)
    ref_loss = reference_loss(ref, x, y)
    torch.testing.assert_close(loss, ref_loss, rtol=1e-5, atol=1e-5)
    loss.backward()
    ref_loss.backward()
    for (name, p), (_, q) in zip(model.named_parameters(), ref.named_parameters(), strict=True):
        g, r = p.grad.flatten().double(), q.grad.flatten().double()
        cosine = torch.dot(g, r) / (g.norm() * r.norm())
        assert cosine > 1 - 1e-6, (name, cosine.item())
        ratio = (r.norm() / g.norm()).item()
        torch.testing.assert_close(r, g * ratio, rtol=1e-3, atol=1e-6 * r.abs().max().item())


def test_adamw_steps_match_unit_scaling_optimizer():
    torch.manual_seed(0)
    model = GPT(SHAPE, CFG)
    ref = copy.deepcopy(model)
    lr, betas, eps = 0.5, (0.9, 0.95), 1e-30  # ~no eps: Adam's only scale-dependent term
    opt = build_optimizer(model, lr=lr, betas=betas, eps=eps, weight_decay=0.0, device_type="cpu")
    ref_opt = uu.optim.AdamW(ref.parameters(), lr=lr, betas=betas, eps=eps, weight_decay=0.0)
    for step in range(3):
        x, y = _batch(10 + step)
        for m, o, loss_fn in ((model, opt, GPT.loss), (ref, ref_opt, reference_loss)):
            o.zero_grad()
            loss_fn(m, x, y).backward()
            o.step()
    for (name, p), (_, q) in zip(model.named_parameters(), ref.named_parameters(), strict=True):
        torch.testing.assert_close(p, q, rtol=1e-4, atol=1e-4, msg=name)


def test_per_tensor_learning_rates():
    model = GPT(SHAPE, CFG)
    opt = build_optimizer(
        model, lr=1.0, betas=(0.9, 0.95), eps=1e-8, weight_decay=0.1, device_type="cpu"
    )
    lr_of = {id(p): (g["lr"], g["weight_decay"]) for g in opt.param_groups for p in g["params"]}
    d, f, L = SHAPE.d_model, SHAPE.d_ff, SHAPE.num_layers
    blk = model.blocks[0]
    expect = {
        "embedding": d**-0.5,
        "head": 1.0,
        "final_norm": 1.0,
        "w_qkv": (d * L) ** -0.5,
        "w_down": (f * L) ** -0.5,
        "attn_norm": L**-0.5,
    }
    params = {
        "embedding": model.embedding,
        "head": model.head,
        "final_norm": model.final_norm,
        "w_qkv": blk.w_qkv,
        "w_down": blk.w_down,
        "attn_norm": blk.attn_norm,
    }
    for key, p in params.items():
        got_lr, got_wd = lr_of[id(p)]
        assert abs(got_lr - expect[key]) < 1e-12, key
        # independent weight decay: lr · wd == λ for weights, gains are not decayed
        assert abs(got_lr * got_wd - (0.0 if "norm" in key else 0.1)) < 1e-12, key
