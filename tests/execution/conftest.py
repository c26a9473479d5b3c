from __future__ import annotations

import pytest

from flops_fit.backends.base import BACKENDS
from tests.execution.helpers import TEST_BACKENDS, small_plan


@pytest.fixture
def plan():
    return small_plan()


@pytest.fixture
def test_backends(monkeypatch):
    """Register the test doubles of tests/execution/helpers.py in this process."""
    for name, path in TEST_BACKENDS.items():
        monkeypatch.setitem(BACKENDS, name, path)
    return TEST_BACKENDS
