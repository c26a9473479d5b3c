"""Shared test fixtures. Telemetry is off for every test and every `kedro` subprocess."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
from hypothesis import settings

os.environ["KEDRO_DISABLE_TELEMETRY"] = "1"

# Property tests draw the same examples on every run (derived from each test's own code), so a
# clean clone's `make test` is reproducible and a failure reruns as it failed;
# HYPOTHESIS_PROFILE=explore draws new ones on every run to search further.
settings.register_profile("reproducible", derandomize=True, database=None)
settings.register_profile("explore")
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "reproducible"))
os.environ.setdefault("COLUMNS", "200")

PROJECT_ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="session")
def project_root() -> Path:
    return PROJECT_ROOT


def kedro_command(data_root: Path, *args: str, env: str | None = None,
                  params: dict[str, object] | None = None) -> list[str]:
    """`python -m kedro run ...` with every catalog write redirected under `data_root`."""
    all_params = {"data_root": str(data_root), **(params or {})}
    cmd = [sys.executable, "-m", "kedro", "run", *args]
    if env:
        cmd += ["--env", env]
    cmd += ["--params", ",".join(f"{k}={v}" for k, v in all_params.items())]
    return cmd


@pytest.fixture
def kedro_run(tmp_path: Path) -> Callable[..., subprocess.CompletedProcess]:
    """Run a real `kedro run` in a subprocess; data lands in tmp_path/data."""
    data_root = tmp_path / "data"

    def run(*args: str, env: str | None = None, params: dict[str, object] | None = None,
            timeout: float = 300, check: bool = True) -> subprocess.CompletedProcess:
        proc = subprocess.run(
            kedro_command(data_root, *args, env=env, params=params),
            cwd=PROJECT_ROOT, capture_output=True, text=True, timeout=timeout,
            env={**os.environ, "KEDRO_DISABLE_TELEMETRY": "1"},
        )
        if check and proc.returncode != 0:
            raise AssertionError(
                f"kedro run failed ({proc.returncode}):\n{proc.stdout[-4000:]}\n{proc.stderr[-8000:]}"
            )
        return proc

    run.data_root = data_root  # type: ignore[attr-defined]
    return run


def read_json(path: Path):
    return json.loads(Path(path).read_text())


@pytest.fixture(scope="session")
def corpus_split():
    """The real default corpus, split once per session."""
    from flops_fit.data.corpus import prepare_corpus
    from flops_fit.datasets.package_corpus import PackageCorpusDataset

    text = PackageCorpusDataset().load()
    return prepare_corpus(
        text, {"tokenizer": "bytes", "heldout_fraction": 0.02, "block_size": 4096}
    )
