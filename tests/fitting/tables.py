"""Shared test inputs for tests/fitting: a Chinchilla-shaped table and Epoch AI's digitised runs."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

#: the column names of Epoch AI's digitised Chinchilla runs, as `analysis.columns`
CHINCHILLA_COLUMNS = {"model_size": ["Model Size"], "compute": ["Training FLOP"], "loss": ["loss"]}
REFERENCE_DIR = Path(__file__).resolve().parents[2] / ".." / "shared" / "reference"
CHINCHILLA_CSV = REFERENCE_DIR / "epochai_chinchilla_svg_extracted_data.csv"
needs_chinchilla = pytest.mark.skipif(
    not CHINCHILLA_CSV.is_file(),
    reason=f"reference data not found at {CHINCHILLA_CSV.resolve()} (CI places shared/ beside "
    "the clone)",
)


def chinchilla_like() -> pd.DataFrame:
    """Nine runs in Chinchilla's column names: three sizes at each of three budgets."""
    return pd.DataFrame(
        {
            "Model Size": [1e8, 2e8, 4e8, 1e8, 2e8, 4e8, 1e8, 2e8, 4e8],
            "Training FLOP": [1e18] * 3 + [1e19] * 3 + [1e20] * 3,
            "loss": [3.1, 3.0, 3.05, 2.8, 2.7, 2.75, 2.5, 2.4, 2.45],
        }
    )
