"""The `torch` training backend: a real u-μP GPT trained on the corpus (flops_fit.nn).

`OMP_WAIT_POLICY=PASSIVE` must be set before torch is imported (OpenMP reads it once, at load):
this module sets it (unless already set) BEFORE importing torch. A worker process that imports
torch through anything else first must set the variable itself, e.g. in the worker's
environment (`dask.distributed.LocalCluster(env={"OMP_WAIT_POLICY": "PASSIVE"})`,
`OMP_WAIT_POLICY=PASSIVE kedro run`). Without it, idle OpenMP threads spin and steal the cores
of the other workers.
"""

from __future__ import annotations

import os

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

from typing import Any  # noqa: E402

from flops_fit.backends.base import RunContext  # noqa: E402
from flops_fit.flops import check_formula  # noqa: E402
from flops_fit.parameters.torch_backend import TorchConfig  # noqa: E402
from flops_fit.shapes import ModelShape  # noqa: E402


class TorchBackend:
    """Train the planned GPT on exactly the planned tokens; report the held-out loss."""

    name = "torch"
    needs_corpus = True

    def validate_params(self, params: Any) -> TorchConfig:
        return TorchConfig.from_params(params)

    def train(self, record: dict[str, Any], params: Any, ctx: RunContext) -> dict:
        from flops_fit.nn.train import train_run

        config = TorchConfig.from_params(params)
        shape = ModelShape.from_record(record)
        eid = str(record.get("experiment_id", "run"))
        steps, batch = int(record["num_steps"]), int(record["batch_size"])
        tokens = int(record["num_tokens"])
        if steps * batch * shape.context_length != tokens:
            raise ValueError(
                f"{eid}: num_steps·batch_size·context_length = {steps}·{batch}·"
                f"{shape.context_length} = {steps * batch * shape.context_length} differs from "
                f"num_tokens = {tokens}; re-plan the sweep"
            )
        if ctx.corpus is None:
            raise ValueError(f"{eid}: the torch backend needs the corpus (RunContext.corpus)")
        if shape.vocab_size < 256:
            raise ValueError(
                f"{eid}: vocab_size {shape.vocab_size} cannot hold byte tokens (needs 256)"
            )
        return train_run(
            shape,
            num_steps=steps,
            batch_size=batch,
            corpus=ctx.corpus,
            config=config,
            seed=int(ctx.seed),
            flops_formula=check_formula(str(record.get("flops_formula", "full"))),
            # The plan's own limit: the corpus may have changed since the plan was made.
            max_epochs=record.get("max_epochs"),
            checkpoint_dir=ctx.checkpoint_dir,
            show_progress=ctx.show_progress,
            name=eid,
        )
