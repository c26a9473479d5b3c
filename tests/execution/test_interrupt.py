"""SIGTERM / SIGINT stop a sweep without losing work: the run in progress checkpoints at once,
nothing is recorded as failed, the study lock is released and one line says how to resume."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time

import pandas as pd
import pytest
import torch

from flops_fit.datasets.run_store import RunPartitionsDataset
from flops_fit.execution import interrupt, prepare_training
from flops_fit.execution.study_lock import LOCK_NAME, StudyLock
from tests.conftest import PROJECT_ROOT, kedro_command
from tests.plugins.toy_plugins import HERE

#: three sizes of the toy MLP on slow fresh examples (5 ms a batch): ~1,200 steps in all, long
#: enough to stop the first run mid-way; no periodic checkpoint, so any checkpoint on disk is
#: the one written on the signal
SLOW = {
    "planning.compute_budgets.values": "[1.0e+7]",
    "planning.model_sizes.num": 3,
    "planning.model_sizes.centre": "fixed_range",
    "planning.model_sizes.fixed_range.min": 300,
    "planning.model_sizes.fixed_range.max": 1500,
    "planning.batch_size": 8,
    "planning.timing_probe_steps": 1,
    "training.backend": "torch",
    "training.executor": "sequential",
    "training.show_progress": "false",
    "training.model.factory": HERE + "mlp",
    "training.model.size_param": "width",
    "training.model.size.max": 256,
    "training.data.factory": HERE + "slow",
    "torch_backend.checkpoint_every_minutes": "null",
}
SYNTH = {"backend": "synthetic", "executor": "sequential", "show_progress": False}


@pytest.fixture(autouse=True)
def _clear_flag():
    interrupt.clear()
    yield
    interrupt.clear()


def _wait_for(path, text, proc, seconds=120.0):
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline and proc.poll() is None:
        if text in path.read_text():
            return
        time.sleep(0.05)
    raise AssertionError(f"never saw {text!r}:\n{path.read_text()[-3000:]}")


def test_sigterm_mid_run_checkpoints_and_the_rerun_resumes_from_it(tmp_path, kedro_run):
    data_root = kedro_run.data_root
    runs = data_root / "03_primary" / "runs"
    checkpoints = data_root / "06_models" / "checkpoints"
    log_file = tmp_path / "stopped.log"
    with log_file.open("w") as log:
        proc = subprocess.Popen(
            kedro_command(data_root, "--pipelines", "planning,training", params=SLOW),
            cwd=PROJECT_ROOT, stdout=log, stderr=subprocess.STDOUT,
            env={**os.environ, "KEDRO_DISABLE_TELEMETRY": "1"},
        )
        try:
            _wait_for(log_file, "Training 3 run(s)", proc)
            time.sleep(1.5)  # into the first run (~850 steps of >= 5 ms)
            os.kill(proc.pid, signal.SIGTERM)
            sent = time.monotonic()
            proc.wait(timeout=60)
            stopped_in = time.monotonic() - sent
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
    out = log_file.read_text()
    assert proc.returncode == 128 + signal.SIGTERM, out[-3000:]
    assert stopped_in < 20, stopped_in
    lines = [line for line in out.splitlines() if "interrupted:" in line]
    assert len(lines) == 1, out[-3000:]
    assert "runs saved" in lines[0] and "pending, checkpoints at" in lines[0]
    assert "run the same command to resume" in lines[0]
    assert "Traceback" not in out and "--from-nodes" not in out
    # nothing recorded as failed, and the lock is free (its file holds no holder)
    records = [json.loads(p.read_text()) for p in runs.glob("*.json")]
    assert all(r["status"] == "completed" for r in records)
    assert (runs / LOCK_NAME).read_text() == ""
    StudyLock(runs).acquire().release()
    # the checkpoint written on the signal, mid-run
    saved = sorted(checkpoints.rglob("checkpoint.pt"))
    assert len(saved) == 1, saved
    step = torch.load(saved[0], weights_only=True)["step"]
    num_steps = torch.load(saved[0], weights_only=True)["run_key"]["num_steps"]
    assert 0 < step < num_steps
    stopped_run = saved[0].parent.name

    kedro_run("--pipelines", "training", params=SLOW, timeout=180)
    resumed = json.loads((runs / f"{stopped_run}.json").read_text())
    assert resumed["status"] == "completed"
    assert resumed["resumed_from_step"] == step
    results = pd.read_csv(data_root / "03_primary" / "results.csv")
    assert len(results) == 3 and (results["status"] == "completed").all()
    assert not list(checkpoints.rglob("checkpoint.pt"))


def test_a_stop_between_runs_records_nothing_as_failed(plan, tmp_path, caplog):
    """Sequential executor, in-process: a stop requested after the first run keeps that run,
    starts no other, and raises SweepInterrupted with the one line."""
    store = RunPartitionsDataset(path=str(tmp_path / "runs"))
    stream = prepare_training(plan[:4], store.load(), SYNTH)
    items = stream.items()
    next(items)
    interrupt.request(signal.SIGTERM)
    with pytest.raises(interrupt.SweepInterrupted) as err:
        list(items)
    assert str(err.value).startswith("interrupted: 1 runs saved, 3 pending, no checkpoints")
    assert err.value.exit_code == 143


def test_dask_a_stop_makes_the_workers_checkpoint_and_records_nothing_as_failed(tmp_path):
    """The driver's flag reaches the workers (client.run): their runs checkpoint at the next
    step, queued runs do not start, and the rerun resumes from those checkpoints."""
    import threading

    import distributed

    from tests.execution.test_run_timeout import _plan  # three toy MLPs
    from tests.plugins.toy_plugins import training_params

    ckpt = tmp_path / "ckpt"
    training = training_params(data="slow", show_progress=False, checkpoint_dir=str(ckpt),
                               executor="dask", max_retries=0)
    plan = _plan(training)
    backend = {"torch": {"checkpoint_every_minutes": None}}
    store = RunPartitionsDataset(path=str(tmp_path / "runs"))
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                                  dashboard_address=None, host="127.0.0.1") as cluster, \
            distributed.Client(cluster) as client:

        def stop_once_training():
            deadline = time.monotonic() + 60
            while time.monotonic() < deadline:
                reports = client.run(interrupt.worker_progress)
                if any(e.get("step", 0) >= 3 for es in reports.values() for e in es):
                    break
                time.sleep(0.1)
            interrupt.request(signal.SIGTERM)

        stopper = threading.Thread(target=stop_once_training, daemon=True)
        stopper.start()
        stream = prepare_training(plan, store.load(), training, backend, client=client)
        with pytest.raises(Exception) as err:  # noqa: PT011 - the dataset wraps it
            store.save(stream)
        stopper.join()
        stop = err.value
        while stop is not None and not isinstance(stop, interrupt.SweepInterrupted):
            stop = stop.__cause__ or stop.__context__
        assert stop is not None, err.value
        assert client.run(interrupt.requested) == dict.fromkeys(client.run(interrupt.requested),
                                                                False)
        message = str(stop)
        assert message.startswith("interrupted: ") and f"checkpoints at {ckpt}" in message
        records = store.load()
        assert all(load()["status"] == "completed" for load in records.values())
        saved = sorted(ckpt.rglob("checkpoint.pt"))
        assert saved, "no run checkpointed on the stop"
        steps = {p.parent.name: torch.load(p, weights_only=True)["step"] for p in saved}
        assert all(s > 0 for s in steps.values())

        interrupt.clear()
        store.save(prepare_training(plan, store.load(), training, backend, client=client))
    final = {k: load() for k, load in store.load().items()}
    assert len(final) == 3 and all(r["status"] == "completed" for r in final.values())
    for key, step in steps.items():
        assert final[key]["resumed_from_step"] == step


@pytest.mark.slow  # ~20 s; the driver's stop of the workers is tested without it
def test_dask_a_worker_that_gets_sigterm_checkpoints_and_its_run_resumes_elsewhere(tmp_path):
    """SIGTERM to one worker process only (a preempted Slurm job): its run checkpoints, the
    worker ends, the run resumes from that checkpoint on a worker and nothing fails."""
    import distributed

    from tests.execution.test_run_timeout import _plan  # three toy MLPs
    from tests.plugins.toy_plugins import training_params

    ckpt = tmp_path / "ckpt"
    training = training_params(data="slow", show_progress=False, checkpoint_dir=str(ckpt),
                               executor="dask", max_retries=0)
    plan = _plan(training)
    backend = {"torch": {"checkpoint_every_minutes": None, "keep_checkpoints": True}}
    store = RunPartitionsDataset(path=str(tmp_path / "runs"))
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                                  dashboard_address=None, host="127.0.0.1") as cluster, \
            distributed.Client(cluster) as client:
        import threading

        killed: dict = {}

        def sigterm_a_training_worker():
            deadline = time.monotonic() + 60
            while time.monotonic() < deadline:
                reports = client.run(interrupt.worker_progress)
                busy = [(w, e) for w, es in reports.items() for e in es if e.get("step", 0) >= 3]
                if busy:
                    worker, entry = busy[0]
                    killed["run"] = entry["name"]
                    pid = client.run(os.getpid, workers=[worker])[worker]
                    os.kill(pid, signal.SIGTERM)
                    return
                time.sleep(0.1)

        stopper = threading.Thread(target=sigterm_a_training_worker, daemon=True)
        stopper.start()
        store.save(prepare_training(plan, store.load(), training, backend, client=client))
        stopper.join()
    final = {k: load() for k, load in store.load().items()}
    assert killed, "no worker was seen training"
    assert len(final) == 3 and all(r["status"] == "completed" for r in final.values())
    assert final[killed["run"]]["resumed_from_step"] > 0


def test_a_second_signal_stops_at_once_without_a_failed_record(tmp_path, monkeypatch):
    """The first signal asks for a checkpoint; a second one (an impatient Ctrl-C) raises at
    once, and the run it lands in is not recorded as failed."""
    from flops_fit.execution.run import run_task
    from flops_fit.execution.tasks import expand_plan
    from tests.execution.helpers import small_plan

    task = expand_plan(small_plan()[:1], 1, 0)[0]

    def train(self, record, params, ctx):
        with interrupt.training():
            interrupt._handler(signal.SIGINT, None)  # the first: only sets the flag
            assert interrupt.requested()
            interrupt._handler(signal.SIGINT, None)  # the second: raises here

    monkeypatch.setattr("flops_fit.backends.synthetic.SyntheticBackend.train", train)
    with pytest.raises(interrupt.SweepInterrupted) as err:
        run_task(task, "synthetic", {})
    assert err.value.exit_code == 130


def test_a_signal_while_no_run_trains_says_what_was_saved_stays():
    """SIGTERM between runs (planning, analysis, next_round): nothing was training, and
    nothing already saved is lost: the message says to go on, not to start again."""
    import signal

    from flops_fit.execution import interrupt

    try:
        with pytest.raises(interrupt.SweepInterrupted, match=r"^interrupted by SIGTERM while no "
                           r"run was training; every run already saved stays saved: run the "
                           r"same command to go on$"):
            interrupt._handler(signal.SIGTERM, None)
    finally:
        interrupt.clear()
