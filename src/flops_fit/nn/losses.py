"""Cross-entropy losses: the fused kernel, and the built-in losses of the plugin contract.

Next-token cross entropy is fused for speed on small vocabularies.

`F.cross_entropy` runs log_softmax forward and a separate, slow log_softmax backward kernel over
the (tokens × vocab) logits; for the smallest models of a CPU sweep that is ~10% of a training
step. This version keeps the softmax from the forward pass and turns it into the gradient in
place: softmax(z) − onehot(y), scaled by the incoming gradient / tokens. Same value and gradient
(tests/nn/test_losses.py); one pass less over the logits.
"""

from __future__ import annotations

import torch
from torch import Tensor


class _SoftmaxCrossEntropy(torch.autograd.Function):
    @staticmethod
    def forward(ctx, logits: Tensor, targets: Tensor) -> Tensor:
        probs = torch.softmax(logits, dim=-1)
        # p_y underflows only for a logit gap above ~87 nats (float32); clamp for safety
        loss = -probs.gather(1, targets[:, None]).clamp_min(1e-30).log().mean()
        ctx.save_for_backward(probs, targets)
        return loss

    @staticmethod
    def backward(ctx, grad_loss: Tensor) -> tuple[Tensor, None]:
        probs, targets = ctx.saved_tensors
        scale = grad_loss / probs.shape[0]
        grad = probs.mul_(scale)  # the saved softmax becomes the gradient (backward runs once)
        grad.scatter_add_(1, targets[:, None], (-scale).to(grad.dtype).expand(len(targets), 1))
        return grad, None


def cross_entropy(logits: Tensor, targets: Tensor) -> Tensor:
    """Mean cross entropy (nats) of (N, V) logits against (N,) integer targets."""
    return _SoftmaxCrossEntropy.apply(logits, targets)


# The built-in losses of the plugin contract: `(outputs, batch) -> scalar tensor` (mean nats),
# with `per_example` for the held-out standard error, `unit` (what the value measures, named in
# the results and the report) and, for classifiers, `metrics`.


def next_token_cross_entropy(outputs: Tensor, batch: dict[str, Tensor]) -> Tensor:
    """Mean next-token cross entropy (nats/token) of (B, T, V) logits, float32 under autocast."""
    return cross_entropy(outputs.flatten(0, 1).float(), batch["targets"].flatten())


def _next_token_per_example(outputs: Tensor, batch: dict[str, Tensor]) -> Tensor:
    """(B,) mean loss of each sequence: tokens within a window are correlated, so the
    standard error is taken over windows."""
    targets = batch["targets"]
    losses = torch.nn.functional.cross_entropy(
        outputs.flatten(0, 1).float(), targets.flatten(), reduction="none"
    )
    return losses.view(len(targets), -1).mean(dim=1)


def classification_cross_entropy(outputs: Tensor, batch: dict[str, Tensor]) -> Tensor:
    """Mean cross entropy (nats/example) of (B, K) logits against (B,) integer labels."""
    return cross_entropy(outputs.float(), batch["targets"].flatten())


def _classification_per_example(outputs: Tensor, batch: dict[str, Tensor]) -> Tensor:
    return torch.nn.functional.cross_entropy(
        outputs.float(), batch["targets"].flatten(), reduction="none"
    )


def _classification_metrics(outputs: Tensor, batch: dict[str, Tensor]) -> dict[str, Tensor]:
    return {"accuracy": (outputs.argmax(dim=-1) == batch["targets"].flatten()).float()}


next_token_cross_entropy.per_example = _next_token_per_example
next_token_cross_entropy.unit = "nats"
classification_cross_entropy.per_example = _classification_per_example
classification_cross_entropy.unit = "nats"
classification_cross_entropy.metrics = _classification_metrics
