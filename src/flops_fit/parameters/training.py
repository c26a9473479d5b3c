"""`params:training`: which backend trains the runs, how they are executed, seeds and retries.

Defaults equal `conf/base/parameters_training.yml` (tests/parameters/test_defaults.py checks it).
"""

from __future__ import annotations

import os
from typing import Literal

from pydantic import Field, StrictBool, field_validator

from flops_fit.backends.base import BACKENDS
from flops_fit.fitting.surface import CHINCHILLA_APPROACH_3
from flops_fit.parameters.base import (
    Fraction,
    NonNegativeInt,
    NonNegativeNumber,
    PositiveInt,
    PositiveNumber,
    Section,
)

EXECUTORS = ("sequential", "dask")


class DaskParams(Section):
    """`params:training.dask`: the Dask cluster (used when `executor` is `dask`)."""

    SECTION = "training.dask"

    n_workers: Literal["auto"] | PositiveInt = "auto"  # auto: one single-threaded worker per core
    retries: NonNegativeInt = 1
    dashboard_address: str | None = None
    wait_for_workers_seconds: PositiveNumber = 60.0

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
    show_progress: StrictBool = True
    # conf/base points this at ${data_root}/06_models/checkpoints; null: no checkpoints
    checkpoint_dir: str | None = Field(None, min_length=1)
    scheduler_address: str | None = None  # executor dask: null starts a LocalCluster here
    dask: DaskParams = DaskParams()
    synthetic: SyntheticParams = SyntheticParams()

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
