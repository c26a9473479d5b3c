"""Fixtures for the reporting tests: a fully known study in the analysis output schemas."""

from __future__ import annotations

import pytest

from tests.reporting.synthetic_study import make_study


@pytest.fixture
def study() -> dict:
    """results, optimal_points, scaling_laws, predictions, scaling_law_curves (fresh copies)."""
    return make_study()
