"""How the Dask cluster is chosen and how the Slurm jobs are written (no Slurm needed)."""

from __future__ import annotations

import logging
import sys
from contextlib import contextmanager

import pytest

from flops_fit.execution import clusters
from flops_fit.execution.clusters import cluster_kind, connect, slurm_cluster_kwargs
from flops_fit.execution.executors import DaskExecutor, ExecutionError, make_executor
from flops_fit.parameters.base import ParameterError
from flops_fit.parameters.training import DaskParams, SlurmParams, TrainingConfig


def _training(**dask) -> TrainingConfig:
    address = dask.pop("scheduler_address", None)
    return TrainingConfig.from_params(
        {"backend": "synthetic", "scheduler_address": address, "dask": dask}
    )


@pytest.mark.parametrize(
    ("cluster", "address", "kind"),
    [
        ("local", None, "local"),
        ("local", "tcp://10.0.0.5:8786", "address"),  # today's --params scheduler_address=...
        ("address", "tcp://10.0.0.5:8786", "address"),
        ("slurm", None, "slurm"),
    ],
)
def test_cluster_kind(cluster, address, kind):
    cfg = _training(cluster=cluster, scheduler_address=address)
    assert cluster_kind(cfg.dask, cfg.scheduler_address) == kind
    executor = make_executor(cfg)
    assert isinstance(executor, DaskExecutor)
    assert executor.cluster == kind


def test_address_cluster_needs_an_address():
    with pytest.raises(ParameterError, match=r"params:training\.dask.*scheduler_address is null"):
        _training(cluster="address")


def test_slurm_cluster_and_an_address_conflict():
    with pytest.raises(ParameterError, match=r"params:training\.dask.*'slurm'.*scheduler_address"):
        _training(cluster="slurm", scheduler_address="tcp://10.0.0.5:8786")


@pytest.mark.parametrize(
    ("slurm", "key"),
    [
        ({"walltime": "one hour"}, "training.dask.slurm.walltime"),
        ({"walltime": 60}, "training.dask.slurm.walltime"),
        ({"memory": "lots"}, "training.dask.slurm.memory"),
        ({"memory": "0GB"}, "training.dask.slurm.memory"),
        ({"cores": 0}, "training.dask.slurm.cores"),
        ({"cores": True}, "training.dask.slurm.cores"),
        ({"jobs": -1}, "training.dask.slurm.jobs"),
        ({"cores": 2, "processes": 4}, "training.dask.slurm.processes"),
        ({"job_extra_directives": ["gres=gpu:1"]}, "training.dask.slurm.job_extra_directives"),
        ({"job_directives_skip": "--mem"}, "training.dask.slurm.job_directives_skip"),
        ({"job_name": "two words"}, "training.dask.slurm.job_name"),
        ({"queue": "  "}, "training.dask.slurm.queue"),
        ({"queu": "gpu"}, "did you mean 'training.dask.slurm.queue'"),
    ],
)
def test_bad_slurm_values_name_their_key(slurm, key):
    with pytest.raises(ParameterError) as err:
        _training(cluster="slurm", slurm=slurm)
    assert key in str(err.value)


def test_bad_cluster_choice_names_the_key():
    with pytest.raises(ParameterError, match=r"training\.dask\.cluster"):
        _training(cluster="kubernetes")


@pytest.mark.parametrize("walltime", ["30", "30:00", "01:00:00", "2-00", "2-12:00", "1-00:00:00"])
def test_slurm_walltime_formats(walltime):
    assert SlurmParams.from_params({"walltime": walltime}).walltime == walltime


def test_job_script_is_built_from_the_parameters():
    from dask_jobqueue import SLURMCluster

    slurm = SlurmParams.from_params({
        "queue": "gpu", "account": "proj42", "cores": 4, "processes": 2, "memory": "8GB",
        "walltime": "02:30:00", "jobs": 3, "job_name": "isoflop",
        "job_extra_directives": ["--gres=gpu:1", "--qos=short"],
        "job_directives_skip": ["--mem"], "job_script_prologue": ["module load cuda"],
        "python": "/opt/venv/bin/python", "scheduler_host": "127.0.0.1",
        "local_directory": "/scratch",
    })
    kwargs = slurm_cluster_kwargs(slurm)
    assert kwargs["scheduler_options"]["host"] == "127.0.0.1"
    cluster = SLURMCluster(**kwargs)
    try:
        script = cluster.job_script()
    finally:
        cluster.close()
    lines = script.splitlines()
    for expected in (
        "#SBATCH -J isoflop", "#SBATCH -p gpu", "#SBATCH -A proj42", "#SBATCH -n 1",
        "#SBATCH --cpus-per-task=4", "#SBATCH -t 02:30:00", "#SBATCH --gres=gpu:1",
        "#SBATCH --qos=short", "export OMP_NUM_THREADS=2", "module load cuda",
    ):
        assert expected in lines, (expected, script)
    assert not any(line.startswith("#SBATCH --mem") for line in lines)  # skipped
    worker = next(line for line in lines if "distributed.cli.dask_worker" in line)
    assert worker.startswith("/opt/venv/bin/python -m distributed.cli.dask_worker tcp://127.0.0.1:")
    assert "--nworkers 2" in worker and "--nthreads 2" in worker
    assert "--local-directory /scratch" in worker
    # the prologue exports the thread counts before the user's own lines
    assert lines.index("export OMP_NUM_THREADS=2") < lines.index("module load cuda")


def test_job_script_defaults_run_this_python_with_memory():
    from dask_jobqueue import SLURMCluster

    kwargs = slurm_cluster_kwargs(SlurmParams.from_params({"scheduler_host": "127.0.0.1"}))
    assert "queue" not in kwargs and "account" not in kwargs
    cluster = SLURMCluster(**kwargs)
    try:
        script = cluster.job_script()
    finally:
        cluster.close()
    assert "#SBATCH --mem=4G" in script.splitlines()
    assert "#SBATCH -p" not in script and "#SBATCH -A" not in script
    assert f"{sys.executable} -m distributed.cli.dask_worker" in script


def test_slurm_without_sbatch_is_a_clear_error(monkeypatch):
    monkeypatch.setattr(clusters.shutil, "which", lambda name: None)
    with (
        pytest.raises(ExecutionError, match=r"'slurm' but `sbatch` is not on PATH"),
        connect(DaskParams.from_params({"cluster": "slurm"})),
    ):
        pass


def test_an_address_with_cluster_local_is_logged_as_address(monkeypatch, caplog):
    seen = []

    @contextmanager
    def fake_address_client(config, address):
        seen.append(address)
        yield "client"

    monkeypatch.setattr(clusters, "_address_client", fake_address_client)
    with (
        caplog.at_level(logging.INFO, logger="flops_fit.execution.clusters"),
        connect(DaskParams(), "tcp://10.0.0.5:8786") as client,
    ):
        assert client == "client"
    assert seen == ["tcp://10.0.0.5:8786"]
    assert "training.dask.cluster 'local' means 'address'" in caplog.text


def test_a_given_client_is_used_as_it_is():
    with connect(DaskParams.from_params({"cluster": "slurm"}), client="mine") as client:
        assert client == "mine"
