"""Executing a sweep: pending runs, seeds, executors, result records and the results tables.

Framework-free: the training pipeline's nodes are thin adapters over these functions, and a
notebook user can call them directly (`prepare_training(plan, {}, params).records()`).
"""

from flops_fit.execution.executors import (
    DaskExecutor,
    ExecutionError,
    RunJob,
    SchedulerLostError,
    SequentialExecutor,
)
from flops_fit.execution.records import build_result_record
from flops_fit.execution.results import (
    collect_records,
    loss_curves_table,
    results_table,
    run_results_table,
)
from flops_fit.execution.run import run_task
from flops_fit.execution.stream import RunStream, TrainingInterrupted
from flops_fit.execution.tasks import (
    RunTask,
    expand_plan,
    partition_key,
    run_seed,
    select_pending,
)
from flops_fit.execution.training import prepare_training

__all__ = [
    "DaskExecutor",
    "ExecutionError",
    "RunJob",
    "RunStream",
    "RunTask",
    "SchedulerLostError",
    "SequentialExecutor",
    "TrainingInterrupted",
    "build_result_record",
    "collect_records",
    "expand_plan",
    "partition_key",
    "prepare_training",
    "loss_curves_table",
    "results_table",
    "run_results_table",
    "run_seed",
    "run_task",
    "select_pending",
]
