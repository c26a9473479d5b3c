"""`make gpu-check` (benchmarks/gpu_check.py) without a GPU: it skips cleanly, and every check
still runs here, so the script cannot rot between the rare sessions that lend it a GPU.

`--force-cpu --smoke` runs every check with the "CUDA" side on the CPU in conf/gpu's precision
(bf16 autocast on the CPU) against the CPU in float32, on tiny runs planned by the project's
own planning; the logic that decides PASS or FAIL is also checked on made-up results.
"""

from __future__ import annotations

import json
import math
import os
import shutil
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "benchmarks" / "gpu_check.py"
sys.path.insert(0, str(ROOT / "benchmarks"))  # as when the script runs: its helper modules

import _gpu_checks  # noqa: E402
import _gpu_runs  # noqa: E402
import gpu_check  # noqa: E402
from _gpu_checks import LOSS_RTOL, RESUME_RTOL, Check  # noqa: E402

CHECKS = ["environment", "gpt-cuda", "gpt-bf16-vs-fp32", "gpt-cuda-resume",
          "mnist1d-bf16-vs-fp32"]
no_cuda = pytest.mark.skipif(torch.cuda.is_available(), reason="a CUDA device is present")


def run(*args: str, timeout: float = 300) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(SCRIPT), *args], cwd=ROOT, capture_output=True,
                          text=True, timeout=timeout,
                          env={**os.environ, "KEDRO_DISABLE_TELEMETRY": "1"})


@no_cuda
def test_without_cuda_make_gpu_check_says_skipped_and_exits_0():
    if shutil.which("make") and (ROOT / ".venv/bin/python").exists():
        # -o: take the install stamp as up to date (a test must never reinstall the venv)
        cmd = ["make", "-s", "-o", ".venv/.flops-fit-installed", "gpu-check"]
    else:  # no make or no project venv: the script the target runs
        cmd = [sys.executable, str(SCRIPT)]
    proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert proc.stdout.strip() == gpu_check.SKIP_MESSAGE == "no CUDA device: gpu-check skipped"


def test_every_check_runs_and_passes_on_the_cpu(tmp_path: Path):
    out = tmp_path / "gpu_check.json"
    proc = run("--force-cpu", "--smoke", "--no-mfu", "--json", str(out))
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-4000:]
    result = json.loads(out.read_text())
    checks = {c["name"]: c for c in result["checks"]}
    assert list(checks) == CHECKS
    assert all(c["ok"] for c in checks.values()), result["summary"]
    # the summary block: a header, one PASS line per check, the verdict
    summary = proc.stdout[proc.stdout.index("gpu-check summary"):].splitlines()
    assert len(summary) == len(CHECKS) + 2
    assert all(line.startswith("  PASS  ") for line in summary[1:])
    assert summary[-1].strip() == f"PASS  {len(CHECKS)}/{len(CHECKS)} checks passed"

    gpt = checks["gpt-cuda"]["data"]["runs"]
    assert len(gpt) == 3 and all(r["cuda"]["final_loss"] < math.log(256) for r in gpt)
    assert {r["cuda"]["precision"] for r in gpt} == {"bfloat16"}  # conf/gpu's autocast
    compared = checks["gpt-bf16-vs-fp32"]["data"]
    assert len(compared["rel_diffs"]) == 3
    assert all(abs(d) <= LOSS_RTOL for d in compared["rel_diffs"])
    assert {r["cpu"]["precision"] for r in compared["runs"]} == {"float32"}
    # the same seed and batches on both sides: bf16 moves the loss, but only a little
    assert any(d != 0 for d in compared["rel_diffs"])
    # on the CPU a resumed run continues bit for bit
    assert checks["gpt-cuda-resume"]["data"]["rel_diff"] == 0.0
    mnist = checks["mnist1d-bf16-vs-fp32"]["data"]["runs"]
    assert len(mnist) == 1 and 0 < mnist[0]["cuda"]["heldout_accuracy"] <= 1


@pytest.mark.slow
def test_the_mfu_check_reads_the_benchmark_it_ran():
    check = _gpu_checks.check_mfu("cpu", ("--quick",), 180, quick=True)
    assert check.ok, check.detail
    assert check.data["device"] == "cpu" and check.data["precision"] == "float32"
    assert "sweep-wide MFU" in check.detail and "TFLOP/s" in check.detail


# ----------------------------------------------------------------------------- the verdicts


