"""The yml files and the models are the only homes of defaults, and they agree."""

from __future__ import annotations

import pytest
import yaml

from flops_fit.parameters.sections import SECTIONS
from tests.conftest import PROJECT_ROOT

#: base values that are interpolations of runtime parameters (a path under data_root)
INTERPOLATED = {("training", "checkpoint_dir")}


def _base() -> dict:
    merged: dict = {}
    for path in sorted((PROJECT_ROOT / "conf/base").glob("parameters*.yml")):
        merged.update(yaml.safe_load(path.read_text()))
    return merged


@pytest.mark.parametrize("section", sorted(SECTIONS))
def test_model_defaults_equal_conf_base(section):
    raw = dict(_base()[section])
    for sec, key in INTERPOLATED:
        if sec == section:
            assert "${runtime_params:data_root" in str(raw.pop(key))
    model = SECTIONS[section]
    assert model.from_params(raw) == model()


@pytest.mark.parametrize("section", sorted(SECTIONS))
def test_base_declares_every_field(section):
    """A key the model knows but base does not declare could only be set by reading the code."""

    def keys(model, prefix=""):
        out = set()
        for name, info in model.model_fields.items():
            out.add(prefix + name)
            sub = info.annotation
            if isinstance(sub, type) and hasattr(sub, "model_fields"):
                out |= keys(sub, f"{prefix}{name}.")
        return out

    def declared(tree, prefix=""):
        out = set()
        for k, v in tree.items():
            out.add(prefix + k)
            if isinstance(v, dict) and k not in ("columns", "filter"):
                out |= declared(v, f"{prefix}{k}.")
        return out

    assert keys(SECTIONS[section]) == declared(_base()[section])
