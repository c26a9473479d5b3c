"""Crash-safe storage of training runs: one JSON file per run, each written the moment it exists.

Why not plain `partitions.PartitionedDataset` + `json.JSONDataset`:
- `PartitionedDataset.save` sorts the partitions (`sorted(data.items())`) before writing, so it
  consumes the whole mapping first: nothing would reach the disk before the last run ended, and
  callables (lazy saving) are called in key order, not in the order runs finish.
- `json.JSONDataset` writes in place (truncate, then write): `kill -9` half-way leaves a
  truncated file that breaks every later load.
- Loading an empty folder raises `No partitions found`, but the first training run of a sweep
  must be able to read "no runs yet".

`AtomicJSONDataset` writes to a temporary file in the same folder, fsyncs it and renames it over
the target (`os.replace`, atomic on POSIX and Windows): a reader sees the old file or the new
one, never a partial one. `RunPartitionsDataset` is a PartitionedDataset that saves partitions
in the order the given mapping's `items()` yields them, calling lazy values one at a time — with
a `flops_fit.execution.RunStream` that is completion order, one file per finished run — and
loads an empty or missing folder as `{}`.

A run's file is created if absent (`os.link` of the complete temporary file, which fails when
the name exists): a completed result is never rewritten, by this process or any other; only a
failed, unreadable or broken record (one training treats as pending) is replaced, and a completed
result trained under other settings by the completed result that retrains it
(`training.on_changed_settings: retrain`). Temporary files are named
`.<file>~<host>~<pid>~<random>.tmp`; they are never listed as partitions, and a save removes
only stale ones (their process on this host is gone, or, from another host or under an older
name, after `STALE_TMP_SECONDS`), never a file another live process is writing. One `kedro run`
writes a study at a time (`flops_fit.execution.study_lock`, taken by the project hook).
"""

from __future__ import annotations

import copy
import errno
import json
import logging
import os
import socket
import tempfile
import time
from contextlib import suppress
from pathlib import Path
from typing import Any

from kedro.io import AbstractDataset, DatasetError
from kedro_datasets.partitions import PartitionedDataset

from flops_fit.execution.settings import SETTINGS_FIELD, setting_changes
from flops_fit.execution.study_lock import process_alive
from flops_fit.schema import loss_problem

log = logging.getLogger(__name__)

TMP_SUFFIX = ".tmp"


def _local_path(filepath: str) -> Path:
    if filepath.startswith("file://"):
        filepath = filepath[len("file://") :]
    if "://" in filepath:
        raise DatasetError(
            f"{filepath}: atomic run files need a local (or network-mounted) folder; "
            "the process that runs `kedro run` writes every result, so workers need no access"
        )
    return Path(filepath)


#: a temporary file of a process we cannot see (another host, an unreadable name) is left
#: alone for this long before a save removes it
STALE_TMP_SECONDS = 24 * 3600
_SEP = "~"


def _tmp_prefix(path: Path) -> str:
    """`.<name>~<host>~<pid>~`: whose temporary file it is, so only stale ones are removed."""
    host = socket.gethostname().replace(_SEP, "-") or "unknown"
    return f".{path.name}{_SEP}{host}{_SEP}{os.getpid()}{_SEP}"


def _write_tmp(path: Path, data: str | bytes) -> str:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=_tmp_prefix(path), suffix=TMP_SUFFIX)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data.encode("utf-8") if isinstance(data, str) else data)
            fh.flush()
            os.fsync(fh.fileno())
        os.chmod(tmp, 0o644)
    except BaseException:
        with suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
    return tmp


def write_atomic(path: Path, data: str | bytes) -> None:
    """Write `data` (text as UTF-8) to `path` so that no reader (or a crash) ever sees a
    partial file."""
    tmp = _write_tmp(path, data)
    try:
        os.replace(tmp, path)
    except BaseException:
        with suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


_NO_HARD_LINKS = {errno.EPERM, errno.ENOTSUP, errno.EOPNOTSUPP, errno.ENOSYS, errno.EXDEV}


def create_atomic(path: Path, text: str) -> bool:
    """Write `text` to `path` only if no file is there (hard link of a complete temporary file).

    Returns False, writing nothing, when `path` exists. A reader never sees a partial file and
    no existing file is ever replaced, whoever writes at the same time.
    """
    tmp = _write_tmp(path, text)
    try:
        try:
            os.link(tmp, path)
            return True
        except FileExistsError:
            # NFS may retransmit a link that worked and then report EEXIST: ours is ours.
            with suppress(OSError):
                if os.path.samefile(tmp, path):
                    return True
            return False
        except OSError as exc:
            if exc.errno not in _NO_HARD_LINKS:
                raise
            # vfat, exfat, some FUSE and CIFS mounts have no hard links: replace if absent,
            # which the study lock (one writer per study) keeps safe.
            if path.exists():
                return False
            os.replace(tmp, path)
            return True
    finally:
        with suppress(FileNotFoundError):
            os.unlink(tmp)


def is_temporary(path: str) -> bool:
    name = Path(path).name
    return name.startswith(".") and name.endswith(TMP_SUFFIX)


def temporary_owner(name: str) -> tuple[str, int] | None:
    """(host, pid) of the process that made a temporary file, or None for an older name."""
    if not is_temporary(name):
        return None
    parts = name[1 : -len(TMP_SUFFIX)].rsplit(_SEP, 3)
    if len(parts) != 4 or not parts[2].isdigit():
        return None
    return parts[1], int(parts[2])


