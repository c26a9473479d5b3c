"""Test doubles shared by tests/execution and tests/pipelines/training.

Backends here are registered by name (`register`) in this process with monkeypatch, and in Dask
worker processes with `client.run(register, name, path)`; workers import this module by name.
"""

from __future__ import annotations

import math
import os
import time
from pathlib import Path
from typing import Any

from flops_fit.backends.base import BACKENDS, RunContext
from flops_fit.execution.records import build_result_record
from flops_fit.planning.flops import training_flops
from flops_fit.planning.shapes import ModelShape
from flops_fit.planning.sweep import PlanningConfig, plan_sweep

HERE = "tests.execution.helpers"
TEST_BACKENDS = {
    "flaky": f"{HERE}:FlakyBackend",
    "sleepy": f"{HERE}:SleepyBackend",
    "crashy": f"{HERE}:CrashyBackend",
    "probe": f"{HERE}:ProbeBackend",
    "corpus_probe": f"{HERE}:CorpusProbeBackend",
}

#: a small synthetic-scale plan: 3 budgets x 4 sizes
SMALL_PLANNING = {
    "compute_budgets": {"values": [1.0e17, 1.0e18, 1.0e19]},
    "model_sizes": {
        "num": 4,
        "centre": "power_law",
        "power_law": {"coefficient": 0.5987, "exponent": 0.4516},
        "span_factor": 5.0,
    },
    "model_family": {"max_width": 16384, "aspect_ratio": 64.0, "max_layers": 256},
    "batch_size": 256,
    "flops_formula": "6nd",
}


def small_plan() -> list[dict[str, Any]]:
    records, _ = plan_sweep(PlanningConfig.from_params(SMALL_PLANNING))
    return records


def register(name: str, path: str | None = None) -> str:
    BACKENDS[name] = path or TEST_BACKENDS[name]
    return name


def _metrics(record: dict[str, Any], loss: float) -> dict[str, Any]:
    tokens = int(record["num_tokens"])
    return {
        "final_loss": loss,
        "train_loss": loss,
        "actual_flops": training_flops(ModelShape.from_record(record), tokens, "6nd"),
        "tokens_seen": tokens,
    }


def _loss(record: dict[str, Any]) -> float:
    return 2.0 + 1e3 / float(record["model_size"]) ** 0.3


class _Base:
    needs_data = False

    def validate_params(self, params: dict[str, Any] | None) -> dict[str, Any]:
        if (params or {}).get("invalid"):
            raise ValueError("params:test_backend.invalid must be false")
        return params or {}


class FlakyBackend(_Base):
    """Fails the first `fail_times[experiment_id]` calls (counted in files: works across
    processes and invocations)."""

    name = "flaky"

    def train(self, record, params, ctx: RunContext):
        eid = record["experiment_id"]
        counter = Path(params["counter_dir"]) / f"{eid}.count"
        calls = int(counter.read_text()) + 1 if counter.exists() else 1
        counter.parent.mkdir(parents=True, exist_ok=True)
        counter.write_text(str(calls))
        if calls <= params.get("fail_times", {}).get(eid, 0):
            raise RuntimeError(f"flaky failure {calls}")
        if eid in params.get("nan", []):
            return _metrics(record, math.nan)
        return _metrics(record, _loss(record))


class SleepyBackend(_Base):
    name = "sleepy"

    def train(self, record, params, ctx: RunContext):
        time.sleep(params.get("sleep", {}).get(record["experiment_id"], 0.0))
        return _metrics(record, _loss(record))


class CrashyBackend(_Base):
    """Kills its own process (a Dask worker dying mid-run) for the listed experiment_ids."""

    name = "crashy"

    def train(self, record, params, ctx: RunContext):
        if record["experiment_id"] in params.get("crash", []):
            os._exit(13)
        time.sleep(params.get("sleep", 0.0))
        return _metrics(record, _loss(record))


class ProbeBackend(_Base):
    """Reports how many run files were on disk when it started (per-run persistence)."""

    name = "probe"

    def train(self, record, params, ctx: RunContext):
        folder = Path(params["runs_dir"])
        files = sorted(p.name for p in folder.glob("*.json")) if folder.is_dir() else []
        return {
            **_metrics(record, _loss(record)),
            "files_at_start": len(files),
            "checkpoint_dir": str(ctx.checkpoint_dir),
            "seed_seen": ctx.seed,
        }


class CorpusProbeBackend(_Base):
    """Needs the corpus; reports the split sizes it received."""

    name = "corpus_probe"
    needs_data = True

    def prepare_study(self, plan, training, params, training_data, corpus_params):
        from flops_fit.plugins.study import data_source

        return data_source(training_data, training, corpus_params, 16, 16), None, None

    def train(self, record, params, ctx: RunContext):
        assert ctx.data is not None
        return {
            **_metrics(record, _loss(record)),
            "train_bytes": int(ctx.data.split.train.size),
            "heldout_bytes": int(ctx.data.split.heldout.size),
        }


try:  # a worker plugin, so that restarted Dask workers know the test backends too
    from distributed import WorkerPlugin
except ImportError:  # pragma: no cover
    WorkerPlugin = object  # type: ignore[assignment,misc]


class RegisterTestBackends(WorkerPlugin):
    name = "flops-fit-test-backends"

    def setup(self, worker=None):
        for name in TEST_BACKENDS:
            register(name)


def result_record(task, status="completed", backend="synthetic", loss=3.0):
    """A stored record of `task` as the executor would write it."""
    return build_result_record(
        task.record,
        replica=task.replica,
        seed=task.seed,
        backend=backend,
        status=status,
        metrics={"final_loss": loss, "train_loss": loss, "actual_flops": 1.0, "tokens_seen": 1},
        error_message=None if status == "completed" else "boom",
    )
