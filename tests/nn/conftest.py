"""Fixtures for the torch backend tests: the real default corpus, split once per session."""

from __future__ import annotations

import os

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import pytest  # noqa: E402
import torch  # noqa: E402

from flops_fit.corpus import CorpusSplit, prepare_corpus  # noqa: E402


@pytest.fixture(scope="session", autouse=True)
def _one_thread():
    torch.set_num_threads(1)


@pytest.fixture(scope="session")
def corpus_split() -> CorpusSplit:
    from flops_fit.datasets.package_corpus import PackageCorpusDataset

    text = PackageCorpusDataset().load()
    return prepare_corpus(
        text, {"tokenizer": "bytes", "heldout_fraction": 0.02, "block_size": 4096}
    )
