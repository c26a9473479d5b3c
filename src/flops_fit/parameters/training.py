"""`params:training`: which backend trains the runs, how they are executed, seeds and retries.

Defaults equal `conf/base/parameters_training.yml` (tests/parameters/test_defaults.py checks it).
"""

from __future__ import annotations

import os
import re
from typing import Literal

from pydantic import Field, StrictBool, ValidationInfo, field_validator, model_validator

from flops_fit.backends.base import BACKENDS
from flops_fit.fitting.surface.law import CHINCHILLA_APPROACH_3
from flops_fit.parameters.base import (
    Fraction,
    NonNegativeInt,
    NonNegativeNumber,
    PositiveInt,
    PositiveNumber,
    Section,
)
from flops_fit.parameters.plugins import DataPluginParams, ImportPath, ModelPluginParams

EXECUTORS = ("sequential", "dask")

#: what training does with completed results trained under other settings than the current ones
ON_CHANGED_SETTINGS = ("error", "retrain", "reuse")


CLUSTERS = ("local", "address", "slurm")

#: Slurm's --time formats: M, M:S, H:M:S, D-H, D-H:M, D-H:M:S
_WALLTIME = re.compile(r"^(\d+|\d+:\d{1,2}|\d+:\d{1,2}:\d{1,2}|\d+-\d+(:\d{1,2}(:\d{1,2})?)?)$")
#: an sbatch option as dask-jobqueue takes it in job_directives_skip / job_extra_directives
_DIRECTIVE = re.compile(r"^-{1,2}[A-Za-z]")


def _strip_none(value: str | None) -> str | None:
    if value is not None and not value.strip():
        raise ValueError("must be null or a non-empty string")
    return value.strip() if value is not None else None


class SlurmParams(Section):
    """`params:training.dask.slurm`: the Slurm jobs (used when `training.dask.cluster` is `slurm`).

    Each job is one `sbatch` submission that runs `processes` Dask worker processes sharing
    `cores` cores and `memory`; `jobs` such jobs are submitted for the sweep.
    """

    SECTION = "training.dask.slurm"

    queue: str | None = None  # the partition (sbatch -p); null: the cluster's default partition
    account: str | None = None  # sbatch -A; null: the user's default account
    cores: PositiveInt = 1  # cores per job (sbatch --cpus-per-task)
    processes: PositiveInt = 1  # Dask worker processes per job (each gets cores/processes threads)
    memory: str = Field("4GB", min_length=1)  # memory per job (sbatch --mem), e.g. 16GB
    walltime: str = "01:00:00"  # sbatch -t: [D-]HH:MM:SS (longer than the longest run)
    jobs: PositiveInt = 2  # Slurm jobs to submit (workers = jobs * processes)
    job_name: str = Field("flops-fit", min_length=1, pattern=r"^[^\s]+$")  # sbatch -J
    job_extra_directives: list[str] = []  # extra #SBATCH lines, e.g. ["--gres=gpu:1"]
    job_directives_skip: list[str] = []  # #SBATCH options to leave out, e.g. ["--mem"]
    job_script_prologue: list[str] = []  # shell lines before the worker starts (module load ...)
    python: str | None = None  # the python the job runs; null: this process's (the venv's) python
    scheduler_host: str | None = None  # scheduler_options host the nodes reach the driver at
    interface: str | None = None  # network interface for workers and scheduler, e.g. ib0
    log_directory: str | None = None  # job stdout/stderr folder; null: the folder kedro runs in
    local_directory: str | None = None  # worker scratch space on the node, e.g. $TMPDIR

    @field_validator("memory")
    @classmethod
    def _memory(cls, value: str) -> str:
        from dask.utils import parse_bytes

        try:
            size = parse_bytes(value)
        except (ValueError, TypeError):
            size = 0
        if size <= 0:
            raise ValueError("must be a size such as '4GB' or '500MB'")
        return value

    @field_validator("walltime")
    @classmethod
    def _walltime(cls, value: str) -> str:
        if not _WALLTIME.match(value.strip()):
            raise ValueError(
                "must be a Slurm time such as '01:00:00', '2-00:00:00' or '90' (minutes)"
            )
        return value.strip()

    @field_validator("job_extra_directives", "job_directives_skip")
    @classmethod
    def _directives(cls, value: list[str]) -> list[str]:
        for item in value:
            if not isinstance(item, str) or not _DIRECTIVE.match(item.strip()):
                raise ValueError(
                    f"each item must be an sbatch option such as '--gres=gpu:1', not {item!r}"
                )
        return [item.strip() for item in value]

    @field_validator(
        "queue", "account", "python", "scheduler_host", "interface", "log_directory",
        "local_directory",
    )
    @classmethod
    def _optional_text(cls, value: str | None) -> str | None:
        return _strip_none(value)

    @model_validator(mode="after")
    def _processes_fit(self) -> SlurmParams:
        if self.processes > self.cores:
            raise ValueError(
                f"training.dask.slurm.processes ({self.processes}) must not exceed "
                f"training.dask.slurm.cores ({self.cores}): each worker process needs a core"
            )
        return self