def is_stale_temporary(path: str, now: float | None = None) -> bool:
    """A temporary file nobody is writing: its process (on this host) is gone, or it is old.

    A live process's file is never stale, however old; one of another host, or with a name that
    does not say whose it is, only after STALE_TMP_SECONDS.
    """
    name = os.path.basename(path)
    if not is_temporary(name):
        return False
    owner = temporary_owner(name)
    if owner is not None and owner[0] == (socket.gethostname().replace(_SEP, "-") or "unknown"):
        return not process_alive(owner[1])
    try:
        age = (time.time() if now is None else now) - os.stat(path).st_mtime
    except FileNotFoundError:
        return False
    return age > STALE_TMP_SECONDS


class AtomicJSONDataset(AbstractDataset[Any, Any]):
    """A JSON file written atomically (temporary file + fsync + rename)."""

    def __init__(
        self,
        filepath: str,
        save_args: dict[str, Any] | None = None,
        metadata: dict[str, Any] | None = None,
    ):
        self._filepath = _local_path(str(filepath))
        self._save_args = {"indent": 2, "allow_nan": False, **(save_args or {})}
        self.metadata = metadata

    def load(self) -> Any:
        with self._filepath.open(encoding="utf-8") as fh:
            return json.load(fh)

    @property
    def filepath(self) -> Path:
        return self._filepath

    def save(self, data: Any) -> None:
        write_atomic(self._filepath, json.dumps(data, **self._save_args) + "\n")

    def create(self, data: Any) -> bool:
        """Save only if the file does not exist yet (False, nothing written, when it does)."""
        return create_atomic(self._filepath, json.dumps(data, **self._save_args) + "\n")

    def _exists(self) -> bool:
        return self._filepath.is_file()

    def _describe(self) -> dict[str, Any]:
        return {"filepath": str(self._filepath), "save_args": self._save_args}


def retrains(stored: Any, new: Any) -> bool:
    """True when `new` is a run of other settings than the stored result (see
    flops_fit.execution.settings): training chose to train it again, so the file may be replaced."""
    if not isinstance(stored, dict) or not isinstance(new, dict):
        return False
    settings = new.get(SETTINGS_FIELD)
    if not isinstance(settings, dict):
        return False
    return bool(setting_changes(stored, new, settings, new.get("seed")))


def is_completed_result(stored: Any, new: Any = None) -> bool:
    """True for a stored record of a completed run with a usable loss (`schema.loss_problem`)
    that is the same run (experiment_id, replica) as `new`: such a file is never rewritten."""
    if not isinstance(stored, dict) or stored.get("status") != "completed":
        return False
    if loss_problem(stored.get("final_loss")) is not None:
        return False
    if isinstance(new, dict):
        for key in ("experiment_id", "replica"):
            if key in new and stored.get(key, 0 if key == "replica" else None) != new[key]:
                return False
    return True


class RunPartitionsDataset(PartitionedDataset):
    """PartitionedDataset of run records: completion-order, per-run, atomic saves (module doc)."""

    def __init__(
        self, *, path: str, dataset: Any = None, filename_suffix: str = ".json", **kwargs: Any
    ):
        super().__init__(
            path=path,
            dataset=dataset or {"type": f"{__name__}.AtomicJSONDataset"},
            filename_suffix=filename_suffix,
            **kwargs,
        )

    def _list_partitions(self) -> list[str]:
        return [p for p in super()._list_partitions() if not is_temporary(p)]

    def load(self) -> dict[str, Any]:
        self._invalidate_caches()
        if not self._list_partitions():
            return {}
        return super().load()

    @property
    def folder(self) -> Path:
        """The local folder the run files live in (the study folder the lock is taken on)."""
        return _local_path(str(self._filesystem._strip_protocol(self._normalized_path)))

    def save(self, data: Any) -> None:
        if self._overwrite and self._filesystem.exists(self._normalized_path):
            self._filesystem.rm(self._normalized_path, recursive=True)
        self._remove_leftovers()
        try:
            for partition_id, partition_data in data.items():  # the mapping's order, lazily
                kwargs = copy.deepcopy(self._dataset_config)
                kwargs[self._filepath_arg] = self._join_protocol(
                    self._partition_to_path(partition_id)
                )
                dataset = self._dataset_type(**kwargs)
                if callable(partition_data) and self._save_lazily:
                    partition_data = partition_data()
                if isinstance(dataset, AtomicJSONDataset):
                    self._save_record(dataset, partition_id, partition_data)
                else:
                    dataset.save(partition_data)
        finally:
            self._invalidate_caches()

    @staticmethod
    def _save_record(dataset: AtomicJSONDataset, partition_id: str, record: Any) -> None:
        """Create the run's file; replace only a record that is not a completed run."""
        if dataset.create(record):
            return
        try:
            stored = dataset.load()
        except (OSError, ValueError):
            stored = None  # unreadable: not a result anyone can rely on; replace it
        if is_completed_result(stored, record) and retrains(stored, record):
            if not is_completed_result(record):
                # a failed retrain keeps the earlier result: it stays the best there is, and
                # the next run still finds it trained under other settings
                log.warning("%s: the new attempt of run %s failed; its earlier result "
                            "(trained under other settings) is kept", dataset.filepath,
                            partition_id)
                return
        elif is_completed_result(stored, record):
            raise DatasetError(
                f"{dataset.filepath}: run {partition_id} already has a completed result, and a "
                "completed result file is never rewritten (is another process writing this "
                "study?)"
            )
        # a failed, unreadable or broken record (training treats it as pending), or a result
        # trained under other settings that its new result retrains: replaced
        dataset.save(record)

    def _remove_leftovers(self) -> None:
        """Remove stale temporary files only: never one a live process is writing."""
        folder = self._filesystem._strip_protocol(self._normalized_path)
        if self._protocol in ("file", "local") and os.path.isdir(folder):
            for name in os.listdir(folder):
                path = os.path.join(folder, name)
                if is_stale_temporary(path):
                    with suppress(OSError):
                        os.unlink(path)
