"""Catalog datasets whose files are never left half-written.

Each class is the kedro-datasets class of the same name with one change: its `save` writes
the file whole or not at all. The parent's own `save` runs unchanged (save_args, versioned
paths, figure lists and dicts, cache invalidation), but every file it opens for writing is an
in-memory buffer; only when the parent closes the file without an error are the bytes written
to a temporary file in the target's folder, fsynced and renamed over the target
(`run_store.write_atomic`, `os.replace`). A crash, a full disk (ENOSPC) or an exception while
serialising leaves the previous file as it was and no temporary file behind. On a remote
filesystem the bytes go up in one `pipe_file`, so an object store never receives a partial
object either. Loading, `describe` and `preview` are the parent's.

`CSVDataset` also neutralises the text cells a spreadsheet would evaluate as a formula and
undoes it on load (`flops_fit.csvsafe`), so that tables carrying user or imported text
(experiment ids, labels, messages) are safe to open and read back as they were.
"""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import pandas as pd
from kedro_datasets.json import JSONDataset as _JSONDataset
from kedro_datasets.matplotlib import MatplotlibDataset as _MatplotlibDataset
from kedro_datasets.pandas import CSVDataset as _CSVDataset
from kedro_datasets.text import TextDataset as _TextDataset

from flops_fit.csvsafe import neutralise_text, restore_text
from flops_fit.datasets.run_store import write_atomic

_LOCAL_PROTOCOLS = ("file", "local")
_TEXT_ARGS = ("encoding", "errors", "newline")
#: fsspec `open` arguments that mean nothing for a file written in one piece
_IGNORED_ARGS = ("block_size", "cache_options", "autocommit")


class _WholeFile(io.BytesIO):
    """The bytes of one file being saved; published only by a close without an error."""

    def __init__(self, commit: Any):
        super().__init__()
        self._commit = commit
        self._failed = False

    def __exit__(self, exc_type: Any, *rest: Any) -> None:
        self._failed = self._failed or exc_type is not None
        super().__exit__(exc_type, *rest)

    def __del__(self) -> None:
        self._failed = True  # never closed by its writer: whatever it holds is incomplete
        super().__del__()

    def close(self) -> None:
        if not self.closed:
            data = self.getvalue()
            super().close()
            if not self._failed:
                self._commit(data)


class _TextFile(io.TextIOWrapper):
    """Text mode over `_WholeFile`, as fsspec opens text files (same encoding arguments)."""

    def __del__(self) -> None:
        self.buffer._failed = True
        super().__del__()

    def __exit__(self, exc_type: Any, *rest: Any) -> None:
        if exc_type is not None:
            self.buffer._failed = True
        super().__exit__(exc_type, *rest)


class _WholeFileSystem:
    """The dataset's fsspec filesystem, except that files opened for writing are `_WholeFile`s."""

    def __init__(self, fs: Any, local: bool):
        self._fs = fs
        self._local = local

    def __getattr__(self, name: str) -> Any:
        return getattr(self._fs, name)

    def open(self, path: str, mode: str = "rb", **kwargs: Any) -> Any:
        if not mode.startswith("w") or "+" in mode:
            if "r" in mode and "+" not in mode:
                return self._fs.open(path, mode, **kwargs)
            raise ValueError(f"{path}: mode {mode!r} cannot be written atomically")
        text_args = {k: kwargs.pop(k) for k in _TEXT_ARGS if k in kwargs}
        unknown = set(kwargs) - set(_IGNORED_ARGS)
        if unknown:
            raise ValueError(f"{path}: open arguments {sorted(unknown)} cannot be used with "
                             "atomic writes")
        raw = _WholeFile(lambda data: self._publish(path, data))
        return raw if "b" in mode else _TextFile(raw, **text_args)

    def _publish(self, path: str, data: bytes) -> None:
        if self._local:
            write_atomic(Path(path), data)
        else:
            self._fs.pipe_file(path, data)


def _save_whole(dataset: Any, parent: type, data: Any) -> None:
    """Run `parent`'s own save (without its logging wrapper: ours wraps this one) with every
    file it writes published whole."""
    save = getattr(parent.save, "__wrapped__", parent.save)
    fs = dataset._fs
    dataset._fs = _WholeFileSystem(fs, local=dataset._protocol in _LOCAL_PROTOCOLS)
    try:
        save(dataset, data)
    finally:
        dataset._fs = fs


class AtomicSave:
    """Marks a dataset whose saves never leave a half-written file."""


class JSONDataset(AtomicSave, _JSONDataset):
    """`json.JSONDataset`, saved atomically (module doc)."""

    def save(self, data: Any) -> None:
        _save_whole(self, _JSONDataset, data)


class TextDataset(AtomicSave, _TextDataset):
    """`text.TextDataset`, saved atomically (module doc)."""

    def save(self, data: str) -> None:
        _save_whole(self, _TextDataset, data)


class MatplotlibDataset(AtomicSave, _MatplotlibDataset):
    """`matplotlib.MatplotlibDataset`, saved atomically, each figure of a list or dict too."""

    def save(self, data: Any) -> None:
        _save_whole(self, _MatplotlibDataset, data)


class CSVDataset(AtomicSave, _CSVDataset):
    """`pandas.CSVDataset`, saved atomically, with formula-like text neutralised (module doc)."""

    def save(self, data: pd.DataFrame) -> None:
        _save_whole(self, _CSVDataset, neutralise_text(data))

    def load(self) -> pd.DataFrame:
        load = getattr(_CSVDataset.load, "__wrapped__", _CSVDataset.load)
        return restore_text(load(self))


class OptionalJSONDataset(JSONDataset):
    """A JSON file a pipeline may or may not have written yet (the validation's verdict):
    loads None while the file does not exist, so the report can say it is missing."""

    def load(self) -> Any:
        return super().load() if self._exists() else None


class OptionalCSVDataset(CSVDataset):
    """A CSV table that may not exist yet (a steered study's rounds): loads None until it does."""

    def load(self) -> pd.DataFrame | None:
        return super().load() if self._exists() else None
