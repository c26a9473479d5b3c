"""`params:training`, validated once before any run starts; every error names its key."""

from __future__ import annotations

import math
import os
from dataclasses import dataclass, field
from typing import Any

SECTION = "training"
EXECUTORS = ("sequential", "dask")


class TrainingConfigError(ValueError):
    """A training parameter is invalid; the message names `params:training.<key>`."""


def _check_keys(section: str, given: Any, allowed: set[str]) -> dict[str, Any]:
    if given is None:
        return {}
    if not isinstance(given, dict):
        raise TrainingConfigError(f"params:{section} must be a mapping, got {type(given).__name__}")
    unknown = sorted(set(given) - allowed)
    if unknown:
        raise TrainingConfigError(
            f"unknown key(s) {unknown} in params:{section}; allowed keys: {sorted(allowed)}"
        )
    return given


def _int(section: str, key: str, value: Any, minimum: int) -> int:
    ok = isinstance(value, int) and not isinstance(value, bool)
    if isinstance(value, float) and value.is_integer():
        ok, value = True, int(value)
    if not ok or value < minimum:
        raise TrainingConfigError(
            f"params:{section}.{key} must be an integer >= {minimum}, got {value!r}"
        )
    return int(value)


def _n_workers(section: str, value: Any) -> int:
    """`auto` (or null): one single-threaded worker per core."""
    if value is None or value == "auto":
        return max(1, os.cpu_count() or 1)
    return _int(section, "n_workers", value, 1)


@dataclass(frozen=True)
class DaskConfig:
    n_workers: int = 2
    scheduler_address: str | None = None
    retries: int = 1
    dashboard_address: str | None = None
    wait_for_workers_seconds: float = 60.0

    @classmethod
    def from_params(cls, params: Any, scheduler_address: Any = None) -> DaskConfig:
        """`params:training.dask`, plus `params:training.scheduler_address` (kept at the top of
        the section because it is what users pass on the command line)."""
        section = f"{SECTION}.dask"
        p = _check_keys(section, params, set(cls.__dataclass_fields__) - {"scheduler_address"})
        address = scheduler_address
        if address is not None and (not isinstance(address, str) or not address.strip()):
            raise TrainingConfigError(
                f"params:{SECTION}.scheduler_address must be null (start a LocalCluster) or an "
                f"address such as 'tcp://10.0.0.5:8786', got {address!r}"
            )
        dashboard = p.get("dashboard_address")
        if dashboard is not None and not isinstance(dashboard, str):
            raise TrainingConfigError(
                f"params:{section}.dashboard_address must be null or a string such as ':8787', "
                f"got {dashboard!r}"
            )
        wait = p.get("wait_for_workers_seconds", 60.0)
        if (
            isinstance(wait, bool)
            or not isinstance(wait, (int, float))
            or not math.isfinite(wait)
            or wait <= 0
        ):
            raise TrainingConfigError(
                f"params:{section}.wait_for_workers_seconds must be a positive number, got {wait!r}"
            )
        return cls(
            n_workers=_n_workers(section, p.get("n_workers", "auto")),
            scheduler_address=address.strip() if address else None,
            retries=_int(section, "retries", p.get("retries", 1), 0),
            dashboard_address=dashboard,
            wait_for_workers_seconds=float(wait),
        )


@dataclass(frozen=True)
class TrainingConfig:
    backend: str = "synthetic"
    executor: str = "sequential"
    seed: int = 0
    seeds: int = 1
    max_retries: int = 1
    show_progress: bool = True
    checkpoint_dir: str | None = None
    dask: DaskConfig = field(default_factory=DaskConfig)
    synthetic: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def from_params(cls, params: Any) -> TrainingConfig:
        p = _check_keys(SECTION, params, set(cls.__dataclass_fields__) | {"scheduler_address"})
        backend = p.get("backend", "synthetic")
        if not isinstance(backend, str):
            raise TrainingConfigError(f"params:{SECTION}.backend must be a string, got {backend!r}")
        executor = p.get("executor", "sequential")
        if executor not in EXECUTORS:
            raise TrainingConfigError(
                f"params:{SECTION}.executor must be one of {list(EXECUTORS)}, got {executor!r}"
            )
        show = p.get("show_progress", True)
        if not isinstance(show, bool):
            raise TrainingConfigError(
                f"params:{SECTION}.show_progress must be true or false, got {show!r}"
            )
        ckpt = p.get("checkpoint_dir")
        if ckpt is not None and (not isinstance(ckpt, str) or not ckpt):
            raise TrainingConfigError(
                f"params:{SECTION}.checkpoint_dir must be null or a folder path, got {ckpt!r}"
            )
        synthetic = p.get("synthetic") or {}
        if not isinstance(synthetic, dict):
            raise TrainingConfigError(
                f"params:{SECTION}.synthetic must be a mapping, got {type(synthetic).__name__}"
            )
        return cls(
            backend=backend,
            executor=executor,
            seed=_int(SECTION, "seed", p.get("seed", 0), 0),
            seeds=_int(SECTION, "seeds", p.get("seeds", 1), 1),
            max_retries=_int(SECTION, "max_retries", p.get("max_retries", 1), 0),
            show_progress=show,
            checkpoint_dir=ckpt,
            dask=DaskConfig.from_params(p.get("dask"), p.get("scheduler_address")),
            synthetic=dict(synthetic),
        )
