"""Measured training compute: FLOPs of one forward + backward, counted by torch itself.

`planning.flops_formula: measured` plans D from what `torch.utils.flop_counter.FlopCounterMode`
counts for one training step of a planned model, so any architecture gets a compute count
without an analytic formula.

Why the meta device: the model is built and run on `meta` tensors (shapes and dtypes, no data, no
memory), so counting a large model is instant and allocates nothing. It also matters for
correctness: on CPU tensors `F.scaled_dot_product_attention` dispatches to a fused CPU kernel the
counter has no formula for and counts 0 FLOPs, while on meta it decomposes into the two batched
matmuls (QKᵀ and attention·V) that the counter sees (measured with torch 2.13).

What is counted: matrix products (mm, addmm, bmm, convolutions, attention kernels with a
registered formula) in the forward pass and in the backward pass that `loss.backward()` actually
runs. Consequences a user should know:
  * elementwise ops, norms, softmax, rotary embeddings, embedding lookups and bias additions count
    0 — they are memory-bound and small next to the matmuls;
  * the backward pass only computes what autograd needs: the first layer of a model whose input
    does not require grad gets no input gradient, so an MLP on raw features costs
    6·Σ(in·out) − 2·in₀·out₀ per example, below 6·N;
  * causal attention is counted as the dense T×T products (the math kernel multiplies the full
    matrices and masks afterwards), the same convention as `flops_fit.planning.flops`' `full` count and
    Kaplan et al. (2020); a kernel that skips masked blocks does about half of that work.
For the built-in GPT the measured count equals `flops_fit.planning.flops.training_flops_per_token(shape,
"full")` exactly (tests/nn/test_flop_count.py).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import torch
from torch import Tensor
from torch.utils.flop_counter import FlopCounterMode

LossFn = Callable[[Any, Mapping[str, Tensor]], Tensor]


def _to_meta(batch: Mapping[str, Any]) -> dict[str, Any]:
    """The batch with every tensor on meta (same shape and dtype); other values as given."""
    return {k: v.to("meta") if isinstance(v, Tensor) else v for k, v in batch.items()}


def _rows(batch: Mapping[str, Any]) -> int:
    inputs = batch.get("inputs")
    if not isinstance(inputs, Tensor) or inputs.dim() == 0 or inputs.shape[0] == 0:
        raise ValueError(
            "counting FLOPs needs batch['inputs'] to be a tensor with at least one row (dim 0 is "
            f"the example), got {type(inputs).__name__}"
            + (f" of shape {tuple(inputs.shape)}" if isinstance(inputs, Tensor) else "")
        )
    return int(inputs.shape[0])


def _count(
    build_model: Callable[[], torch.nn.Module],
    batch: Mapping[str, Tensor],
    loss_fn: LossFn,
) -> tuple[dict[str, int], int]:
    """(FLOPs per operator for the whole batch, number of batch rows)."""
    rows = _rows(batch)
    meta_batch = _to_meta(batch)
    try:
        with torch.device("meta"):
            model = build_model()
        # A factory that creates some tensors with an explicit device="cpu" would leave them off
        # meta and fail on meta inputs; moving is free for tensors already there.
        model = model.to("meta")
    except Exception as exc:
        raise RuntimeError(
            f"building the model on the meta device failed ({type(exc).__name__}: {exc}); a model "
            "factory must not do data-dependent work at construction time"
        ) from exc
    counter = FlopCounterMode(display=False)
    # enable_grad: planning may run inside torch.no_grad(), but the backward pass is the point.
    with torch.enable_grad():
        try:
            with counter:
                outputs = model(meta_batch["inputs"])
                loss = loss_fn(outputs, meta_batch)
                if not (isinstance(loss, Tensor) and loss.requires_grad):
                    raise ValueError(
                        "the loss does not depend on any trainable parameter of the model, "
                        "so there is no backward pass to count"
                    )
                loss.backward()
        except ValueError:
            raise
        except Exception as exc:
            raise RuntimeError(
                "counting FLOPs runs the model and the loss on meta tensors (shapes only, no "
                f"data) and that failed ({type(exc).__name__}: {exc}); the forward pass and the "
                "loss must not read tensor values (.item(), .tolist(), data-dependent shapes)"
            ) from exc
    per_op = {str(op): int(n) for op, n in counter.get_flop_counts().get("Global", {}).items()}
    return per_op, rows


def training_flops_breakdown(
    build_model: Callable[[], torch.nn.Module],
    batch: Mapping[str, Tensor],
    loss_fn: LossFn,
) -> dict[str, float]:
    """Training FLOPs per example (forward + backward) for each counted operator, e.g.
    {"aten.mm": ..., "aten.bmm": ...}. Operators the counter cannot see are absent, so an empty
    dict means nothing countable ran. Sums to `training_flops_per_example`."""
    per_op, rows = _count(build_model, batch, loss_fn)
    return {op: n / rows for op, n in sorted(per_op.items())}


def training_flops_per_example(
    build_model: Callable[[], torch.nn.Module],
    batch: Mapping[str, Tensor],
    loss_fn: LossFn,
) -> float:
    """FLOPs to train on one example (one batch row: a window of T tokens for a language model):
    one forward pass `model(batch["inputs"])`, the loss `loss_fn(outputs, batch)` and its
    backward pass, counted on the meta device and divided by the number of rows.

    `build_model` is called once under `torch.device("meta")`; the batch only provides shapes and
    dtypes. Raises ValueError when nothing is counted (a model made only of operations the
    counter has no formula for, e.g. elementwise products, would otherwise get zero compute and an
    infinite token budget).
    """
    per_op, rows = _count(build_model, batch, loss_fn)
    total = sum(per_op.values())
    if total <= 0:
        raise ValueError(
            "torch.utils.flop_counter.FlopCounterMode counted 0 FLOPs for one training step of "
            "this model: it counts matrix products (linear layers, matmul, bmm, convolutions, "
            "attention) and none ran, so measured compute is undefined. Use layers built on "
            "matrix products, or an analytic flops formula"
        )
    return total / rows
