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
loads an empty or missing folder as `{}`. Leftover temporary files (a kill between write and
rename) are never listed as partitions and are removed by the next save.
"""

from __future__ import annotations

import copy
import json
import os
import tempfile
from contextlib import suppress
from pathlib import Path
from typing import Any

from kedro.io import AbstractDataset, DatasetError
from kedro_datasets.partitions import PartitionedDataset

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


def write_atomic(path: Path, text: str) -> None:
    """Write `text` to `path` so that no reader (or a crash) ever sees a partial file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=TMP_SUFFIX)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(text)
            fh.flush()
            os.fsync(fh.fileno())
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        with suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def is_temporary(path: str) -> bool:
    name = Path(path).name
    return name.startswith(".") and name.endswith(TMP_SUFFIX)


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

    def save(self, data: Any) -> None:
        write_atomic(self._filepath, json.dumps(data, **self._save_args) + "\n")

    def _exists(self) -> bool:
        return self._filepath.is_file()

    def _describe(self) -> dict[str, Any]:
        return {"filepath": str(self._filepath), "save_args": self._save_args}


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
                dataset.save(partition_data)
        finally:
            self._invalidate_caches()

    def _remove_leftovers(self) -> None:
        folder = self._filesystem._strip_protocol(self._normalized_path)
        if self._protocol in ("file", "local") and os.path.isdir(folder):
            for name in os.listdir(folder):
                if is_temporary(name):
                    with suppress(OSError):
                        os.unlink(os.path.join(folder, name))
