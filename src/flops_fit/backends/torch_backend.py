"""The `torch` training backend: the study's model (the built-in u-μP GPT or a plugin) trained on
its data with its loss, by the one training loop of `flops_fit.nn.train`.

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

import json  # noqa: E402
from collections.abc import Mapping  # noqa: E402
from typing import Any  # noqa: E402

from flops_fit.backends.base import RunContext  # noqa: E402
from flops_fit.parameters.torch_backend import TorchConfig  # noqa: E402
from flops_fit.parameters.training import TrainingConfig  # noqa: E402

#: training settings a trunk's steps depend on beyond its checkpoint's run key: its data and
#: its loss (a trunk trained on other data must not be resumed by a branch)
TRUNK_SETTINGS = ("training.data", "data.", "training.loss")


def _check_device(device: str, training: TrainingConfig) -> None:
    """DeviceUnavailableError before any run when the runs train here, on a device this
    machine does not have (each run would fail on it, then be retried)."""
    from flops_fit.nn.runtime import DeviceUnavailableError, resolve_device

    try:
        resolve_device(device)
    except DeviceUnavailableError as exc:
        where = ("training.executor is sequential" if training.executor == "sequential"
                 else "training.dask.cluster is local")
        raise DeviceUnavailableError(
            f"{exc} on this machine, where the runs train ({where}): set "
            "torch_backend.device to auto or cpu, or train where the device is") from None


class TorchBackend:
    """Train the planned model on exactly the planned units of D; report the held-out loss."""

    name = "torch"
    needs_data = True
    trunks_in_checkpoints = True  # a branch starts from its trunk's checkpoint

    def validate_params(self, params: Any) -> TorchConfig:
        return TorchConfig.from_params(params)

    def prepare_study(self, plan: list[Mapping[str, Any]], training: TrainingConfig,
                      params: TorchConfig, training_data: Any, corpus_params: Any):
        """(data, model, loss) for every run, after the contract checks on a probe batch."""
        from flops_fit.planning.trunks import check_branches
        from flops_fit.plugins.contracts import check_plan
        from flops_fit.plugins.study import build_study, plan_context_length

        study = build_study(
            training_data, training, umup=params.umup, corpus_params=corpus_params,
            context_length=plan_context_length(plan), heldout_tokens=params.eval.heldout_tokens)
        check_plan(study, plan)
        check_branches(plan, params.schedule)
        return study.data, study.model, study.loss_path

    def check_machine(self, params: TorchConfig, training: TrainingConfig) -> None:
        """Before a sweep whose runs train on this machine: its device is here."""
        _check_device(TorchConfig.from_params(params).device, training)

    def train(self, record: dict[str, Any], params: Any, ctx: RunContext) -> dict:
        from flops_fit.nn.train import train_run
        from flops_fit.planning.flops import run_flops
        from flops_fit.planning.trunks import is_branch
        from flops_fit.plugins.study import model_kwargs

        config = TorchConfig.from_params(params)
        eid = str(record.get("experiment_id", "run"))
        if ctx.data is None or ctx.model is None or ctx.loss is None:
            raise ValueError(f"{eid}: the torch backend needs the study's data, model and loss "
                             "(RunContext.data, .model, .loss from prepare_study)")
        steps, batch = int(record["num_steps"]), int(record["batch_size"])
        units, per = int(record["num_tokens"]), int(ctx.data.units_per_example)
        if steps * batch * per != units:
            raise ValueError(
                f"{eid}: num_steps·batch_size·units_per_example = {steps}·{batch}·{per} = "
                f"{steps * batch * per} differs from num_tokens = {units} (the plan's D, in "
                f"{ctx.data.unit}); re-plan the sweep"
            )
        trunk = None
        if is_branch(record):
            trunk = self._trunk(record, config, ctx, eid)
        return train_run(
            ctx.model,
            model_kwargs(record),
            data=ctx.data,
            loss=ctx.loss,
            num_steps=steps,
            batch_size=batch,
            flops_per_unit=run_flops(record, 1),
            config=config,
            seed=int(ctx.seed),
            # The plan's own limit: the data may have changed since the plan was made.
            max_epochs=record.get("max_epochs"),
            checkpoint_dir=ctx.checkpoint_dir,
            show_progress=ctx.show_progress,
            name=eid,
            trunk=trunk,
        )

    @staticmethod
    def _trunk(record: dict[str, Any], config: TorchConfig, ctx: RunContext, eid: str):
        """A branch's trunk, after checking that the schedule still places its cooldown where
        planning did."""
        from flops_fit.nn.trunk import TrunkBranch
        from flops_fit.planning.trunks import check_branches

        check_branches([record], config.schedule)
        if ctx.trunk_dir is None:
            raise ValueError(f"{eid} is a branch of trunk {record['trunk_id']}, whose state "
                             "passes between branches through checkpoints: set "
                             "params:training.checkpoint_dir")
        trained_on = tuple(sorted(
            (key, json.dumps(value, sort_keys=True, default=str))
            for key, value in (ctx.settings or {}).items() if key.startswith(TRUNK_SETTINGS)))
        return TrunkBranch(ctx.trunk_dir, str(record["trunk_id"]), int(record["branch_step"]),
                           int(record["warmup_steps"]), int(record["trunk_steps"]), trained_on)

