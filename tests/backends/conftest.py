from __future__ import annotations

import pytest

from tests.execution.helpers import small_plan


@pytest.fixture
def plan():
    return small_plan()
