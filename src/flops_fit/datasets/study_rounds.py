"""The rounds of a steered study: one JSON file per round in a folder (`round_001.json`, ...).

`save` takes one round document (or a list of them) and writes each to its own file, whole or
not at all (`run_store.write_atomic`); the other rounds' files are left as they are. `load`
returns every round's document in round order, and an empty list when there is none yet (a
study that has only its pilot). As with `runs` / `existing_runs`, the catalog names the folder
twice (`round_plans` read, `next_round` written), since Kedro does not allow one dataset as a
node's input and output. With `latest: true` (the `next_round` entry) `load` returns the
document of the highest round only, which is what the node that wrote it returned.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from kedro.io import AbstractDataset, DatasetError

from flops_fit.datasets.atomic import AtomicSave
from flops_fit.datasets.run_store import _local_path, write_atomic
from flops_fit.jsonsafe import to_json_text

PATTERN = "round_*.json"


def round_file(folder: Path, k: int) -> Path:
    return folder / f"round_{int(k):03d}.json"


class RoundFilesDataset(AtomicSave, AbstractDataset[Any, list]):
    def __init__(self, path: str, latest: bool = False,
                 metadata: dict[str, Any] | None = None) -> None:
        self._folder = _local_path(str(path))
        self._latest = bool(latest)
        self.metadata = metadata

    @property
    def folder(self) -> Path:
        return self._folder

    def load(self) -> list[dict[str, Any]] | dict[str, Any]:
        docs = self._load_all()
        if not self._latest:
            return docs
        if not docs:
            raise DatasetError(f"{self._folder}: no round has been planned yet (run the "
                               "next_round pipeline, or `kedro study`)")
        return docs[-1]

    def _load_all(self) -> list[dict[str, Any]]:
        docs = []
        for path in sorted(self._folder.glob(PATTERN)):
            try:
                doc = json.loads(path.read_text(encoding="utf-8"))
            except (OSError, ValueError) as exc:
                raise DatasetError(f"{path}: not a readable round document ({exc}); delete it "
                                   "and run `kedro study` again to plan that round anew") from exc
            if not isinstance(doc, dict) or not isinstance(doc.get("round"), int):
                raise DatasetError(f"{path}: not a round document (no integer 'round')")
            docs.append(doc)
        return sorted(docs, key=lambda d: d["round"])

    def save(self, data: dict[str, Any] | list[dict[str, Any]]) -> None:
        for doc in [data] if isinstance(data, dict) else list(data):
            write_atomic(round_file(self._folder, doc["round"]), to_json_text(doc) + "\n")

    def _exists(self) -> bool:
        return self._folder.is_dir()

    def _describe(self) -> dict[str, Any]:
        return {"path": str(self._folder), "latest": self._latest}
