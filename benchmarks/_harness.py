"""Shared helpers of the benchmarks: worker processes that fail fast instead of hanging.

`run_workers(target, args_per_worker)` starts one spawned process per argument tuple, calls
`target(rank, *args)` in each and returns their return values in rank order. The parent never
waits on a worker that can no longer answer: when a worker raises, dies (a non-zero exit code, a
signal, the OOM killer) or exits without a result, or when the deadline passes, the parent prints
that worker's traceback or exit code, terminates every other worker (they may be blocked on a
barrier the failed one will never reach) and raises `WorkerFailed`; `exit_on_failure` turns that
into exit status 1 for a benchmark's `main`.

`fail` injects a failure into worker 0 before its target runs, to prove the above (the
benchmarks' `--fail-worker raise|exit`, exercised by tests/benchmarks/test_quick_modes.py).
"""

from __future__ import annotations

import multiprocessing as mp
import os
import queue as queue_lib
import sys
import time
import traceback
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any

#: spawn: a clean interpreter per worker (no forked torch/OpenMP state), as `make run` does
CTX = mp.get_context("spawn")

FAIL_MODES = ("raise", "exit")
INJECTED_EXIT_CODE = 3


class WorkerFailed(RuntimeError):
    """A worker raised, died or timed out; the message says which and how."""


class InjectedFailure(RuntimeError):
    """The failure `--fail-worker raise` asks for."""


def _worker_main(target: Callable[..., Any], rank: int, args: tuple, results, fail: str | None):
    try:
        if fail is not None and rank == 0:
            if fail == "exit":
                os._exit(INJECTED_EXIT_CODE)  # a death without a traceback, as a crash would be
            raise InjectedFailure(f"worker {rank}: injected failure (--fail-worker {fail})")
        value = target(rank, *args)
    except BaseException:
        results.put((rank, "error", traceback.format_exc()))
        results.close()
        results.join_thread()  # the message is in the pipe before this process exits
        sys.exit(1)
    results.put((rank, "ok", value))


def run_workers(
    target: Callable[..., Any],
    args_per_worker: Sequence[tuple],
    *,
    timeout: float | None = None,
    fail: str | None = None,
    poll_seconds: float = 0.2,
) -> list[Any]:
    """`[target(rank, *args) for rank, args in enumerate(args_per_worker)]`, one process each.

    `target` must be importable by a spawned process (a module-level function). Raises
    `WorkerFailed` as soon as any worker fails, after terminating the others.
    """
    if fail is not None and fail not in FAIL_MODES:
        raise ValueError(f"fail must be one of {FAIL_MODES}, got {fail!r}")
    results = CTX.Queue()
    procs = [
        CTX.Process(
            target=_worker_main,
            args=(target, rank, tuple(args), results, fail),
            name=f"bench-worker-{rank}",
            daemon=True,  # never outlive the parent
        )
        for rank, args in enumerate(args_per_worker)
    ]
    deadline = None if timeout is None else time.monotonic() + timeout
    values: dict[int, Any] = {}
    try:
        for p in procs:
            p.start()
        while len(values) < len(procs):
            try:
                rank, status, payload = results.get(timeout=poll_seconds)
            except queue_lib.Empty:
                _check_alive(procs, values, results, deadline)
                continue
            if status == "error":
                raise WorkerFailed(f"worker {rank} raised:\n{payload.rstrip()}")
            values[rank] = payload
        for p in procs:  # they are exiting: let them finish their own clean-up
            p.join(timeout=10)
    finally:
        _stop(procs)
    return [values[rank] for rank in range(len(procs))]


def _check_alive(procs, values: dict[int, Any], results, deadline: float | None) -> None:
    dead = [r for r, p in enumerate(procs) if r not in values and p.exitcode is not None]
    if dead:
        # A worker that put its message and then exited: the message may still be in flight.
        try:
            rank, status, payload = results.get(timeout=1.0)
        except queue_lib.Empty:
            rank = dead[0]
            raise WorkerFailed(
                f"worker {rank} died with {_describe_exit(procs[rank].exitcode)} before "
                "reporting a result (its own output, if any, is above)"
            ) from None
        if status == "error":
            raise WorkerFailed(f"worker {rank} raised:\n{payload.rstrip()}")
        values[rank] = payload
        return
    if deadline is not None and time.monotonic() > deadline:
        waiting = [r for r in range(len(procs)) if r not in values]
        raise WorkerFailed(f"timed out: worker(s) {waiting} still running past the deadline")


def _describe_exit(code: int | None) -> str:
    if code is not None and code < 0:
        import signal

        try:
            return f"signal {signal.Signals(-code).name}"
        except ValueError:
            return f"signal {-code}"
    return f"exit code {code}"


def _stop(procs) -> None:
    for p in procs:
        if p.is_alive():
            p.terminate()
    for p in procs:
        p.join(timeout=5)
        if p.is_alive():
            p.kill()
            p.join(timeout=5)


@contextmanager
def exit_on_failure() -> Iterator[None]:
    """Turn `WorkerFailed` into a message on stderr and exit status 1."""
    try:
        yield
    except WorkerFailed as exc:
        print(f"\nbenchmark FAILED: {exc}", file=sys.stderr, flush=True)
        sys.exit(1)
