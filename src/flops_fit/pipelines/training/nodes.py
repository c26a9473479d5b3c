"""Training nodes: thin adapters over the framework-free `flops_fit.execution`."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

import pandas as pd

from flops_fit.execution import (
    RunStream,
    collect_records,
    loss_curves_table,
    prepare_training,
    results_table,
    run_results_table,
)
from flops_fit.parameters.corpus import CorpusConfig
from flops_fit.parameters.torch_backend import TorchConfig
from flops_fit.parameters.training import TrainingConfig
from flops_fit.schema import validate_plan

log = logging.getLogger(__name__)


def assemble_study_plan(sweep_plan: list[dict[str, Any]], round_plans: list[dict[str, Any]]
                        ) -> list[dict[str, Any]]:
    """Every run of the study: the pilot (`sweep_plan`, round 0) and each later round's runs
    (`round_plans`, written by the next_round pipeline; none before the first)."""
    from flops_fit.study.rounds import check_pilot, pilot_fingerprint, study_plan

    check_pilot(round_plans, pilot_fingerprint(sweep_plan))
    plan = study_plan(sweep_plan, round_plans)
    if round_plans:
        log.info("Study plan: %d runs over %d round(s) (%d in the pilot)", len(plan),
                 1 + max(int(r["round"]) for r in plan), len(sweep_plan))
    return plan


def train_pending_runs(
    study_plan: list[dict[str, Any]],
    existing_runs: Mapping[str, Any],
    training_data: Any,
    training_params: TrainingConfig,
    torch_backend_params: TorchConfig,
    corpus_params: CorpusConfig,
) -> tuple[dict[str, Any], RunStream]:
    """Validate, choose the runs still to do, and return them as a lazy RunStream, with what the
    comparison of the completed runs with the configuration found (`settings_check`).

    The runs execute while the `runs` dataset saves the stream: each record is written to its
    own file the moment its run ends (see flops_fit.datasets.run_store).
    """
    stream = prepare_training(
        study_plan,
        existing_runs,
        training_params,
        backend_sections={"torch": torch_backend_params},
        training_data=training_data,
        corpus_params=corpus_params,
    )
    return stream.settings_check, stream


def tabulate_results(
    study_plan: list[dict[str, Any]], runs: Mapping[str, Any], training_params: TrainingConfig
) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """`results` (one row per experiment_id), `run_results` (one row per replica) and
    `loss_curves` (one row per curve point) from every stored run of the current plan,
    whichever invocation trained it."""
    config = TrainingConfig.from_params(training_params)
    plan = validate_plan(study_plan)
    records, _ = collect_records(runs, plan, config.seeds, config.backend)
    plan_fields = {k for r in plan for k in r}
    results = results_table(records, plan_fields)
    done = int((results["status"] == "completed").sum()) if len(results) else 0
    missing = len(plan) - len(results)
    log.info(
        "Results: %d of %d planned runs completed, %d failed, %d without a result",
        done,
        len(plan),
        len(results) - done,
        missing,
    )
    return results, run_results_table(records), loss_curves_table(records)
