"""The fused cross entropy equals torch's, value and gradient."""

import torch
import torch.nn.functional as F

from flops_fit.nn.losses import cross_entropy


def test_fused_cross_entropy_matches_torch():
    g = torch.Generator().manual_seed(0)
    logits = (3 * torch.randn(300, 256, generator=g)).requires_grad_()
    ref = logits.detach().clone().requires_grad_()
    targets = torch.randint(0, 256, (300,), generator=g)
    loss, ref_loss = cross_entropy(logits, targets), F.cross_entropy(ref, targets)
    torch.testing.assert_close(loss, ref_loss, rtol=1e-6, atol=1e-6)
    (2.5 * loss).backward()
    (2.5 * ref_loss).backward()
    torch.testing.assert_close(logits.grad, ref.grad, rtol=1e-5, atol=1e-8)
