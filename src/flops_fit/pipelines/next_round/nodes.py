"""Next-round nodes: thin adapters over the framework-free `flops_fit.study`."""

from __future__ import annotations

import logging
from typing import Any

import pandas as pd

from flops_fit.parameters.corpus import CorpusConfig
from flops_fit.parameters.planning import PlanningConfig
from flops_fit.parameters.reporting import ReportingConfig
from flops_fit.parameters.study import StudyConfig
from flops_fit.parameters.torch_backend import TorchConfig
from flops_fit.parameters.training import TrainingConfig
from flops_fit.pipelines.planning.nodes import study_planner
from flops_fit.study import rounds
from flops_fit.study.design import design_round
from flops_fit.study.target import answer_at

log = logging.getLogger(__name__)


def _seconds_per_flop(analysis_runs: pd.DataFrame) -> float | None:
    """The study's measured training time per FLOP trained (a branch trains only its share of
    its trunk: `trained_flops`; else the run's compute), None before any timed run."""
    if "wall_time_seconds" not in analysis_runs or "compute" not in analysis_runs:
        return None
    done = analysis_runs[analysis_runs["status"] == "completed"]
    seconds = pd.to_numeric(done["wall_time_seconds"], errors="coerce")
    flops = pd.to_numeric(done["compute"], errors="coerce")
    if "trained_flops" in done:
        flops = pd.to_numeric(done["trained_flops"], errors="coerce").fillna(flops)
    ok = seconds.notna() & flops.notna() & (flops > 0)
    return float(seconds[ok].sum() / flops[ok].sum()) if ok.any() and seconds[ok].sum() else None


def _rebranch(design: Any, schedule: Any, plan: list[dict[str, Any]]) -> None:
    """The chosen runs' trunk fields from the chosen runs alone (`planning.trunks.reassign`)."""
    from flops_fit.planning.trunks import reassign

    final = {str(r["experiment_id"]): r for r in reassign(design.records, schedule, plan)}
    for unit in design.units:
        unit.records = [final[str(r["experiment_id"])] for r in unit.records]


def plan_next_round(
    sweep_plan: list[dict[str, Any]],
    round_plans: list[dict[str, Any]],
    analysis_runs: pd.DataFrame,
    scaling_laws: dict[str, Any],
    bootstrap_draws: pd.DataFrame,
    study_params: StudyConfig,
    data_summary: dict[str, Any],
    training_data: Any,
    planning_params: PlanningConfig,
    training_params: TrainingConfig,
    corpus_params: CorpusConfig,
    torch_backend_params: TorchConfig,
) -> dict[str, Any]:
    """The next round's document: its runs, chosen from the fit, or the reason to stop."""
    cfg = StudyConfig.from_params(study_params)
    rounds.check_study(cfg, sweep_plan)
    fingerprint = rounds.pilot_fingerprint(sweep_plan)
    rounds.check_pilot(round_plans, fingerprint)
    rounds.check_target(round_plans, cfg.target_budget)
    plan = rounds.study_plan(sweep_plan, round_plans)
    rounds.check_fit_is_current(plan, set(analysis_runs["experiment_id"].astype(str)))
    k = rounds.current_round(plan) + 1
    answer = answer_at(scaling_laws, bootstrap_draws, cfg.target_budget)
    level = float(scaling_laws["meta"]["confidence_level"])
    budget = rounds.allowance(cfg, plan)
    previous = rounds.previous_assessment(round_plans)
    stop = rounds.stop_before_design(cfg, answer, plan, previous)
    design = None
    if stop is None:
        planning = PlanningConfig.from_params(planning_params)
        planner = study_planner(plan, data_summary, training_data, planning_params,
                                training_params, corpus_params, torch_backend_params, k)
        design = design_round(analysis_runs, scaling_laws, bootstrap_draws, cfg.target_budget,
                              budget, planner, planning.model_sizes.num,
                              planning.model_sizes.span_factor,
                              {str(r["experiment_id"]) for r in plan}, plan)
        if planning.design == "trunks" and design.units:
            _rebranch(design, TorchConfig.from_params(torch_backend_params).schedule, plan)
        stop = rounds.stop_after_design(cfg, design, budget,
                                        rounds.max_compute_binds(cfg, plan))
    doc = rounds.round_document(k, answer, plan, design, stop, level, budget)
    doc["pilot"] = fingerprint
    per_flop = _seconds_per_flop(analysis_runs)
    doc["estimated_training_seconds"] = (doc["trained_flops"] * per_flop
                                         if per_flop is not None else None)
    ratio = f"{answer.ratio:.2f}" if answer.ratio is not None else "none"
    if stop:
        log.info("Study stops after round %d (N_opt(%.3g) interval ratio %s): %s", k - 1,
                 cfg.target_budget, ratio, stop)
    else:
        seconds = doc["estimated_training_seconds"]
        log.info("Round %d: %d runs, %.3g FLOPs to train (allowance %.3g%s); N_opt(%.3g) "
                 "interval ratio %s now, about %.2f expected after it", k, len(doc["runs"]),
                 doc["trained_flops"], budget,
                 f", about {seconds:.0f} s of training one run at a time" if seconds else "",
                 cfg.target_budget, ratio, doc["expected_interval_ratio"] or float("nan"))
        for unit in design.units:
            log.info("  %s", unit.why)
    return doc


def tabulate_study_rounds(sweep_plan: list[dict[str, Any]], round_plans: list[dict[str, Any]],
                          next_round: dict[str, Any]) -> pd.DataFrame:
    """study_rounds.csv: one row per round (see flops_fit.study.rounds.rounds_table)."""
    docs = {int(d["round"]): d for d in round_plans}
    docs[int(next_round["round"])] = next_round  # the document just written wins
    docs = [d for k, d in sorted(docs.items()) if k <= int(next_round["round"])]
    return rounds.rounds_table(rounds.study_plan(sweep_plan, docs), docs)


def plot_study_rounds(study_rounds: pd.DataFrame, study_params: StudyConfig,
                      reporting_params: ReportingConfig):
    """N_opt(C*)'s interval against the study's cumulative training compute."""
    from flops_fit.reporting.figures.study_rounds import study_rounds_figure

    cfg = StudyConfig.from_params(study_params)
    return study_rounds_figure(study_rounds, cfg.target_budget, cfg.precision,
                               ReportingConfig.from_params(reporting_params).style)
