"""Validation nodes: thin adapters over `flops_fit.study.validation`."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

import pandas as pd

from flops_fit.parameters.corpus import CorpusConfig
from flops_fit.parameters.planning import PlanningConfig
from flops_fit.parameters.study import StudyConfig
from flops_fit.parameters.torch_backend import TorchConfig
from flops_fit.parameters.training import TrainingConfig
from flops_fit.pipelines.planning.nodes import study_planner
from flops_fit.pipelines.training.nodes import tabulate_results, train_pending_runs
from flops_fit.study import rounds
from flops_fit.study.validation import plan_validation, score_validation

log = logging.getLogger(__name__)


def plan_validation_runs(
    sweep_plan: list[dict[str, Any]],
    round_plans: list[dict[str, Any]],
    scaling_laws: dict[str, Any],
    bootstrap_draws: pd.DataFrame,
    study_params: StudyConfig,
    data_summary: dict[str, Any],
    training_data: Any,
    planning_params: PlanningConfig,
    training_params: TrainingConfig,
    corpus_params: CorpusConfig,
    torch_backend_params: TorchConfig,
) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """The validation runs at the predicted optimum (and its neighbours), and the prediction."""
    rounds.check_pilot(round_plans, rounds.pilot_fingerprint(sweep_plan))
    plan = rounds.study_plan(sweep_plan, round_plans)
    planner = study_planner(sweep_plan, data_summary, training_data, planning_params,
                            training_params, corpus_params, torch_backend_params, None,
                            as_branches=False)
    records, about = plan_validation(study_params, plan, scaling_laws, bootstrap_draws, planner)
    if not records:
        asked = StudyConfig.from_params(study_params).validation.enabled
        (log.warning if asked else log.info)("No validation run: %s", about["not_planned"])
        return records, about
    prediction = about["prediction"]
    log.info("Validation at %.3g FLOPs (%s): %s predicts N_opt = %.3g, loss %.4g; training %s",
             about["compute_budget"], about["budget_from"], prediction["approach"],
             prediction["n_opt"], prediction["loss"] or float("nan"),
             ", ".join(f"{r['validation_role']} N = {r['model_size']:.3g}" for r in records))
    return records, about


def train_validation_runs(
    validation_plan: list[dict[str, Any]],
    existing_validation_runs: Mapping[str, Any],
    training_data: Any,
    training_params: TrainingConfig,
    torch_backend_params: TorchConfig,
    corpus_params: CorpusConfig,
) -> Any:
    """The validation runs, trained like any run (the training node on their own plan and run
    folder); nothing when no validation run could be planned."""
    if not validation_plan:
        return {}
    _, stream = train_pending_runs(validation_plan, existing_validation_runs, training_data,
                                   training_params, torch_backend_params, corpus_params)
    return stream


def score_validation_runs(
    validation_plan: list[dict[str, Any]],
    validation_target: dict[str, Any],
    validation_runs: Mapping[str, Any],
    scaling_laws: dict[str, Any],
    bootstrap_draws: pd.DataFrame,
    training_params: TrainingConfig,
) -> dict[str, Any]:
    """validation.json: the predicted against the observed loss, and the verdict."""
    results = (tabulate_results(validation_plan, validation_runs, training_params)[0]
               if validation_plan else pd.DataFrame())
    scored = score_validation(validation_plan, results, scaling_laws, bootstrap_draws,
                              validation_target)
    (log.info if scored["passed"] is not False else log.warning)("Validation: %s",
                                                                  scored["verdict"])
    return scored
