"""Stopping a sweep on SIGTERM / SIGINT without losing the run in progress.

Schedulers (Slurm's preemption, a job's walltime, `scancel`) send SIGTERM and kill the process a
little later. The handler installed for a `kedro run` only sets a flag while runs are training:
the training loop looks at it after every step, writes the run's checkpoint at once and raises
`RunInterrupted`; the executors then start no other run, and the stream logs one line saying
what was saved and what stays pending, then raises `SweepInterrupted`. Nothing is recorded as
failed, so the same command resumes from the checkpoint. Outside training (planning, analysis)
the handler raises `SweepInterrupted` at once, as there is nothing to save; a second signal
while a run is being saved also stops at once.

The flag is per process: a Dask worker's flag is set by the driver (`client.run`), so its run
checkpoints as well.
"""

from __future__ import annotations

import logging
import signal
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

log = logging.getLogger(__name__)

_stop = threading.Event()
_signal_number: list[int] = []  # the signal that set the flag (for the exit code)
_training = [0]  # > 0 while runs are training in this process (the flag is then looked at)

# What the run in progress in each thread of this process has reached (name, attempt, step,
# num_steps, monotonic times of its start and last step); the time limit and the stall warning
# report it. Per thread: a Dask worker may run several runs at once.
_progress: dict[int, dict[str, Any]] = {}

SIGNALS = (signal.SIGTERM, signal.SIGINT)


class RunInterrupted(Exception):
    """A run stopped on request (its checkpoint, if it has one, was just written)."""

    def __init__(self, name: str, step: int, num_steps: int, saved: bool):
        self.name, self.step, self.num_steps, self.saved = name, step, num_steps, saved
        where = "checkpoint written" if saved else "no checkpoint"
        super().__init__(f"{name}: interrupted at step {step} of {num_steps} ({where})")


class SweepInterrupted(Exception):
    """The sweep stopped on SIGTERM / SIGINT; its message is the one line the user sees."""

    def __init__(self, message: str, signum: int | None = None):
        super().__init__(message)
        self.signum = signum
        self.logged = False  # the sweep logs its own line; the hook logs any other

    @property
    def exit_code(self) -> int:
        # the shell's convention for "ended by signal N"
        return 128 + (self.signum or signal.SIGTERM)


def requested() -> bool:
    return _stop.is_set()


def request(signum: int | None = None) -> None:
    """Ask the run in progress in this process to checkpoint and stop (also used on workers)."""
    if signum is not None and not _signal_number:
        _signal_number.append(signum)
    _stop.set()


def clear() -> None:
    _stop.clear()
    _signal_number.clear()


def signal_received() -> int | None:
    return _signal_number[0] if _signal_number else None


@contextmanager
def training() -> Iterator[None]:
    """While inside, a signal only sets the flag: the runs stop at their next step."""
    _training[0] += 1
    try:
        yield
    finally:
        _training[0] -= 1


def _handler(signum: int, frame: Any) -> None:
    name = signal.Signals(signum).name
    if _training[0] > 0 and not _stop.is_set():
        log.warning("%s received: saving the run in progress and stopping the sweep", name)
        request(signum)
        return
    request(signum)
    raise SweepInterrupted(f"interrupted by {name} while no run was training; every run "
                           "already saved stays saved: run the same command to go on", signum)


def install() -> dict[int, Any]:
    """Install the handler (main thread only); returns the previous handlers for `restore`."""
    if threading.current_thread() is not threading.main_thread():
        return {}
    previous = {s: signal.getsignal(s) for s in SIGNALS}
    clear()
    for s in SIGNALS:
        signal.signal(s, _handler)
    return previous


def restore(previous: dict[int, Any]) -> None:
    for s, h in previous.items():
        signal.signal(s, h if h is not None else signal.SIG_DFL)


# -- what the run in progress has reached ------------------------------------------------------
def start_run(name: str, num_steps: int | None = None, attempt: int = 1,
              thread: int | None = None) -> None:
    now = time.monotonic()
    _progress[thread or threading.get_ident()] = {
        "name": name, "attempt": attempt, "step": 0, "num_steps": num_steps, "started": now,
        "last": now}


def step_done(step: int, num_steps: int | None = None) -> None:
    entry = _progress.setdefault(threading.get_ident(), {"started": time.monotonic()})
    entry["step"] = step
    if num_steps is not None:
        entry["num_steps"] = num_steps
    entry["last"] = time.monotonic()


def progress(thread: int | None = None) -> dict[str, Any]:
    """What the run in `thread` (default: this one) has reached."""
    return dict(_progress.get(thread or threading.get_ident(), {}))


def worker_progress() -> list[dict[str, Any]]:
    """What every run of this process has reached, with ages in seconds (comparable across
    machines): what the Dask driver asks each worker for."""
    now = time.monotonic()
    out = []
    for entry in list(_progress.values()):
        entry = dict(entry)
        entry["running_seconds"] = now - entry.pop("started", now)
        entry["idle_seconds"] = now - entry.pop("last", now)
        out.append(entry)
    return out


def end_run() -> None:
    _progress.pop(threading.get_ident(), None)


# -- Dask workers --------------------------------------------------------------------------
#: how long a worker that got SIGTERM waits for its runs to checkpoint before it ends
WORKER_GRACE_SECONDS = 20.0


def install_worker_handler(grace: float = WORKER_GRACE_SECONDS) -> bool:
    """On a Dask worker (run by the driver with `client.run`): SIGTERM makes the worker's runs
    checkpoint at their next step, then the worker ends as it would have (its previous handler,
    or exit 143) once they have stopped or after `grace` seconds. False where it cannot be
    installed (not the process's main thread)."""
    if threading.current_thread() is not threading.main_thread():
        return False
    previous = signal.getsignal(signal.SIGTERM)
    if getattr(previous, "_flops_fit", False):
        return True  # installed by an earlier sweep on this worker

    def _worker_sigterm(signum: int, frame: Any) -> None:
        request(signum)
        threading.Thread(target=_end_worker, args=(previous, signum, grace),
                         name="flops-fit-sigterm", daemon=True).start()

    _worker_sigterm._flops_fit = True  # type: ignore[attr-defined]
    signal.signal(signal.SIGTERM, _worker_sigterm)
    return True


def _end_worker(previous: Any, signum: int, grace: float) -> None:
    deadline = time.monotonic() + grace
    while _progress and time.monotonic() < deadline:
        time.sleep(0.05)
    time.sleep(0.5)  # the stopped run's result on its way to the scheduler
    if callable(previous):
        previous(signum, None)
    elif previous != signal.SIG_IGN:
        import os

        os._exit(128 + signum)
