"""One writer per study: an OS-level lock on the runs folder, held for a whole `kedro run`.

`StudyLock(folder).acquire()` takes `fcntl.flock(LOCK_EX | LOCK_NB)` on `<folder>/.study.lock`
and writes who holds it (pid, host, start time, command line) into that file. The kernel drops
the lock when the descriptor is closed, so any exit of the holder — a clean end, an exception,
Ctrl-C or `kill -9` — releases it; a stale lock file (its content) never blocks anyone. A second
process gets `StudyLockedError` at once, naming the folder, the holder and what to do.

`check_writable_dir(path)` is the other check made before any node runs: the folder exists
(created if missing) and a file can be created in it, else `StorageError` names the path and
the OS error in one line.

Framework-free: the project hook (`flops_fit.hooks`) calls it; so can a notebook or a script.
`flock` is advisory and per open file description; it works on local disks and on NFSv4 (and
Lustre/GPFS with flock enabled), which is where a study folder lives.
"""

from __future__ import annotations

import errno
import json
import os
import shlex
import socket
import sys
import uuid
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

try:  # POSIX; on Windows the lock is skipped (the atomic, create-if-absent writes still hold)
    import fcntl
except ImportError:  # pragma: no cover - Windows
    fcntl = None  # type: ignore[assignment]

LOCK_NAME = ".study.lock"


class StorageError(OSError):
    """A data folder cannot be used; the message names the path and the OS error."""


class StudyLockedError(RuntimeError):
    """Another live process holds the study's lock; the message says who and what to do."""


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def _os_error(exc: OSError) -> str:
    name = errno.errorcode.get(exc.errno or 0, "")
    return f"{exc.strerror or exc} ({name})" if name else str(exc.strerror or exc)


def check_writable_dir(path: str | os.PathLike[str], what: str = "data root") -> Path:
    """Create `path` if missing and prove a file can be written there; else StorageError."""
    folder = Path(path)
    try:
        folder.mkdir(parents=True, exist_ok=True)
        probe = folder / f".write-probe-{socket.gethostname()}-{os.getpid()}-{uuid.uuid4().hex}"
        fd = os.open(probe, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
        os.close(fd)
        os.unlink(probe)
    except OSError as exc:
        raise StorageError(
            f"{what} {folder} is not a writable folder: {_os_error(exc)}. Nothing was run; "
            f"choose another folder with --params data_root=<folder>, or fix its permissions"
        ) from None
    return folder


def process_alive(pid: int) -> bool:
    """True when a process with this pid exists on this machine (or may: no permission)."""
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    except OSError:
        return False
    return True


def _command_line() -> str:
    try:  # Linux: the real argv (`python -m kedro run ...`, not sys.argv's rewritten one)
        raw = Path("/proc/self/cmdline").read_bytes()
        args = [a.decode("utf-8", "replace") for a in raw.split(b"\0") if a]
        if args:
            return shlex.join(args)
    except OSError:
        pass
    return shlex.join([sys.executable, *sys.argv])


def holder_info() -> dict[str, Any]:
    """What the lock file says about the process that holds it."""
    return {
        "pid": os.getpid(),
        "host": socket.gethostname(),
        "started_at": _now(),
        "command": _command_line(),
    }


def describe_holder(info: dict[str, Any] | None) -> str:
    if not info:
        return "a process that has not written its details yet (it is starting)"
    return (
        f"pid {info.get('pid', '?')} on host {info.get('host', '?')}, running since "
        f"{info.get('started_at', '?')}: {info.get('command', '?')}"
    )


class StudyLock:
    """The exclusive lock on a study's runs folder (module doc). Use as a context manager."""

    def __init__(self, folder: str | os.PathLike[str]):
        self.folder = Path(folder)
        self.path = self.folder / LOCK_NAME
        self._fd: int | None = None

    @property
    def held(self) -> bool:
        return self._fd is not None

    def read_holder(self) -> dict[str, Any] | None:
        try:
            text = self.path.read_text(encoding="utf-8")
            info = json.loads(text) if text.strip() else None
        except (OSError, ValueError):
            return None
        return info if isinstance(info, dict) else None

    def acquire(self) -> StudyLock:
        if self._fd is not None:
            return self
        check_writable_dir(self.folder, "runs folder")
        try:
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        except OSError as exc:
            raise StorageError(
                f"runs folder {self.folder}: cannot open the study lock {self.path.name}: "
                f"{_os_error(exc)}"
            ) from None
        if fcntl is not None:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError as exc:
                os.close(fd)
                if exc.errno not in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
                    raise StorageError(
                        f"runs folder {self.folder}: cannot lock {self.path.name}: "
                        f"{_os_error(exc)}"
                    ) from None
                raise StudyLockedError(self._locked_message()) from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, (json.dumps(holder_info()) + "\n").encode("utf-8"), 0)
        os.fsync(fd)
        self._fd = fd
        return self

    def _locked_message(self) -> str:
        info = self.read_holder()
        here = socket.gethostname()
        pid = info.get("pid") if info else None
        if info and info.get("host") == here and isinstance(pid, int) and not process_alive(pid):
            info = None  # details of an earlier, dead holder: the new one has not written yet
        hint = (
            f"wait for it to finish, or stop it (kill {info['pid']}) and run again: "
            "completed runs are kept and only the pending ones are trained"
            if info and info.get("host") == here
            else "wait for it to finish, or stop it and run again: completed runs are kept "
            "and only the pending ones are trained"
        )
        return (
            f"The study in {self.folder} is being written by another kedro run: "
            f"{describe_holder(info)}. Only one run may write a study at a time; nothing was "
            f"run. {hint[0].upper()}{hint[1:]}; or use another folder with "
            f"--params data_root=<folder>."
        )

    def release(self) -> None:
        fd, self._fd = self._fd, None
        if fd is None:
            return
        try:
            os.ftruncate(fd, 0)  # no stale details left behind (they would not block anyone)
        except OSError:
            pass
        finally:
            os.close(fd)  # closing the descriptor releases the flock

    def __enter__(self) -> StudyLock:
        return self.acquire()

    def __exit__(self, *exc: object) -> None:
        self.release()
