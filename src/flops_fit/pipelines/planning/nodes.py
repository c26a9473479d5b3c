"""Planning nodes: thin adapters from parameters and the catalog to the framework-free
`flops_fit.planning.sweep` (sizes, D), `flops_fit.plugins` (model, data, loss) and `flops_fit.planning.wall_time`."""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import pandas as pd

from flops_fit.parameters.corpus import CorpusConfig
from flops_fit.parameters.planning import PlanningConfig
from flops_fit.parameters.torch_backend import TorchConfig
from flops_fit.parameters.training import TrainingConfig
from flops_fit.planning import wall_time
from flops_fit.planning.sweep import StudyModel, budget_tag, plan_sweep, summarise_plan
from flops_fit.planning.trunks import is_branch
from flops_fit.schema import PLAN_FIELDS, TRUNK_PLAN_FIELDS
from flops_fit.study.rounds import check_pilot, pilot_fingerprint

log = logging.getLogger(__name__)


def _study(training_data: Any, training: TrainingConfig, planning: PlanningConfig,
           corpus: CorpusConfig, torch_backend: TorchConfig):
    from flops_fit.plugins.study import build_study

    training = TrainingConfig.from_params(training)
    planning = PlanningConfig.from_params(planning)
    torch_backend = TorchConfig.from_params(torch_backend)
    corpus = CorpusConfig.from_params(corpus)
    return build_study(training_data, training, umup=torch_backend.umup, corpus_params=corpus,
                       context_length=planning.model_family.context_length,
                       heldout_tokens=torch_backend.eval.heldout_tokens)


def summarise_data(training_data: Any, corpus_params: CorpusConfig,
                   training_params: TrainingConfig, planning_params: PlanningConfig,
                   torch_backend_params: TorchConfig) -> dict[str, Any]:
    """What the study trains on: the unit of D, the training set's size and the held-out set."""
    from flops_fit.plugins.contracts import check_data

    study = _study(training_data, training_params, planning_params, corpus_params,
                   torch_backend_params)
    check_data(study, PlanningConfig.from_params(planning_params).batch_size)
    data = study.data
    heldout = data.heldout()
    summary = {
        "source": study.data_where,
        "data_type": type(data).__name__,
        "unit": data.unit,
        "units_per_example": int(data.units_per_example),
        "train_units": data.train_units,
        "heldout_examples": int(len(heldout["inputs"])),
        "heldout_units": int(heldout["targets"].numel()),
        "default_loss": getattr(data, "default_loss", None),
        "loss": study.loss_path,
    }
    if hasattr(data, "split"):  # the byte corpus: its split, as the corpus knows it
        from flops_fit.data.corpus import corpus_summary

        summary.update(corpus_summary(data.split))
    log.info("Data: %s training %s (%s), %d held-out examples, from %s",
             "fresh" if data.train_units is None else f"{data.train_units}", data.unit,
             summary["data_type"], summary["heldout_examples"], study.data_where)
    return summary


def choose_compute_budgets(planning_params: PlanningConfig) -> list[float]:
    budgets = PlanningConfig.from_params(planning_params).compute_budgets.budgets()
    log.info("Compute budgets: %s FLOPs", ", ".join(budget_tag(b) for b in budgets))
    return list(budgets)


