"""The one JSON cleaner (flops_fit.jsonsafe): strict JSON out of numpy, torch and NaN."""

from __future__ import annotations

import json
import math

import numpy as np
import torch

from flops_fit.jsonsafe import json_safe


def test_numpy_torch_and_non_finite_values_become_plain_json():
    value = {
        "f": np.float64(1.5), "i": np.int64(2), "b": np.bool_(True), "t": torch.tensor(0.25),
        "nan": math.nan, "inf": np.inf, "array": np.array([1.0, np.nan]), "tuple": (1, "x"),
        3: None, "nested": [{"k": np.float32(0.5)}],
    }
    out = json_safe(value)
    assert out == {
        "f": 1.5, "i": 2, "b": True, "t": 0.25, "nan": None, "inf": None, "array": [1.0, None],
        "tuple": [1, "x"], "3": None, "nested": [{"k": 0.5}],
    }
    assert type(out["i"]) is int and type(out["b"]) is bool
    json.dumps(out, allow_nan=False)


def test_anything_else_becomes_its_text():
    assert json_safe({"when": np.datetime64("2026-01-01")}) == {"when": "2026-01-01"}
