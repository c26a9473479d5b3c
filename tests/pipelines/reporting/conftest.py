from __future__ import annotations

import pytest

from tests.reporting.synthetic_study import make_study


@pytest.fixture
def study() -> dict:
    return make_study()
