"""The interface every training backend implements, and the registry that names them.

Backends are imported lazily so the synthetic study never imports torch.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

#: backend name -> "module:Class"
BACKENDS: dict[str, str] = {
    "synthetic": "flops_fit.backends.synthetic:SyntheticBackend",
    "torch": "flops_fit.backends.torch_backend:TorchBackend",
}


@dataclass
class RunContext:
    """What a backend gets besides the plan record and its parameters."""

    seed: int
    data: Any = None  # the study's DataSource (flops_fit.plugins.data), for backends that train
    model: Any = None  # the study's ModelPlugin (an import path and kwargs, resolved here)
    loss: str | None = None  # the loss's import path
    checkpoint_dir: Path | None = None  # a folder this run may use for a resumable checkpoint
    trunk_dir: Path | None = None  # a branch: its trunk's checkpoint folder (flops_fit.nn.trunk)
    settings: dict[str, Any] | None = None  # what the run is trained under (execution.settings)
    show_progress: bool = True


@runtime_checkable
class TrainingBackend(Protocol):
    name: str
    needs_data: bool  # True: prepare_study gives the runs their data, model and loss

    def validate_params(self, params: Any) -> Any:
        """The backend's parameters validated (e.g. its typed model), before any run; raise
        ValueError naming `params:<section>.<key>` for a bad one. What it returns is what
        `train` gets (it is pickled to Dask workers)."""

    # Optional: `prepare_study(plan, training, backend_params, training_data, corpus_params)`
    # returns (data, model, loss) for every run, after checking their contracts on a probe
    # batch (flops_fit.plugins.contracts), before any run starts.
    # Optional: `loss_unit`, what the losses it reports measure when it makes them itself
    # rather than with the study's loss (the synthetic backend: "nats").

    def train(self, record: dict[str, Any], params: Any, ctx: RunContext) -> dict:
        """Train one planned run; return at least final_loss, train_loss, actual_flops and
        tokens_seen (extra metrics are kept in the result record). Raise on failure."""


def get_backend(name: str) -> TrainingBackend:
    if name not in BACKENDS:
        raise ValueError(
            f"params:training.backend must be one of {sorted(BACKENDS)}, got {name!r}"
        )
    module_name, cls_name = BACKENDS[name].split(":")
    return getattr(importlib.import_module(module_name), cls_name)()
