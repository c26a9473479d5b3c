"""A training backend that replays a plan's estimated wall time: each run sleeps its seconds
(`params["seconds"][experiment_id]`) and reports a made-up loss. It measures how the executors
schedule a plan (bench_trunks' schedule section), not training. Registered by name in the
driver and on every Dask worker (`register`); workers import it as `_replay_backend`, from the
benchmarks folder on their path."""

from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import Any

NAME = "replay"
PATH = "_replay_backend:ReplayBackend"


def register(folder: str = str(Path(__file__).resolve().parent)) -> str:
    from flops_fit.backends.base import BACKENDS

    if folder not in sys.path:
        sys.path.insert(0, folder)
    BACKENDS[NAME] = PATH
    return NAME


class ReplayBackend:
    name = NAME
    needs_data = False

    def validate_params(self, params: Any) -> Any:
        return params or {}

    def train(self, record: dict[str, Any], params: Any, ctx: Any) -> dict:
        time.sleep(float(params["seconds"][record["experiment_id"]]))
        tokens = int(record["num_tokens"])
        return {"final_loss": 1.0, "train_loss": 1.0,
                "actual_flops": float(record["planned_flops"]), "tokens_seen": tokens}
