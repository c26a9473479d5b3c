"""`kedro study` for real: a steered synthetic study in a subprocess, killed with SIGKILL in
its second round, then resumed by the same command without training anything again; a bad
study value stopped before planning; its --params options."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import click
import yaml

from flops_fit.cli import _merged_params, study
from tests.conftest import PROJECT_ROOT

#: a small steered study on the synthetic surface; each run takes 0.1 s so a kill lands in one
PARAMS = {
    "planning": {"compute_budgets": {"values": [1e18, 1e19, 1e20]},
                 "model_sizes": {"num": 4, "span_factor": 6.0,
                                 "power_law": {"coefficient": 0.2}}},
    "training": {"show_progress": False, "synthetic": {"sleep_seconds": 0.1}},
    "analysis": {"bootstrap": {"draws": 50}, "target_budgets": [1e22]},
    "study": {"target_budget": 1e22, "precision": 1.01, "max_compute": 1e23, "max_rounds": 2,
              "min_expected_gain": 0.0, "validation": {"enabled": False}},
    "reporting": {"headline_budget": 1e22, "embed_dpi": 20},
}


def _study_command(tmp_path: Path) -> list[str]:
    conf = tmp_path / "conf"
    if not conf.exists():
        shutil.copytree(PROJECT_ROOT / "conf", conf)
        mock = conf / "mock"
        for key, section in PARAMS.items():
            path = mock / f"parameters_{key}.yml"
            base = yaml.safe_load(path.read_text()) if path.exists() else {key: {}}
            base[key] = _merge(base.get(key) or {}, section)
            path.write_text(yaml.safe_dump(base))
    return [sys.executable, "-m", "kedro", "study", "--env", "mock", "--conf-source",
            str(conf), "--params", f"data_root={tmp_path / 'data'}"]


def _merge(base: dict, new: dict) -> dict:
    out = dict(base)
    for k, v in new.items():
        out[k] = _merge(out.get(k) or {}, v) if isinstance(v, dict) else v
    return out


def _env() -> dict:
    return {**os.environ, "KEDRO_DISABLE_TELEMETRY": "1"}


def _runs(data: Path) -> dict[str, tuple[bytes, int]]:
    return {p.name: (p.read_bytes(), p.stat().st_mtime_ns)
            for p in (data / "03_primary" / "runs").glob("*.json")}


def _round_of_saved_runs(data: Path) -> set[int]:
    rounds = set()
    for content, _ in _runs(data).values():
        try:
            rounds.add(int(json.loads(content).get("round") or 0))
        except ValueError:
            continue
    return rounds


def test_kill_9_in_round_two_and_the_same_command_resumes_it(tmp_path):
    cmd = _study_command(tmp_path)
    data = tmp_path / "data"
    proc = subprocess.Popen(cmd, cwd=PROJECT_ROOT, env=_env(), start_new_session=True,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 300
    try:
        while 2 not in _round_of_saved_runs(data):
            assert proc.poll() is None, f"kedro study ended early: {proc.stderr.read()[-3000:]}"
            assert time.monotonic() < deadline, "round 2 never started"
            time.sleep(0.05)
    finally:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)
    before = _runs(data)
    planned_round_2 = json.loads((data / "02_intermediate/study/round_002.json").read_text())
    assert 0 < len([1 for c, _ in before.values() if json.loads(c)["round"] == 2]) \
        < len(planned_round_2["runs"])  # the kill landed inside round 2

    done = subprocess.run(cmd, cwd=PROJECT_ROOT, env=_env(), capture_output=True, text=True,
                          timeout=600)
    assert done.returncode == 0, done.stderr[-4000:]
    after = _runs(data)
    assert {k: after[k] for k in before} == before  # nothing completed was trained again
    assert json.loads((data / "02_intermediate/study/round_002.json").read_text()) \
        == planned_round_2  # round 2 was continued, not planned anew
    table = (data / "08_reporting" / "study_rounds.csv").read_text().splitlines()
    assert len(table) == 4  # header, the pilot, rounds 1 and 2 (max_rounds)
    assert "study.max_rounds (2)" in table[-1]
    assert "Study done after the pilot and 2 round(s)" in done.stdout  # the validation is tested in process
    assert f"Report: {data / '08_reporting' / 'report.html'}" in done.stdout
    report = (data / "08_reporting" / "report.md").read_text()
    assert "## Study rounds" in report and "study.max_rounds (2)" in report


def test_a_bad_study_value_fails_before_planning(tmp_path):
    """A target below the pilot's budgets is checked from the planning parameters before the
    pilot is planned, given in a second --params (the first sets data_root)."""
    cmd = _study_command(tmp_path) + ["--params", "study.target_budget=1e17"]
    done = subprocess.run(cmd, cwd=PROJECT_ROOT, env=_env(), capture_output=True, text=True,
                          timeout=300)
    assert done.returncode != 0
    assert ("Error: study.target_budget (1e+17 FLOPs) is below the pilot's largest budget "
            "(1e+20 FLOPs)") in done.stderr
    assert "Traceback" not in done.stderr
    assert not (tmp_path / "data" / "02_intermediate").exists()  # not planned


def test_every_params_option_counts_a_later_key_wins():
    ctx = click.Context(study)
    option = next(p for p in study.params if p.name == "params")
    merged = _merged_params(ctx, option, ("a=1,b.c=2", "b.e=4,b.c=3,d=x"))
    assert merged == {"a": 1, "b": {"c": 3, "e": 4}, "d": "x"}
    assert _merged_params(ctx, option, ()) == {}