class DaskParams(Section):
    """`params:training.dask`: the Dask cluster (used when `executor` is `dask`)."""

    SECTION = "training.dask"

    # local: a LocalCluster here; address: the scheduler at training.scheduler_address;
    # slurm: Slurm jobs through dask-jobqueue (training.dask.slurm)
    cluster: Literal[CLUSTERS] = "local"
    n_workers: Literal["auto"] | PositiveInt = "auto"  # auto: one single-threaded worker per core
    retries: NonNegativeInt = 1
    dashboard_address: str | None = None
    wait_for_workers_seconds: PositiveNumber = 60.0
    slurm: SlurmParams = SlurmParams()

    @property
    def workers(self) -> int:
        if self.n_workers == "auto":
            return max(1, os.cpu_count() or 1)
        return int(self.n_workers)


class SyntheticParams(Section):
    """`params:training.synthetic`: L = (E + A/N^alpha + B/D^beta) * exp(noise_sigma * z)."""

    SECTION = "training.synthetic"

    E: NonNegativeNumber = CHINCHILLA_APPROACH_3["E"]
    A: PositiveNumber = CHINCHILLA_APPROACH_3["A"]
    B: PositiveNumber = CHINCHILLA_APPROACH_3["B"]
    alpha: PositiveNumber = CHINCHILLA_APPROACH_3["alpha"]
    beta: PositiveNumber = CHINCHILLA_APPROACH_3["beta"]
    noise_sigma: NonNegativeNumber = 0.01
    failure_fraction: Fraction = 0.0
    divergence_fraction: Fraction = 0.0
    sleep_seconds: NonNegativeNumber = 0.0

    @property
    def surface(self) -> dict[str, float]:
        return {k: getattr(self, k) for k in CHINCHILLA_APPROACH_3}


class TrainingConfig(Section):
    SECTION = "training"

    backend: str = "torch"  # a name in flops_fit.backends.base.BACKENDS
    executor: Literal[EXECUTORS] = "dask"
    seed: NonNegativeInt = 0
    seeds: PositiveInt = 1
    max_retries: NonNegativeInt = 1
    # a completed result whose settings differ from the current ones (flops_fit.execution.settings):
    # error: stop before training and list the differences; retrain: train it again; reuse: keep it
    on_changed_settings: Literal[ON_CHANGED_SETTINGS] = "error"
    show_progress: StrictBool = True
    # conf/base points this at ${data_root}/06_models/checkpoints; null: no checkpoints
    checkpoint_dir: str | None = Field(None, min_length=1)
    scheduler_address: str | None = None  # executor dask: null starts a LocalCluster here
    # each attempt of a run is stopped and failed after this long (then retried); null: no limit
    run_timeout_seconds: PositiveNumber | None = None
    # warn about a run that has made no training step for this long; null: never
    stall_warning_seconds: PositiveNumber | None = None
    dask: DaskParams = DaskParams()
    synthetic: SyntheticParams = SyntheticParams()
    model: ModelPluginParams = ModelPluginParams()  # null factory: the built-in u-μP GPT
    data: DataPluginParams = DataPluginParams()  # null factory: the training_data catalog entry
    loss: ImportPath = None  # `(outputs, batch) -> scalar tensor`; null: the data's default

    @property
    def runs_here(self) -> bool:
        """Whether the runs train on this machine: sequentially, or on a LocalCluster's
        workers (a scheduler elsewhere or Slurm jobs train them on other machines)."""
        return self.executor == "sequential" or self.dask.cluster == "local"

    @field_validator("backend")
    @classmethod
    def _known_backend(cls, name: str) -> str:
        # Looked up at validation time: tests and plugins register backends at run time.
        if name not in BACKENDS:
            raise ValueError(f"must be one of {sorted(BACKENDS)}")
        return name

    @field_validator("scheduler_address")
    @classmethod
    def _address(cls, value: str | None) -> str | None:
        if value is not None and not value.strip():
            raise ValueError(
                "must be null (start a LocalCluster) or an address such as 'tcp://10.0.0.5:8786'"
            )
        return value.strip() if value else None

    @field_validator("dask")
    @classmethod
    def _cluster_and_address(cls, dask: DaskParams, info: ValidationInfo) -> DaskParams:
        # scheduler_address is declared before dask, so it is validated already
        address = info.data.get("scheduler_address")
        if dask.cluster == "address" and not address:
            raise ValueError(
                "cluster is 'address' but params:training.scheduler_address is null; "
                "give it, e.g. --params training.scheduler_address=tcp://10.0.0.5:8786"
            )
        if dask.cluster == "slurm" and address:
            raise ValueError(
                f"cluster is 'slurm' but params:training.scheduler_address is {address!r}: "
                "the Slurm cluster starts its own scheduler; set one of the two"
            )
        return dask