def planned(n: int = 2) -> _gpu_runs.Planned:
    records = [{"experiment_id": f"run{i}", "compute_budget": 1e12, "model_size": 1000 * (i + 1),
                "num_tokens": 4096, "num_steps": 4, "batch_size": 4, "d_model": 16,
                "num_layers": i + 1} for i in range(n)]
    return _gpu_runs.Planned(records, SimpleNamespace(unit="tokens"), None, "loss", None)


def fake_training(monkeypatch, losses: dict[str, float | None]):
    """train_one replaced: each side's loss by its device/precision, None for a failed run."""
    def train_one(record, planned, section):
        loss = losses[f"{section['device']}-{section['precision']}"]
        if loss is None:
            return {"error": "RuntimeError: boom", "wall_seconds": 0.0}
        return {"final_loss": loss, "train_loss": loss, "units_per_second": 1.0,
                "wall_seconds": 0.1, "precision": section["precision"]}

    monkeypatch.setattr(_gpu_checks, "train_one", train_one)


def section_of(**side) -> dict:
    return {"device": side["device"], "precision": side["precision"]}


GPU = _gpu_runs.Sides({"device": "cuda", "precision": "bfloat16", "compile_": False},
                      {"device": "cpu", "precision": "float32", "compile_": False})


@pytest.mark.parametrize(
    ("cuda_loss", "ok"),
    [(2.0 * (1 + LOSS_RTOL * 0.9), True), (2.0 * (1 + LOSS_RTOL * 1.1), False),
     (2.0 * (1 - LOSS_RTOL * 1.1), False), (math.nan, False), (None, False)],
    ids=["within", "above", "below", "nan", "failed"],
)
def test_compare_passes_only_within_the_tolerance(monkeypatch, capsys, cuda_loss, ok):
    fake_training(monkeypatch, {"cuda-bfloat16": cuda_loss, "cuda-float32": 2.0,
                                "cpu-float32": 2.0})
    check, outs = _gpu_checks.compare("c", planned(), GPU, section_of)
    assert check.ok is ok
    assert list(outs) == ["cuda", "cuda-fp32", "cpu"]  # on a GPU: fp32 on CUDA too
    assert f"tolerance {LOSS_RTOL:.0%}" in check.detail
    assert "cuda-fp32 vs cpu: +0.00%, +0.00%" in check.detail
    printed = capsys.readouterr().out
    assert "run0" in printed and "cuda loss" in printed


def test_a_device_difference_in_float32_fails_the_comparison_too(monkeypatch):
    fake_training(monkeypatch, {"cuda-bfloat16": 2.0, "cuda-float32": 2.2, "cpu-float32": 2.0})
    check, _ = _gpu_checks.compare("c", planned(), GPU, section_of)
    assert not check.ok and "cuda-fp32 vs cpu: +10.00%" in check.detail


def test_an_exception_fails_its_check_and_the_next_one_still_runs(capsys):
    def boom() -> Check:
        raise RuntimeError("CUDA error: an illegal memory access")

    first = _gpu_checks.guarded("boom", boom)
    second = _gpu_checks.guarded("fine", lambda: Check("fine", True, "ok"))
    assert [c.ok for c in first + second] == [False, True]
    assert first[0].detail == "RuntimeError: CUDA error: an illegal memory access"
    block = _gpu_checks.summary_block(first + second, "header")
    assert block.splitlines()[1].startswith("  FAIL  boom ")
    assert block.splitlines()[-1] == "  FAIL  1/2 checks passed (failed: boom)"
    assert "-> FAIL boom" in capsys.readouterr().out


def test_past_the_deadline_no_check_or_run_starts(monkeypatch):
    monkeypatch.setattr(_gpu_runs, "deadline", 0.0)  # long past
    (check,) = _gpu_checks.guarded("late", lambda: Check("late", True, "ran"))
    assert not check.ok and "past --deadline" in check.detail
    out = _gpu_runs.train_one(planned(1).records[0], planned(1), {})
    assert out["error"] == "not run: past --deadline"


def test_a_failed_or_diverged_run_is_never_within_tolerance():
    good = {"final_loss": 2.0, "train_loss": 2.0}
    assert _gpu_runs.rel_diff({"final_loss": 2.02, "train_loss": 2.0}, good) == pytest.approx(0.01)
    for bad in ({"error": "x"}, {"final_loss": math.inf, "train_loss": 2.0},
                {"final_loss": 2.0, "train_loss": math.nan}):
        assert not _gpu_runs.within(_gpu_runs.rel_diff(bad, good), RESUME_RTOL)
