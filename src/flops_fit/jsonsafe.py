"""The one JSON cleaner: what every JSON dataset of the project is handed goes through `json_safe`.

Strict JSON has no NaN or infinity and no numpy or torch scalars; the catalog's JSON datasets are
saved with `allow_nan: false`, so anything unclean fails loudly instead of writing `NaN`.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import numpy as np


def is_finite_number(value: Any) -> bool:
    """A JSON number that is a number: int or float (numpy's float64 too), finite, not a bool."""
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def json_safe(value: Any) -> Any:
    """Plain JSON: numpy/torch scalars and arrays to Python, NaN/inf to None, tuples to lists,
    mapping keys to str; anything else that JSON cannot hold becomes its `str`."""
    if isinstance(value, np.ndarray):
        return [json_safe(v) for v in value.tolist()]
    if hasattr(value, "item") and callable(value.item) and getattr(value, "ndim", None) == 0:
        value = value.item()  # numpy and torch scalars
    if value is None or isinstance(value, (bool, str)):
        return value
    if isinstance(value, int):
        return int(value)
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, Mapping):
        return {str(k): json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [json_safe(v) for v in value]
    return str(value)


def flat_cells(records: list[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """Records for a CSV table: a mapping or list in a cell (a plan's `model_kwargs`) becomes its
    JSON text, so the table stays one value per cell and can be read back."""
    import json

    return [{k: json.dumps(json_safe(v), sort_keys=True) if isinstance(v, (Mapping, list, tuple))
             else v for k, v in r.items()} for r in records]


def to_json_text(value: Any) -> str:
    """`value` as the text the catalog's JSON datasets write (indent 2, strict: no NaN)."""
    import json

    return json.dumps(json_safe(value), indent=2, allow_nan=False)
