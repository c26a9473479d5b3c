"""Import paths named in parameters: each failure names the parameter key, the path and why."""

from __future__ import annotations

import shutil

import pytest

from flops_fit.parameters.base import ParameterError
from flops_fit.parameters.sources import check_parameters, nest_dotted
from flops_fit.parameters.training import TrainingConfig
from flops_fit.plugins import PluginError, resolve_callable, resolve_import

from ..conftest import PROJECT_ROOT
from . import toy_plugins
from .toy_plugins import HERE

KEYS = ("training.model.factory", "training.data.factory", "training.loss")


def test_a_plugin_error_is_a_value_error():
    assert issubclass(PluginError, ValueError)


@pytest.mark.parametrize("key", KEYS)
def test_missing_module(key):
    with pytest.raises(PluginError) as err:
        resolve_callable("tests.plugins.nope:make", key)
    message = str(err.value)
    assert message.startswith(f"params:{key} (tests.plugins.nope:make): ")
    assert "cannot import module 'tests.plugins.nope'" in message
    assert "PYTHONPATH" in message  # says how to make it importable


def test_missing_attribute_suggests_the_closest_names():
    with pytest.raises(PluginError) as err:
        resolve_callable(HERE + "mlpp", "training.model.factory")
    message = str(err.value)
    assert message.startswith(f"params:training.model.factory ({HERE}mlpp): ")
    assert "'tests.plugins.toy_plugins' has no attribute 'mlpp'" in message
    assert "(did you mean: mlp" in message


def test_missing_attribute_of_a_dotted_path():
    with pytest.raises(PluginError, match=r"has no attribute 'MLP\.nope'"):
        resolve_callable(HERE + "MLP.nope", "training.model.factory")
    assert resolve_callable(HERE + "MLP.forward", "training.model.factory") is (
        toy_plugins.MLP.forward)


def test_not_callable():
    with pytest.raises(PluginError) as err:
        resolve_callable(HERE + "NOT_CALLABLE", "training.loss")
    assert str(err.value) == (
        f"params:training.loss ({HERE}NOT_CALLABLE): is a int, not a callable")
    assert resolve_import(HERE + "NOT_CALLABLE", "training.loss") == 42  # importable, though


def test_a_module_that_raises_on_import(tmp_path, monkeypatch):
    (tmp_path / "broken_user_module.py").write_text("raise ZeroDivisionError('at import')\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    with pytest.raises(PluginError) as err:
        resolve_callable("broken_user_module:make", "training.model.factory")
    message = str(err.value)
    assert message.startswith("params:training.model.factory (broken_user_module:make): ")
    assert "importing module 'broken_user_module' raised ZeroDivisionError: at import" in message


@pytest.mark.parametrize("path", ["no_colon", "a.b:", ":attr"])
def test_resolve_rejects_a_malformed_path(path):
    with pytest.raises(PluginError, match=r"^params:training\.loss .*'package\.module:attribute'"):
        resolve_import(path, "training.loss")


def _with(key: str, value: str) -> dict:
    params: dict = {"model": {"factory": HERE + "mlp", "size_param": "width"}}
    if key == "training.model.factory":
        params["model"]["factory"] = value
    elif key == "training.data.factory":
        params["data"] = {"factory": value}
    else:
        params["loss"] = value
    return params


@pytest.mark.parametrize("key", KEYS)
@pytest.mark.parametrize("path", ["my_models.mlp", "my models:mlp", "pkg:mod:make", "1pkg:make"])
def test_the_parameter_model_rejects_a_malformed_path(key, path):
    with pytest.raises(ParameterError) as err:
        TrainingConfig.from_params(_with(key, path))
    message = str(err.value)
    assert f"params:{key}:" in message
    assert "'package.module:attribute'" in message
    assert repr(path) in message


def test_a_factory_needs_a_size_param():
    with pytest.raises(ParameterError, match=r"params:training\.model: factory is set but "
                                             r"size_param is null"):
        TrainingConfig.from_params({"model": {"factory": HERE + "mlp"}})


# ---- before any node: the project hook's check (flops_fit.parameters.sources) --------------


def _check(conf, env: str = "local", runtime: dict | None = None) -> None:
    from kedro.config import OmegaConfigLoader

    runtime = nest_dotted(runtime or {})
    loader = OmegaConfigLoader(str(conf), base_env="base", default_run_env="local", env=env,
                               runtime_params=runtime, merge_strategy={"parameters": "soft"})
    check_parameters(loader["parameters"], conf, "base", env, runtime, project_path=conf.parent)


@pytest.fixture
def conf(tmp_path):
    shutil.copytree(PROJECT_ROOT / "conf", tmp_path / "conf")
    return tmp_path / "conf"


def test_unresolved_paths_are_all_listed_before_anything_runs(conf):
    with pytest.raises(ParameterError) as err:
        _check(conf, runtime={"training.model.factory": "tests.plugins.nope:mlp",
                              "training.model.size_param": "width",
                              "training.loss": HERE + "NOT_CALLABLE"})
    lines = str(err.value).splitlines()
    assert lines[0] == "invalid parameters, nothing was run:"
    model = next(line for line in lines if "training.model.factory" in line)
    assert model.startswith("- params:training.model.factory (tests.plugins.nope:mlp): "
                            "cannot import module 'tests.plugins.nope'")
    assert model.endswith("(given with --params)")
    loss = next(line for line in lines if "training.loss" in line)
    assert loss == (f"- params:training.loss ({HERE}NOT_CALLABLE): is a int, not a callable "
                    "(given with --params)")


def test_an_unresolved_path_names_the_file_that_set_it(conf):
    (conf / "local" / "parameters_training.yml").write_text(
        f"training:\n  data:\n    factory: {HERE}no_such_data\n")
    with pytest.raises(ParameterError) as err:
        _check(conf)
    message = str(err.value)
    assert (f"params:training.data.factory ({HERE}no_such_data): "
            "'tests.plugins.toy_plugins' has no attribute 'no_such_data'") in message
    assert "(in conf/local/parameters_training.yml)" in message


def test_resolvable_paths_pass(conf):
    _check(conf, runtime={"training.model.factory": HERE + "mlp",
                          "training.model.size_param": "width",
                          "training.data.factory": HERE + "arrays",
                          "training.loss": "flops_fit.nn.losses:classification_cross_entropy"})
