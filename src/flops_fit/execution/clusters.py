"""Making the Dask cluster a sweep runs on: `training.dask.cluster` is `local`, `address` or `slurm`.

- `local`: a `LocalCluster` of single-threaded worker processes on this machine, started for the
  sweep and closed after it.
- `address`: an existing scheduler at `training.scheduler_address` (workers started by hand). An
  address given while `cluster` is left at its default `local` means `address`, as it always has.
- `slurm`: a `dask_jobqueue.SLURMCluster`: the scheduler runs in this process, each of
  `training.dask.slurm.jobs` Slurm jobs (`sbatch`) runs Dask workers that connect back to it;
  the jobs are cancelled (`scancel`) when the sweep ends.

In every case only the `kedro run` process writes results, so workers need no shared folder.
`connect` yields a `distributed.Client`; `slurm_cluster_kwargs` is the one place that turns the
parameters into `SLURMCluster` arguments (tests render `job_script()` from it without Slurm).
"""

from __future__ import annotations

import logging
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from flops_fit.execution.dask_failures import ExecutionError, import_distributed
from flops_fit.parameters.training import DaskParams, SlurmParams

log = logging.getLogger(__name__)

#: thread-pool variables every worker gets (a worker runs `cores/processes` threads)
_THREAD_VARS = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS")
#: What idle OpenMP threads of a worker do: sleep (`flops_fit.nn.runtime` asks for it).
WORKER_WAIT_POLICY = "PASSIVE"


def cluster_kind(config: DaskParams, scheduler_address: str | None) -> str:
    """`local`, `address` or `slurm`: with `cluster: local`, a scheduler address means `address`."""
    if config.cluster == "local" and scheduler_address:
        return "address"
    return config.cluster


@contextmanager
def connect(
    config: DaskParams, scheduler_address: str | None = None, client: Any = None
) -> Iterator[Any]:
    """A `distributed.Client` on the cluster the parameters choose, closed (with it) afterwards.

    An existing `client` (notebooks, tests) is yielded as it is and not closed.
    """
    if client is not None:
        yield client
        return
    kind = cluster_kind(config, scheduler_address)
    if kind == "address":
        if config.cluster == "local":
            log.info(
                "training.scheduler_address is set, so training.dask.cluster 'local' means "
                "'address': using the existing scheduler at %s",
                scheduler_address,
            )
        with _address_client(config, scheduler_address) as c:
            yield c
    elif kind == "slurm":
        with _slurm_client(config) as c:
            yield c
    else:
        with _local_client(config) as c:
            yield c


@contextmanager
def _address_client(config: DaskParams, address: str | None) -> Iterator[Any]:

    Client = import_distributed().Client
    log.info("Connecting to the Dask scheduler at %s", address)
    try:
        client = Client(address, timeout=config.wait_for_workers_seconds)
    except OSError as exc:
        raise ExecutionError(
            f"cannot reach the Dask scheduler at {address} "
            f"(params:training.scheduler_address): {exc}"
        ) from exc
    try:
        yield client
    finally:
        client.close()


def _thread_env(threads: int, inherit: bool = True) -> dict[str, str]:
    """Thread-pool sizes for a worker; `inherit`: this process's own settings win (local)."""
    given = os.environ if inherit else {}
    env = {k: given.get(k, str(threads)) for k in _THREAD_VARS}
    # Read by OpenMP once, when torch loads: idle OpenMP threads must sleep, not spin on the
    # cores the other workers are using. Never inherited: a shell's ACTIVE (or empty) value
    # would make every run of every worker warn, and the workers share the machine's cores.
    env["OMP_WAIT_POLICY"] = WORKER_WAIT_POLICY
    return env


def _note_wait_policy() -> None:
    """Say once per sweep when the workers' wait policy is not this process's own."""
    own = os.environ.get("OMP_WAIT_POLICY")
    if own is not None and own.strip().upper() != WORKER_WAIT_POLICY:
        log.info("The Dask workers run with OMP_WAIT_POLICY=%s (this process has %r): their "
                 "idle OpenMP threads sleep instead of spinning on each other's cores",
                 WORKER_WAIT_POLICY, own)


def _worker_log_level() -> dict[str, str]:
    """Worker processes import distributed afresh, which turns its loggers up to INFO; give them
    this process's level (a dask config key read before they spawn)."""
    level = logging.getLevelName(logging.getLogger("distributed").getEffectiveLevel())
    return {
        "distributed.nanny.pre-spawn-environ.DASK_LOGGING__DISTRIBUTED": os.environ.get(
            "DASK_LOGGING__DISTRIBUTED", str(level).lower()
        )
    }


