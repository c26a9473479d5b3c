"""Dask workers start with the thread settings the training runtime asks for, so a sweep does not
repeat the runtime's OMP_WAIT_POLICY warning once per run on every worker."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap

import pytest

from flops_fit.execution import clusters
from flops_fit.parameters.training import SlurmParams
from tests.conftest import PROJECT_ROOT

pytest.importorskip("distributed")

#: A 2-worker LocalCluster sweep of four tiny torch runs (the toy MLP), on loopback only.
SWEEP = textwrap.dedent("""
    import logging, sys
    logging.basicConfig(level=logging.INFO, stream=sys.stderr)

    from flops_fit.execution import prepare_training
    from flops_fit.pipelines.planning.nodes import plan_isoflop_sweep, summarise_data
    from tests.plugins.toy_plugins import training_params

    planning = {"compute_budgets": {"values": [3e5]}, "batch_size": 16, "flops_formula": "6nd",
                "min_tokens_per_param": 0.1, "timing_probe_steps": 0,
                "model_sizes": {"num": 4, "centre": "fixed_range",
                                "fixed_range": {"min": 30.0, "max": 300.0}}}
    training = training_params(show_progress=False, executor="dask", dask={
        "n_workers": 2, "dashboard_address": "127.0.0.1:0", "wait_for_workers_seconds": 60})
    if __name__ == "__main__":
        summary = summarise_data(None, {}, training, planning, {})
        plan, _ = plan_isoflop_sweep([3e5], summary, None, planning, training, {}, {})
        records = prepare_training(plan, {}, training, {"torch_backend": {}}).records()
        print("STATUSES", sorted(r["status"] for r in records.values()))
""")


def _run_sweep(wait_policy: str, timeout: float = 240) -> str:
    """stdout + stderr of the sweep in a fresh process whose environment has `wait_policy`;
    the process group (the driver and its workers) is killed if it overruns."""
    env = {**os.environ, "OMP_WAIT_POLICY": wait_policy, "PYTHONPATH": str(PROJECT_ROOT),
           "KEDRO_DISABLE_TELEMETRY": "1"}
    proc = subprocess.Popen([sys.executable, "-c", SWEEP], cwd=PROJECT_ROOT, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            start_new_session=True)
    try:
        out, _ = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        out, _ = proc.communicate()
        raise AssertionError(f"the sweep overran {timeout} s:\n{out[-4000:]}") from None
    assert proc.returncode == 0, out[-4000:]
    return out


@pytest.mark.slow  # a real two-worker Dask sweep (~25 s); every worker's setting is checked below
def test_a_two_worker_sweep_says_the_wait_policy_at_most_once():
    """A shell that says ACTIVE made each worker warn at every run (4 lines for 4 runs)."""
    out = _run_sweep("ACTIVE")
    assert "STATUSES ['completed', 'completed', 'completed', 'completed']" in out, out[-4000:]
    assert out.count("OMP_WAIT_POLICY is not PASSIVE") == 0, out[-4000:]
    assert out.count("OMP_WAIT_POLICY") <= 1, out[-4000:]


@pytest.mark.parametrize("given", [None, "ACTIVE", "", "passive"])
def test_every_worker_starts_passive(monkeypatch, given):
    if given is None:
        monkeypatch.delenv("OMP_WAIT_POLICY", raising=False)
    else:
        monkeypatch.setenv("OMP_WAIT_POLICY", given)
    monkeypatch.setenv("OMP_NUM_THREADS", "3")
    local = clusters._thread_env(2)
    assert local["OMP_WAIT_POLICY"] == "PASSIVE"
    assert local["OMP_NUM_THREADS"] == "3"  # thread counts: this process's own still win
    prologue = clusters.slurm_cluster_kwargs(SlurmParams.from_params({"cores": 4}))[
        "job_script_prologue"]
    assert "export OMP_WAIT_POLICY=PASSIVE" in prologue