def plan_isoflop_sweep(
    compute_budgets: list[float],
    data_summary: dict[str, Any],
    training_data: Any,
    planning_params: PlanningConfig,
    training_params: TrainingConfig,
    corpus_params: CorpusConfig,
    torch_backend_params: TorchConfig,
    round_plans: Sequence[Mapping[str, Any]] = (),
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """One record per run (see schema.PLAN_FIELDS), and the target sizes dropped with reasons.

    With a plugin model, a measured FLOP count or the torch backend, the model, data and loss
    are probed here first (flops_fit.plugins.contracts), so a broken plugin fails at planning.
    A steered study's rounds (`round_plans`) were planned from its pilot: a pilot these
    parameters would plan differently is refused here, before `sweep_plan` is written, so the
    plan on disk keeps matching the runs the study trained.
    """
    cfg = PlanningConfig.from_params(planning_params).with_budgets(compute_budgets)
    training = TrainingConfig.from_params(training_params)
    model, study = study_model(cfg, data_summary, training_data, training, corpus_params,
                               torch_backend_params)
    schedule = TorchConfig.from_params(torch_backend_params).schedule
    records, dropped = plan_sweep(cfg, model.train_units, model, schedule)
    check_pilot(round_plans or [], pilot_fingerprint(records),
                pilot="the one the planning parameters plan now (sweep_plan is left as it was)")
    if study is not None and training.backend == "torch":
        from flops_fit.plugins.contracts import check_plan

        report = check_plan(study, records)
        log.info("Plugins checked on a probe batch: %d models build, loss %.4g on the smallest",
                 report["models"], report.get("probe_loss", float("nan")))
    return records, dropped


def study_model(cfg: PlanningConfig, data_summary: dict[str, Any], training_data: Any,
                training: TrainingConfig, corpus_params: CorpusConfig,
                torch_backend_params: TorchConfig, targets: list[float] | None = None):
    """(StudyModel, the plugin study or None): how planning turns a target size into a run.

    The built-in GPT under its analytic count needs no torch. Otherwise the data, and the
    smallest of `targets` (default: every budget's planned targets) with the loss, are checked on
    a probe batch before any FLOP is counted, so a broken plugin fails at planning.
    """
    from flops_fit.plugins.sizing import FlopsPerUnit, resolve_formula, sizer_for

    train_units = data_summary.get("train_units") if cfg.max_epochs is not None else None
    formula = resolve_formula(cfg.flops_formula, training.model.builtin)
    plugin_model = not training.model.builtin
    if not (plugin_model or formula == "measured" or training.backend == "torch"):
        return StudyModel.builtin(cfg, train_units), None
    from flops_fit.plugins.contracts import check_data, check_model_on_batch

    study = _study(training_data, training, cfg, corpus_params, torch_backend_params)
    sizer = sizer_for(study.model, cfg.model_family)
    batch = check_data(study, cfg.batch_size)
    if targets is None:
        targets = [t for b in cfg.compute_budgets.budgets() for t in cfg.targets(b)]
    check_model_on_batch(study, sizer.model_for(float(min(targets))).kwargs, batch)
    probe = {k: v[:1] for k, v in batch.items()} if formula == "measured" else None
    flops = FlopsPerUnit(sizer, formula, probe, study.loss_fn() if probe else None,
                         int(study.data.units_per_example))
    model = StudyModel(sizer, flops, formula, study.data.unit,
                       int(study.data.units_per_example), train_units,
                       _loss_unit(study, training.backend))
    return model, study


def study_planner(sweep_plan: list[dict[str, Any]], data_summary: dict[str, Any],
                  training_data: Any, planning_params: PlanningConfig,
                  training_params: TrainingConfig, corpus_params: CorpusConfig,
                  torch_backend_params: TorchConfig, round_index: int | None,
                  as_branches: bool = True) -> Callable[[float, Any], list[dict[str, Any]]]:
    """(budget, target sizes) -> planned run records, exactly as planning plans the pilot's.

    Under `planning.design: trunks` the runs are branches of the study's trunks (a size the
    study trained already extends its trunk); `as_branches=False` plans runs of their own at
    exactly the target sizes (a validation run)."""
    from flops_fit.planning.sweep import plan_budget
    from flops_fit.planning.trunks import assign_trunks

    cfg = PlanningConfig.from_params(planning_params)
    schedule = TorchConfig.from_params(torch_backend_params).schedule
    branches = cfg.design == "trunks" and as_branches
    if cfg.design == "trunks" and not as_branches:
        cfg = cfg.model_copy(update={"design": "points"})
    smallest = min(float(r["model_size"]) for r in sweep_plan)
    model, _ = study_model(cfg, data_summary, training_data,
                           TrainingConfig.from_params(training_params), corpus_params,
                           torch_backend_params, targets=[smallest])

    def planner(budget: float, targets) -> list[dict[str, Any]]:
        records, dropped = plan_budget(cfg, float(budget), model, list(targets), round_index or 0)
        for d in dropped:
            log.debug("Budget %.3g: target N=%.3g dropped (%s)", budget,
                      d["target_model_size"], d["reason"])
        # a candidate's trunk fields price it; the chosen runs are branched anew together
        # (planning.trunks.reassign), so a new trunk's warm-up comes from its own runs
        return assign_trunks(records, schedule, sweep_plan) if branches else records

    return planner


def _loss_unit(study: Any, backend: str) -> str:
    """What the runs' loss will measure: a backend that makes its own loss declares its unit
    (the synthetic backend's Chinchilla surface: nats), else the study's loss declares it."""
    from flops_fit.backends.base import get_backend

    declared = getattr(get_backend(backend), "loss_unit", None)
    return declared if isinstance(declared, str) and declared else study.loss_unit()


def estimate_training_time(
    sweep_plan: list[dict[str, Any]],
    training_data: Any,
    planning_params: PlanningConfig,
    training_params: TrainingConfig,
    corpus_params: CorpusConfig,
    torch_backend_params: TorchConfig,
) -> dict[str, Any]:
    """The sweep's wall time: a short timing probe of the planned models on this machine."""
    cfg = PlanningConfig.from_params(planning_params)
    training = TrainingConfig.from_params(training_params)
    workers = 1
    if training.executor == "dask":
        dask = training.dask
        workers = (dask.slurm.jobs * dask.slurm.processes if dask.cluster == "slurm"
                   else dask.workers if dask.cluster == "local" and not training.scheduler_address
                   else 1)
    if training.backend == "synthetic":
        seconds = [training.synthetic.sleep_seconds] * len(sweep_plan)
        return {"method": "synthetic backend: params:training.synthetic.sleep_seconds per run",
                "training_seconds_one_worker": float(sum(seconds)), "workers": workers,
                "estimated_wall_seconds": wall_time.schedule_seconds(seconds, workers)}
    if cfg.timing_probe_steps == 0 or training.backend != "torch":
        return wall_time.estimate_from_throughput(sweep_plan, cfg.throughput_flops_per_second,
                                                  workers)
    study = _study(training_data, training, cfg, corpus_params, torch_backend_params)
    probed = wall_time.probe_seconds(study, sweep_plan, cfg.timing_probe_steps,
                                          TorchConfig.from_params(torch_backend_params))
    return wall_time.estimate(sweep_plan, probed, workers)


def tabulate_sweep_plan(sweep_plan: list[dict[str, Any]]) -> pd.DataFrame:
    """The plan as a spreadsheet-friendly table with a stable column order."""
    from flops_fit.jsonsafe import flat_cells

    columns = list(PLAN_FIELDS)
    if any(is_branch(r) for r in sweep_plan):
        columns += list(TRUNK_PLAN_FIELDS)
    return pd.DataFrame.from_records(flat_cells(sweep_plan), columns=columns)


def summarise_sweep_plan(
    sweep_plan: list[dict[str, Any]],
    dropped_model_sizes: list[dict[str, Any]],
    training_time_estimate: dict[str, Any],
) -> dict[str, Any]:
    """Runs per budget, total FLOPs, estimated wall time and every dropped size with its reason."""
    summary = summarise_plan(sweep_plan, dropped_model_sizes, training_time_estimate)
    log.info(
        "Sweep plan: %d runs over %d budgets, %.3g FLOPs in all, about %.0f s of training on "
        "%d worker(s) (%s); %d target sizes dropped",
        summary["runs"], summary["budgets"], summary["total_planned_flops"],
        summary["estimated_wall_seconds"], training_time_estimate.get("workers", 1),
        training_time_estimate.get("method"), len(dropped_model_sizes),
    )
    if summary["design"] == "trunks":
        log.info("Trunks: %d model sizes trained once each, %.1f branches per trunk, %d runs of "
                 "their own; %.3g FLOPs trained, %.0f%% of the %.3g FLOPs of the same runs one by "
                 "one", summary["trunks"], summary["branches_per_trunk"],
                 summary["runs_of_their_own"], summary["trained_flops"],
                 100 * summary["trained_share"], summary["one_by_one_flops"])
    return summary
