"""The synthetic backend: losses drawn from a known scaling law instead of trained.

    L(N, D) = E + A / N^alpha + B / D^beta,   observed = L · exp(sigma · z),   z ~ N(0, 1)

with N the record's `model_size` (non-embedding parameters) and D its `num_tokens`. The defaults
are Chinchilla's fit (Hoffmann et al. 2022, Approach 3), so the analysis pipeline has a ground
truth to recover. Every random draw comes from the run's own seed (RunContext.seed, derived from
the global seed, the experiment_id and the replica), so a single run reproduces alone and the
sweep's losses do not depend on execution order or on the executor.

For testing the rest of the system, a configured fraction of runs can fail (raise) or diverge
(return a NaN loss), and every run can be made to take `sleep_seconds` of wall time. The
parameters are `params:training.synthetic` (`flops_fit.parameters.training.SyntheticParams`).
"""

from __future__ import annotations

import math
import time
from typing import Any

import numpy as np

from flops_fit.backends.base import RunContext
from flops_fit.fitting.surface.law import parametric_loss
from flops_fit.parameters.training import SyntheticParams
from flops_fit.planning.flops import run_flops


class SyntheticFailure(RuntimeError):
    """The failure the backend injects on purpose (params:training.synthetic.failure_fraction)."""


def true_loss(n: float, d: float, params: SyntheticParams | dict[str, Any] | None = None) -> float:
    """The noiseless loss surface E + A/N^alpha + B/D^beta."""
    return float(parametric_loss(n, d, SyntheticParams.from_params(params).surface))


class SyntheticBackend:
    name = "synthetic"
    needs_data = False
    loss_unit = "nats"  # its losses stand for a language model's cross entropy (Chinchilla's)

    def validate_params(self, params: Any) -> SyntheticParams:
        return SyntheticParams.from_params(params)

    def train(self, record: dict[str, Any], params: Any, ctx: RunContext) -> dict:
        p = SyntheticParams.from_params(params)
        n = float(record["model_size"])
        d = float(record["num_tokens"])
        if not (n > 0 and d > 0):
            raise ValueError(f"model_size and num_tokens must be positive, got N={n}, D={d}")
        # A fixed number of draws in a fixed order: the run's outcome depends on its seed only.
        rng = np.random.default_rng(ctx.seed)
        u_fail, u_diverge = rng.random(2)
        z_final, z_train = rng.standard_normal(2)
        if p.sleep_seconds > 0:
            time.sleep(p.sleep_seconds)
        if u_fail < p.failure_fraction:
            raise SyntheticFailure(
                f"injected failure (params:training.synthetic.failure_fraction="
                f"{p.failure_fraction})"
            )
        loss = true_loss(n, d, p)
        final_loss = loss * math.exp(p.noise_sigma * z_final)
        train_loss = loss * math.exp(p.noise_sigma * z_train)
        if u_diverge < p.divergence_fraction:
            final_loss = train_loss = math.nan
        tokens = int(record["num_tokens"])
        return {
            "final_loss": final_loss,
            "train_loss": train_loss,
            "actual_flops": run_flops(record, tokens),
            "tokens_seen": tokens,
            "true_loss": loss,
        }
