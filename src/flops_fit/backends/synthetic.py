"""The synthetic backend: losses drawn from a known scaling law instead of trained.

    L(N, D) = E + A / N^alpha + B / D^beta,   observed = L · exp(sigma · z),   z ~ N(0, 1)

with N the record's `model_size` (non-embedding parameters) and D its `num_tokens`. The defaults
are Chinchilla's fit (Hoffmann et al. 2022, Approach 3), so the analysis pipeline has a ground
truth to recover. Every random draw comes from the run's own seed (RunContext.seed, derived from
the global seed, the experiment_id and the replica), so a single run reproduces alone and the
sweep's losses do not depend on execution order or on the executor.

For testing the rest of the system, a configured fraction of runs can fail (raise) or diverge
(return a NaN loss), and every run can be made to take `sleep_seconds` of wall time.
"""

from __future__ import annotations

import math
import time
from typing import Any

import numpy as np

from flops_fit.backends.base import RunContext
from flops_fit.fitting.parametric import CHINCHILLA_APPROACH_3, parametric_loss
from flops_fit.flops import training_flops
from flops_fit.shapes import ModelShape

SECTION = "training.synthetic"

#: parameter -> default (Chinchilla's fitted constants, 1% multiplicative noise, no failures)
DEFAULTS: dict[str, float] = {
    **CHINCHILLA_APPROACH_3,
    "noise_sigma": 0.01,
    "failure_fraction": 0.0,
    "divergence_fraction": 0.0,
    "sleep_seconds": 0.0,
}


class SyntheticFailure(RuntimeError):
    """The failure the backend injects on purpose (params:training.synthetic.failure_fraction)."""


def true_loss(n: float, d: float, params: dict[str, Any]) -> float:
    """The noiseless loss surface E + A/N^alpha + B/D^beta."""
    return float(parametric_loss(n, d, {**DEFAULTS, **params}))


def _number(key: str, value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise ValueError(f"params:{SECTION}.{key} must be a finite number, got {value!r}")
    return float(value)


class SyntheticBackend:
    name = "synthetic"
    needs_corpus = False

    def validate_params(self, params: dict[str, Any]) -> None:
        if params is None:
            return
        if not isinstance(params, dict):
            raise ValueError(f"params:{SECTION} must be a mapping, got {type(params).__name__}")
        unknown = sorted(set(params) - set(DEFAULTS))
        if unknown:
            raise ValueError(
                f"unknown key(s) {unknown} in params:{SECTION}; allowed keys: {sorted(DEFAULTS)}"
            )
        p = {**DEFAULTS, **params}
        values = {key: _number(key, p[key]) for key in DEFAULTS}
        for key in ("A", "B", "alpha", "beta"):
            if values[key] <= 0:
                raise ValueError(f"params:{SECTION}.{key} must be positive, got {p[key]!r}")
        for key in ("E", "noise_sigma", "sleep_seconds"):
            if values[key] < 0:
                raise ValueError(f"params:{SECTION}.{key} must be >= 0, got {p[key]!r}")
        for key in ("failure_fraction", "divergence_fraction"):
            if not 0 <= values[key] <= 1:
                raise ValueError(f"params:{SECTION}.{key} must be in [0, 1], got {p[key]!r}")

    def train(self, record: dict[str, Any], params: dict[str, Any], ctx: RunContext) -> dict:
        p = {**DEFAULTS, **(params or {})}
        n = float(record["model_size"])
        d = float(record["num_tokens"])
        if not (n > 0 and d > 0):
            raise ValueError(f"model_size and num_tokens must be positive, got N={n}, D={d}")
        # A fixed number of draws in a fixed order: the run's outcome depends on its seed only.
        rng = np.random.default_rng(ctx.seed)
        u_fail, u_diverge = rng.random(2)
        z_final, z_train = rng.standard_normal(2)
        if p["sleep_seconds"] > 0:
            time.sleep(float(p["sleep_seconds"]))
        if u_fail < p["failure_fraction"]:
            raise SyntheticFailure(
                f"injected failure (params:{SECTION}.failure_fraction={p['failure_fraction']})"
            )
        loss = true_loss(n, d, p)
        sigma = float(p["noise_sigma"])
        final_loss = loss * math.exp(sigma * z_final)
        train_loss = loss * math.exp(sigma * z_train)
        if u_diverge < p["divergence_fraction"]:
            final_loss = train_loss = math.nan
        shape = ModelShape.from_record(record)
        tokens = int(record["num_tokens"])
        return {
            "final_loss": final_loss,
            "train_loss": train_loss,
            "actual_flops": training_flops(shape, tokens, record.get("flops_formula", "full")),
            "tokens_seen": tokens,
            "true_loss": loss,
        }
