"""The model: a plain PyTorch MLP whose size is set by one integer, `width`.

flops-fit calls `make_mlp(**kwargs, width=w)` under `torch.device("meta")` to count the
parameters of each candidate width (no memory, no weights), so the factory only builds layers:
it must not read data or tensor values while constructing the model.
"""

from __future__ import annotations

from torch import Tensor, nn


class MLP(nn.Module):
    """`depth` hidden layers of `width` GELU units, then a linear classifier."""

    def __init__(self, width: int, depth: int, in_features: int, num_classes: int):
        super().__init__()
        layers: list[nn.Module] = []
        fan_in = in_features
        for _ in range(depth):
            layers += [nn.Linear(fan_in, width), nn.GELU()]
            fan_in = width
        layers.append(nn.Linear(fan_in, num_classes))
        self.net = nn.Sequential(*layers)

    def forward(self, inputs: Tensor) -> Tensor:
        return self.net(inputs)  # (batch, num_classes) logits


def make_mlp(width: int, depth: int = 2, in_features: int = 40, num_classes: int = 10) -> nn.Module:
    """The model of one planned size. N (what the scaling law counts) is every parameter here:
    an MLP has no embedding tables, so flops-fit's default count (all parameters except those
    of `nn.Embedding` modules) is the whole model, width² · (depth − 1) + O(width)."""
    if width < 1 or depth < 1:
        raise ValueError(f"width ({width}) and depth ({depth}) must be at least 1")
    return MLP(width, depth, in_features, num_classes)
