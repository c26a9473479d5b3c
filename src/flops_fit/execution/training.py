"""The training stage as plain functions: validate, choose pending runs, return a RunStream.

    stream = prepare_training(plan, existing_runs, {"backend": "synthetic"})
    records = stream.records()          # or hand it to RunPartitionsDataset.save

Everything that can be wrong (the plan, the backend or executor name, the backend's
parameters, the model, data and loss plugins on a probe batch) raises here, before any run
starts.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

from flops_fit.backends.base import get_backend
from flops_fit.execution.executors import RunJob, make_executor
from flops_fit.execution.settings import (
    SettingsChangedError,
    changed_settings_message,
    describe_changes,
    settings_check_document,
    training_settings,
)
from flops_fit.execution.stream import RunStream
from flops_fit.execution.tasks import expand_plan, select_pending
from flops_fit.parameters.training import TrainingConfig
from flops_fit.planning.sweep import PlanningError
from flops_fit.planning.trunks import is_branch
from flops_fit.plugins.models import BUILTIN_GPT
from flops_fit.schema import validate_plan

log = logging.getLogger(__name__)


def backend_section(config: TrainingConfig, sections: Mapping[str, Any] | None) -> tuple[str, Any]:
    """(`params:` name, values) of the backend's own parameters.

    The synthetic backend reads `params:training.synthetic`; any other backend reads the
    top-level section given for it in `sections`, e.g. {"torch": params:torch_backend}.
    """
    if config.backend == "synthetic":
        return "training.synthetic", config.synthetic
    sections = sections or {}
    return f"{config.backend}_backend", sections.get(config.backend)


def check_planned_model(records: list[dict[str, Any]], config: TrainingConfig) -> None:
    """PlanningError unless the plan was made for the model the configuration trains.

    A plan made under one ``--env`` and trained under another would otherwise train (or, on the
    synthetic backend, draw losses for) a model the configuration never names, and store the
    results as this study's.
    """
    configured = config.model.factory or BUILTIN_GPT
    planned = sorted({str(r["model_factory"]) for r in records if r.get("model_factory")})
    if planned and planned != [configured]:
        raise PlanningError(
            f"the sweep plan was made for the model {', '.join(planned)}, but "
            f"params:training.model.factory trains {configured} (was the plan made under "
            "another --env?): run the planning pipeline again with this configuration")


def prepare_training(
    plan: Any,
    existing_runs: Mapping[str, Any] | None,
    training_params: Mapping[str, Any] | None,
    backend_sections: Mapping[str, Any] | None = None,
    training_data: Any = None,
    corpus_params: Mapping[str, Any] | None = None,
    client: Any = None,
) -> RunStream:
    """Validate everything, pick the pending runs, and return them as a lazy RunStream."""
    config = TrainingConfig.from_params(training_params)
    records = validate_plan(plan)
    check_planned_model(records, config)
    backend = get_backend(config.backend)
    section, backend_params = backend_section(config, backend_sections)
    backend_params = backend.validate_params(backend_params)
    executor = make_executor(config, client=client)
    branches = sum(1 for r in records if is_branch(r))
    if branches and config.checkpoint_dir is None and getattr(backend, "trunks_in_checkpoints",
                                                              False):
        raise ValueError(
            f"the sweep plan holds {branches} branch(es) of trunks (planning.design: trunks), "
            "whose state passes from one branch to the next through checkpoints: set "
            "params:training.checkpoint_dir")

    data = model = loss = None
    prepare = getattr(backend, "prepare_study", None)
    if getattr(backend, "needs_data", False) and callable(prepare):
        # The plugin contracts are checked here, on a probe batch, before any run starts; and
        # before selection, because the data and its held-out set are part of what a stored
        # result was trained on.
        data, model, loss = prepare(records, config, backend_params, training_data,
                                    corpus_params)
    check_machine = getattr(backend, "check_machine", None)
    if config.runs_here and callable(check_machine):
        # runs trained here fail alike on what this machine lacks (a device): say it once, now;
        # workers elsewhere (Slurm, a remote scheduler) are left to their own machines
        check_machine(backend_params, config)
    settings = training_settings(config, backend_params, data, loss)

    tasks = expand_plan(records, config.seeds, config.seed)
    pending, report = select_pending(tasks, existing_runs, config.backend, config.max_retries,
                                     settings, config.on_changed_settings)
    for key, why in report.problems:
        log.warning("Stored run %s is not usable and will be run again: %s", key, why)
    if report.unrecorded:
        log.info("%d completed run(s) were stored without their training settings: only their "
                 "plan fields, seed and reported learning rate are compared with the "
                 "configuration", report.unrecorded)
    if report.changed:
        if config.on_changed_settings == "error":
            raise SettingsChangedError(
                changed_settings_message(report.changed, report.completed))
        differences = "; ".join(describe_changes(report.changed))
        if config.on_changed_settings == "reuse":
            log.warning("Reusing %d completed run(s) trained under other settings "
                        "(training.on_changed_settings: reuse): %s",
                        len(report.changed), differences)
        else:
            log.warning("Training again %d completed run(s) trained under other settings "
                        "(training.on_changed_settings: retrain): %s",
                        len(report.changed), differences)
    log.info("Training: %s", report.summary())

    job = RunJob(
        backend_name=config.backend,
        backend_params=backend_params,
        data=data,
        model=model,
        loss=loss,
        checkpoint_root=config.checkpoint_dir,
        run_timeout_seconds=config.run_timeout_seconds,
        stall_warning_seconds=config.stall_warning_seconds,
        show_progress=config.show_progress and config.executor == "sequential",
    )
    log.debug("Backend parameters (params:%s): %s", section, backend_params)
    check = settings_check_document(config.on_changed_settings, report.completed, report.changed)
    return RunStream(pending, executor, job, show_progress=config.show_progress,
                     settings_check=check)
