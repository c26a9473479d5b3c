"""Every benchmark runs: `python benchmarks/bench_*.py --quick` (seconds, the real code path).

Benchmarks measure speed and accuracy as ratios printed against a reference timed in the same run;
these tests assert none of those numbers, only that each benchmark still runs to the end, and that
a benchmark whose worker fails says why and exits instead of hanging.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
BENCHMARKS = sorted((ROOT / "benchmarks").glob("bench_*.py"))
MFU = ROOT / "benchmarks" / "bench_training_mfu.py"
#: what a benchmark's quick output must contain beyond "something" (its table, its verdict)
EXPECTED = {
    "bench_training_mfu": ("MFU causal", "sweep-wide", "x the 0.5 target"),
    # the coverage table: every design, the gated approaches, the columns it is judged on
    "bench_coverage": (
        "Coverage of the 95% bootstrap intervals",
        "3 budgets x 5 sizes, 1% noise",
        "off-centre",
        "approach_2  a",
        "approach_3  log10 N_opt(1e24)",
        "coverage w/spread",
    ),
    # the law families: speed side by side, every family's row, real runs beyond their fit
    "bench_laws": (
        "== speed on Epoch's 240 runs",
        "x pinned",
        "== synthetic studies",
        "saturating",
        "L_opt beyond the fit covered",
    ),
    # trunks against runs of their own: both layouts' shares, every point, the ratios, and the
    # Dask executor's schedule of a trunk plan against the ideal
    "bench_trunks": (
        "budgets 2x apart (5), every size in each:",
        "study's own layout",
        "branch vs cosine: mean",
        "FLOPs trained: trunks",
        "wall time: trunks",
        "the Dask executor's schedule",
        "(sum / workers) =",
    ),
    # both tables of the steered-study benchmark, each noise level, the value goal's column
    "bench_steering": (
        "Steered studies vs a fixed IsoFLOP design",
        "-- noise 1%",
        "-- noise 3%",
        "== Value at C* = 1e+20",
        "fraction reached",
        "== Coverage of the final 95% interval of N_opt(C*)",
        "coverage w/spread",
    ),
}
TIMEOUT_S = 180  # a hang fails the test; a busy shared machine is still well inside it


def run_benchmark(path: Path, *args: str) -> subprocess.CompletedProcess:
    # capture_output: run() returns only once every process holding the pipes (the benchmark
    # and any worker it started) has exited, so a leftover worker shows up as a timeout.
    return subprocess.run(
        [sys.executable, str(path), *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=TIMEOUT_S,
        env={**os.environ, "KEDRO_DISABLE_TELEMETRY": "1"},
    )


def test_every_benchmark_is_found():
    assert MFU in BENCHMARKS
    assert ROOT / "benchmarks" / "bench_coverage.py" in BENCHMARKS
    assert len(BENCHMARKS) >= 3


@pytest.mark.parametrize("path", BENCHMARKS, ids=lambda p: p.stem)
def test_quick_mode_runs_to_the_end(path: Path):
    proc = run_benchmark(path, "--quick")
    assert proc.returncode == 0, f"{path.name} --quick failed:\n{proc.stdout}\n{proc.stderr}"
    assert proc.stdout.strip(), f"{path.name} --quick printed nothing"
    for text in EXPECTED.get(path.stem, ()):
        assert text in proc.stdout, f"{path.name} --quick did not print {text!r}:\n{proc.stdout}"


@pytest.mark.parametrize(
    ("mode", "expected"),
    [
        ("raise", "InjectedFailure: worker 0: injected failure"),  # the worker's traceback
        ("exit", "worker 0 died with exit code 3"),  # a death without one
    ],
    ids=["raises", "dies"],
)
def test_a_failing_worker_ends_the_benchmark_with_its_error(mode: str, expected: str):
    # Two workers: the healthy one would wait for the failed one at the barrier for ever.
    proc = run_benchmark(MFU, "--quick", "--workers", "2", "--fail-worker", mode)
    assert proc.returncode == 1, f"{proc.returncode}:\n{proc.stdout}\n{proc.stderr}"
    assert expected in proc.stderr
    assert "benchmark FAILED" in proc.stderr
