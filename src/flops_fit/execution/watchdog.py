"""A time limit per run and a warning for a run that makes no progress.

A run that blocks (a stuck loader, a dead network file system, a collective that never returns)
would otherwise hold its executor forever. `params:training.run_timeout_seconds` bounds each
attempt; the run is then failed with "run exceeded H:MM:SS at step k of n" and retried like any
failure. The step reached comes from the training loop (`interrupt.step_done`).

How a run is stopped depends on where it runs:

- the sequential executor (this process's main thread): SIGALRM raises `RunTimeout` inside the
  run, wherever it waits in Python (a `time.sleep`, a read, a lock); costs nothing while runs
  behave. Code stuck in C without returning to the interpreter is not stopped.
- the Dask executor: the driver asks every worker what its run has reached (`client.run`, a
  message to each worker's event loop, which answers while the task's thread is stuck) every
  few seconds, fails the run that is over its time, cancels its task and restarts its worker
  (`client.restart_workers`): the slot is freed at the price of a worker restart (a few seconds,
  and the study's data is fetched again from another worker, or computed again from its task).

`params:training.stall_warning_seconds` logs one warning naming a run that has made no step for
that long (the sequential executor: a watcher thread; Dask: the same polling).
"""

from __future__ import annotations

import logging
import signal
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta
from typing import Any

from flops_fit.execution import interrupt

log = logging.getLogger(__name__)


class RunTimeout(Exception):
    """The run took longer than `params:training.run_timeout_seconds`."""


def duration(seconds: float) -> str:
    return str(timedelta(seconds=round(seconds)))


def timeout_message(seconds: float, progress: dict[str, Any]) -> str:
    step, steps = progress.get("step"), progress.get("num_steps")
    if steps:
        at = f"at step {step or 0} of {steps}"
    else:
        at = f"at step {step}" if step else "before its first step"
    return f"run exceeded {duration(seconds)} {at} (params:training.run_timeout_seconds)"


def stall_message(name: str, stalled: float, progress: dict[str, Any]) -> str:
    step, steps = progress.get("step") or 0, progress.get("num_steps")
    at = f"step {step} of {steps}" if steps else f"step {step}"
    return (f"Run {name} has made no step for {duration(stalled)} (at {at}); it may be hung "
            "(params:training.stall_warning_seconds, run_timeout_seconds)")


@contextmanager
def limits(name: str, timeout: float | None, stall: float | None) -> Iterator[None]:
    """Bound the run inside (main thread) and warn if it stalls; a no-op with neither set."""
    done = threading.Event()
    watcher = None
    if stall:
        watcher = threading.Thread(target=_watch_stall,
                                   args=(name, stall, done, threading.get_ident()),
                                   name=f"stall-watch-{name}", daemon=True)
        watcher.start()
    alarm = bool(timeout) and threading.current_thread() is threading.main_thread()
    previous: Any = None
    if alarm:
        def _expired(signum: int, frame: Any) -> None:  # runs in the main thread: its run
            raise RunTimeout(timeout_message(timeout, interrupt.progress()))

        previous = signal.signal(signal.SIGALRM, _expired)
        signal.setitimer(signal.ITIMER_REAL, float(timeout))
    try:
        yield
    finally:
        if alarm:
            signal.setitimer(signal.ITIMER_REAL, 0)
            signal.signal(signal.SIGALRM, previous if previous is not None else signal.SIG_DFL)
        done.set()
        if watcher is not None:
            watcher.join(timeout=1)


def _watch_stall(name: str, stall: float, done: threading.Event, thread: int) -> None:
    warned_at = None
    while not done.wait(min(1.0, stall / 4)):
        progress = interrupt.progress(thread)
        last = progress.get("last")
        if last is None:
            continue
        stalled = time.monotonic() - last
        if stalled >= stall and warned_at != last:
            log.warning("%s", stall_message(name, stalled, progress))
            warned_at = last  # once per stall: a new step re-arms the warning


class DaskRunWatch:
    """The Dask driver's side: asks every worker what its runs have reached, at most once per
    `every` seconds; warns about stalled runs and lists the runs over their time."""

    def __init__(self, client: Any, timeout: float | None, stall: float | None,
                 every: float = 1.0):
        self.client, self.timeout, self.stall, self.every = client, timeout, stall, every
        self._next = 0.0
        self._warned: set[tuple] = set()

    def expired(self, running: dict[tuple[str, int], str]) -> list[tuple[str, str, str]]:
        """(future key, worker address, message) for each run in `running` ((partition key,
        attempt) -> future key) that is over its time."""
        now = time.monotonic()
        if now < self._next:
            return []
        self._next = now + self.every
        try:
            reports = self.client.run(interrupt.worker_progress, on_error="ignore")
        except Exception:  # noqa: BLE001 - a lost scheduler is noticed by the executor
            return []
        out = []
        for address, entries in (reports or {}).items():
            for entry in entries if isinstance(entries, list) else []:
                key = (entry.get("name"), entry.get("attempt"))
                if key not in running:
                    continue
                if self.stall and entry["idle_seconds"] >= self.stall:
                    mark = (key, entry.get("step"))
                    if mark not in self._warned:
                        self._warned.add(mark)
                        log.warning("%s", stall_message(str(key[0]), entry["idle_seconds"],
                                                        entry))
                if self.timeout and entry["running_seconds"] >= self.timeout:
                    out.append((running[key], address, timeout_message(self.timeout, entry)))
        return out