@contextmanager
def _local_client(config: DaskParams) -> Iterator[Any]:
    import dask


    distributed = import_distributed()
    threads = max(1, (os.cpu_count() or 1) // config.workers)
    log.info("Starting a Dask LocalCluster with %d worker process(es)", config.workers)
    _note_wait_policy()
    with dask.config.set(_worker_log_level()):
        cluster = distributed.LocalCluster(
            n_workers=config.workers,
            threads_per_worker=1,
            processes=True,
            dashboard_address=config.dashboard_address,
            env=_thread_env(threads),
        )
    try:
        client = distributed.Client(cluster)
        try:
            yield client
        finally:
            client.close()
    finally:
        cluster.close()


def slurm_cluster_kwargs(
    slurm: SlurmParams, dashboard_address: str | None = None
) -> dict[str, Any]:
    """The `dask_jobqueue.SLURMCluster` arguments for `params:training.dask.slurm`."""
    threads = max(1, slurm.cores // slurm.processes)
    # the job's own share, not the driver's settings (the nodes may differ from this machine)
    prologue = [f"export {k}={v}" for k, v in _thread_env(threads, inherit=False).items()]
    scheduler_options: dict[str, Any] = {"dashboard_address": dashboard_address or ":0"}
    if not dashboard_address:
        scheduler_options["dashboard"] = False
    if slurm.scheduler_host:
        scheduler_options["host"] = slurm.scheduler_host
    kwargs: dict[str, Any] = {
        "queue": slurm.queue,
        "account": slurm.account,
        "cores": slurm.cores,
        "processes": slurm.processes,
        "memory": slurm.memory,
        "walltime": slurm.walltime,
        "job_name": slurm.job_name,
        "job_extra_directives": list(slurm.job_extra_directives),
        "job_directives_skip": list(slurm.job_directives_skip),
        "job_script_prologue": prologue + list(slurm.job_script_prologue),
        "python": slurm.python or sys.executable,
        "interface": slurm.interface,
        "log_directory": slurm.log_directory,
        "local_directory": slurm.local_directory,
        "scheduler_options": scheduler_options,
    }
    return {k: v for k, v in kwargs.items() if v is not None}


def job_ids(cluster: Any) -> list[str]:
    """The Slurm job ids of a SLURMCluster's submitted jobs (those `sbatch` has answered)."""
    return sorted(
        (str(job.job_id) for job in cluster.workers.values() if getattr(job, "job_id", None)),
        key=lambda j: (len(j), j),
    )


def _squeue_states(ids: list[str]) -> str:
    """`12: PENDING (Resources), 13: RUNNING` from squeue, or '' when squeue cannot say."""
    if not ids or not shutil.which("squeue"):
        return ""
    try:
        out = subprocess.run(
            ["squeue", "-h", "-j", ",".join(ids), "-o", "%i: %T (%r)"],
            capture_output=True, text=True, timeout=10, check=False,
        ).stdout
    except (OSError, subprocess.SubprocessError):
        return ""
    return ", ".join(line.strip() for line in out.splitlines() if line.strip())


@contextmanager
def _slurm_client(config: DaskParams) -> Iterator[Any]:
    import dask


    distributed = import_distributed()
    try:
        from dask_jobqueue import SLURMCluster
    except ImportError as exc:  # pragma: no cover - dask-jobqueue is a dependency
        raise ExecutionError(
            "params:training.dask.cluster is 'slurm' but dask-jobqueue is not installed "
            "(pip install dask-jobqueue)"
        ) from exc
    if not shutil.which("sbatch"):
        raise ExecutionError(
            "params:training.dask.cluster is 'slurm' but `sbatch` is not on PATH: run kedro on a "
            "Slurm login node (or set training.dask.cluster to local or address)"
        )
    slurm = config.slurm
    kwargs = slurm_cluster_kwargs(slurm, config.dashboard_address)
    log.info(
        "Starting a Dask scheduler here for %d Slurm job(s) (queue %s, %d core(s), %d worker(s) "
        "and %s each, walltime %s)",
        slurm.jobs, slurm.queue or "default", slurm.cores, slurm.processes, slurm.memory,
        slurm.walltime,
    )
    started = time.monotonic()
    with dask.config.set(_worker_log_level()):
        try:
            cluster = SLURMCluster(**kwargs)
        except Exception as exc:
            raise ExecutionError(
                f"cannot start the Dask scheduler for Slurm (params:training.dask.slurm): "
                f"{type(exc).__name__}: {exc}"
            ) from exc
    try:
        log.debug("Slurm job script:\n%s", cluster.job_script())
        log.info("Scheduler at %s; submitting the jobs with sbatch", cluster.scheduler_address)
        # adapt, not scale: a job that ends (walltime, preemption, scancel) is replaced, so a
        # sweep longer than one walltime keeps `jobs` jobs until it is done.
        cluster.adapt(minimum_jobs=slurm.jobs, maximum_jobs=slurm.jobs)
        client = distributed.Client(cluster)
        try:
            _wait_for_first_job(client, cluster, config, started)
            yield client
        finally:
            client.close()
    finally:
        ids = job_ids(cluster)
        cluster.close()
        if ids:
            log.info("Closed the Slurm cluster (scancel of job(s) %s)", ", ".join(ids))


def _wait_for_first_job(client: Any, cluster: Any, config: DaskParams, started: float) -> None:
    """Wait until a first worker joined; log the job ids; a clear error when none starts."""

    timeout = config.wait_for_workers_seconds
    try:
        client.wait_for_workers(1, timeout=timeout)
    except Exception as exc:  # TimeoutError / OSError, depending on the version
        ids = job_ids(cluster)
        states = _squeue_states(ids)
        raise ExecutionError(
            f"no Slurm job started a Dask worker within {timeout:g} s "
            f"(params:training.dask.wait_for_workers_seconds); submitted job(s): "
            f"{', '.join(ids) or 'none'}" + (f"; squeue: {states}" if states else "")
            + ". Check the queue (params:training.dask.slurm.queue), the jobs' logs "
            "(params:training.dask.slurm.log_directory) and that the nodes reach this machine "
            "(params:training.dask.slurm.scheduler_host)"
        ) from exc
    # sbatch answers for every job before its worker can join; give the others a moment
    deadline = time.monotonic() + 5
    while len(job_ids(cluster)) < config.slurm.jobs and time.monotonic() < deadline:
        time.sleep(0.1)
    log.info(
        "Slurm job(s) %s submitted with sbatch; first worker joined after %.1f s",
        ", ".join(job_ids(cluster)) or "?", time.monotonic() - started,
    )
