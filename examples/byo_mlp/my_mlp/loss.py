"""The loss: label-smoothed cross entropy, `(outputs, batch) -> scalar tensor`.

flops-fit calls `loss(model(batch["inputs"]), batch)` in training and on the held-out set.
Optional attributes refine the held-out evaluation and the report:
  per_example(outputs, batch) -> (B,) tensor: the same loss for each example, so the held-out
      loss gets a standard error over examples (without it: over evaluation batches);
  metrics(outputs, batch) -> {name: (B,) tensor}: averaged over the held-out set and stored
      with every run as `heldout_<name>` (here heldout_accuracy and heldout_nll);
  unit: what the loss measures, named in the results and the report ("nats" here; without it
      the report says just "loss").
"""

from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor

SMOOTHING = 0.05  # probability mass spread evenly over all classes


def _per_example(outputs: Tensor, batch: dict[str, Tensor]) -> Tensor:
    # float32 even under bfloat16 autocast: the loss is the measured quantity
    return F.cross_entropy(
        outputs.float(), batch["targets"], label_smoothing=SMOOTHING, reduction="none"
    )


def smoothed_cross_entropy(outputs: Tensor, batch: dict[str, Tensor]) -> Tensor:
    """Mean label-smoothed cross entropy (nats per example) of (B, K) logits."""
    return _per_example(outputs, batch).mean()


def _metrics(outputs: Tensor, batch: dict[str, Tensor]) -> dict[str, Tensor]:
    targets = batch["targets"]
    return {
        "accuracy": (outputs.argmax(dim=-1) == targets).float(),
        "nll": F.cross_entropy(outputs.float(), targets, reduction="none"),  # unsmoothed
    }


smoothed_cross_entropy.per_example = _per_example
smoothed_cross_entropy.metrics = _metrics
smoothed_cross_entropy.unit = "nats"
