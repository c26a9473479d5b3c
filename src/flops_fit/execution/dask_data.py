"""The study's data on a Dask cluster: the result of a task, loaded before any run.

Scattered data (`client.scatter`) lives only on the workers that hold it: when every one of
them is gone at once (the Slurm jobs of a sweep cancelled or preempted together, a worker
restarted over its time), it is lost for good, and Dask cancels every pending run with it. As
the result of a task it is computed again from that task for the workers that replace them.
The price: the scheduler keeps the task, a second copy of the data (in the `kedro run`
process for a LocalCluster or Slurm, whose scheduler runs there), so Dask's warning about a
large graph is silenced for this one task.

`data_task` waits for the data to be loaded on a worker before any run is submitted: a data set
that cannot be unpickled there, or that kills the worker loading it, is one clear error, not a
run failure repeated for every run. It then copies the data to every worker (`replicate`), so
that the first runs are placed by the workers' load, not by where the data happens to be.
"""

from __future__ import annotations

import uuid
import warnings
from contextlib import suppress
from typing import Any

from flops_fit.execution.dask_failures import (
    ExecutionError,
    SchedulerLostError,
    client_lost,
    import_distributed,
    is_comm_error,
)


def _hold(data: Any) -> Any:
    return data


def data_task(client: Any, data: Any, timeout: float, address: str) -> Any:
    """The future of the study's data, loaded on a worker (None without data). Raises
    ExecutionError when it cannot be loaded within `timeout` seconds, SchedulerLostError when
    the scheduler at `address` goes away meanwhile."""
    if data is None:
        return None
    try:
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message="Sending large graph")
            future = client.submit(_hold, data, key=f"study-data-{uuid.uuid4().hex[:8]}",
                                   pure=False)
    except Exception as exc:
        if client_lost(client) or is_comm_error(exc):
            raise SchedulerLostError(
                address, f"sending the data failed ({type(exc).__name__}: {exc})") from exc
        raise
    try:
        import_distributed().wait([future], timeout=timeout)
    except Exception as exc:
        if client_lost(client):
            raise SchedulerLostError(
                address, f"waiting for the data failed ({type(exc).__name__}: {exc})") from exc
        raise ExecutionError(
            f"the study's data was not loaded on any Dask worker within {timeout:g} s "
            "(params:training.dask.wait_for_workers_seconds): can the workers unpickle it "
            f"(the same packages and versions as here)? ({type(exc).__name__}: {exc})"
        ) from exc
    if future.status == "error":
        exc = future.exception()
        raise ExecutionError(
            f"the study's data could not be loaded on a Dask worker ({type(exc).__name__}: "
            f"{exc}); a worker that dies loading it may need more memory"
        )
    with suppress(Exception):  # an optimisation: runs fetch the data where it is missing
        client.replicate([future])
    return future
