"""Every plugin contract, checked on a probe batch before any training (`check_study`), and
through the planning nodes that run it."""

from __future__ import annotations

import math

import pytest

from flops_fit.pipelines.planning.nodes import plan_isoflop_sweep, summarise_data
from flops_fit.plugins import PluginError
from flops_fit.plugins.contracts import check_study

from .toy_plugins import HERE, make_study, training_params

SMALL_AND_LARGE = [{"width": 8}, {"width": 40}, {"width": 8}]


def test_good_plugins_pass():
    report = check_study(make_study(), SMALL_AND_LARGE, batch_size=16)
    assert report["models"] == 2  # the repeated kwargs are checked once
    assert report["probe_rows"] == 4
    assert math.isfinite(report["probe_loss"]) and report["probe_loss"] > 0


def test_good_plugins_on_arrays_with_the_default_loss():
    study = make_study(data="arrays")
    assert check_study(study, [{"width": 4}], batch_size=2)["probe_rows"] == 2


def test_a_factory_that_raises_for_a_planned_size():
    study = make_study(model="mlp_up_to_64")
    with pytest.raises(PluginError) as err:
        check_study(study, [{"width": 8}, {"width": 100}, {"width": 200}], batch_size=8)
    assert str(err.value) == (
        f"params:training.model.factory ({HERE}mlp_up_to_64): calling it with width=100 raised "
        "ValueError: width 100 is above the supported maximum 64")


def test_a_model_that_cannot_take_the_inputs():
    study = make_study(kwargs={"in_features": 5})  # the data has 8 features
    planned = [study.model.kwargs_for(8), study.model.kwargs_for(40)]
    with pytest.raises(PluginError) as err:
        check_study(study, planned, batch_size=8)
    message = str(err.value)
    assert message.startswith(f"params:training.model.factory ({HERE}mlp): the model with "
                              "in_features=5, width=8 raised RuntimeError on a batch of inputs of "
                              "shape (4, 8) (torch.float32)")
    assert f"from params:training.data.factory ({HERE}fresh)" in message


@pytest.mark.parametrize("loss, problem", [
    ("vector_loss", "returned a tensor of shape (4,) for the model with width=8; it must be a "
                    "scalar (reduce over the batch)"),
    ("nan_loss", "returned nan for the model with width=8; it must be finite"),
    ("float_loss", "returned a float for the model with width=8, not a scalar torch.Tensor"),
    ("constant_loss", "its value for the model with width=8 does not depend on the model's "
                      "parameters (no gradient)"),
])
def test_a_loss_that_is_not_a_finite_differentiable_scalar(loss, problem):
    study = make_study(loss=loss)
    with pytest.raises(PluginError) as err:
        check_study(study, SMALL_AND_LARGE, batch_size=8)
    assert str(err.value) == f"params:training.loss ({HERE}{loss}): {problem}"


def test_a_loss_that_cannot_take_the_output():
    study = make_study(loss="sequence_loss")
    with pytest.raises(PluginError) as err:
        check_study(study, SMALL_AND_LARGE, batch_size=8)
    message = str(err.value)
    assert message.startswith(f"params:training.loss ({HERE}sequence_loss): cannot take the "
                              "output of the model with width=8 (shape (4, 3)) with targets of "
                              "shape (4,): IndexError")


def test_the_datas_default_loss_that_cannot_take_the_output():
    """Arrays declared as tokens default to next-token cross entropy: not for a classifier."""
    from flops_fit.parameters.training import TrainingConfig
    from flops_fit.plugins.study import build_study

    params = training_params(data="arrays")
    params["data"]["unit"] = "tokens"
    study = build_study(None, TrainingConfig.from_params(params))
    assert study.loss_path == "flops_fit.nn.losses:next_token_cross_entropy"
    with pytest.raises(PluginError) as err:
        check_study(study, SMALL_AND_LARGE, batch_size=8)
    assert str(err.value).startswith("params:training.loss (flops_fit.nn.losses:"
                                     "next_token_cross_entropy): cannot take the output of the "
                                     "model with width=8 (shape (4, 3))")


def test_a_loss_path_that_does_not_resolve():
    study = make_study(loss="vector_loss")
    study.loss_path = HERE + "no_such_loss"  # (the project hook resolves it before any node)
    with pytest.raises(PluginError, match=rf"^params:training\.loss \({HERE}no_such_loss\): "
                                          "'tests.plugins.toy_plugins' has no attribute"):
        check_study(study, SMALL_AND_LARGE, batch_size=8)


@pytest.mark.parametrize("data, problem", [
    ("no_targets", "missing ['targets']"),
    ("impure", "returned different batches for the same arguments"),
])
def test_bad_data_fails_check_study(data, problem):
    with pytest.raises(PluginError) as err:
        check_study(make_study(data=data), SMALL_AND_LARGE, batch_size=8)
    assert f"params:training.data.factory ({HERE}{data})" in str(err.value)
    assert problem in str(err.value)


# ---- through the planning nodes (what `kedro run` calls) -----------------------------------

PLANNING = {"compute_budgets": {"values": [1.0e8]}, "batch_size": 8, "max_epochs": None,
            "model_sizes": {"num": 3, "centre": "fixed_range",
                            "fixed_range": {"min": 300.0, "max": 3000.0}}}


def _plan(training: dict, **planning):
    planning = {**PLANNING, **planning}
    summary = summarise_data(None, {}, training, planning, {})
    return plan_isoflop_sweep([1.0e8], summary, None, planning, training, {}, {})


@pytest.mark.parametrize("loss, problem", [
    ("vector_loss", "it must be a scalar"),
    ("nan_loss", "it must be finite"),
    ("float_loss", "not a scalar torch.Tensor"),
    ("sequence_loss", "cannot take the output of the model"),
])
def test_planning_rejects_a_bad_loss_under_6nd(loss, problem):
    with pytest.raises(PluginError) as err:
        _plan(training_params(loss=loss), flops_formula="6nd")
    assert str(err.value).startswith(f"params:training.loss ({HERE}{loss}): ")
    assert problem in str(err.value)


@pytest.mark.parametrize("loss", ["sequence_loss", "float_loss"])
def test_planning_rejects_a_bad_loss_under_measured(loss):
    with pytest.raises(PluginError) as err:
        _plan(training_params(loss=loss))  # flops_formula auto: measured for a plugin
    assert str(err.value).startswith(f"params:training.loss ({HERE}{loss}): ")


def test_planning_rejects_a_factory_that_raises():
    with pytest.raises(PluginError, match=rf"^params:training\.model\.factory "
                                          rf"\({HERE}mlp_up_to_64\): calling it with width="):
        _plan(training_params(model="mlp_up_to_64"))


def test_planning_rejects_an_impure_source():
    with pytest.raises(PluginError, match="returned different batches for the same arguments"):
        _plan(training_params(data="impure"), flops_formula="6nd")


def test_summarise_data_rejects_a_batch_without_targets():
    with pytest.raises(PluginError) as err:
        summarise_data(None, {}, training_params(data="no_targets"), PLANNING, {})
    assert "missing ['targets']" in str(err.value)


# ---- and again when training starts (TorchBackend.prepare_study) ---------------------------


def _prepare(plan, training: dict):
    from flops_fit.backends.torch_backend import TorchBackend
    from flops_fit.parameters.torch_backend import TorchConfig
    from flops_fit.parameters.training import TrainingConfig

    return TorchBackend().prepare_study(plan, TrainingConfig.from_params(training),
                                        TorchConfig.from_params({}), None, None)


def test_training_checks_the_plugins_of_the_plan():
    plan, _ = _plan(training_params(), flops_formula="6nd")
    data, model, loss = _prepare(plan, training_params())
    assert model.factory_path == HERE + "mlp" and data.unit == "examples"
    assert loss == "flops_fit.nn.losses:classification_cross_entropy"
    with pytest.raises(PluginError, match=rf"^params:training\.loss \({HERE}nan_loss\): "):
        _prepare(plan, training_params(loss="nan_loss"))


def test_training_refuses_a_plan_made_for_another_factory():
    from flops_fit.execution import prepare_training
    from flops_fit.planning.sweep import PlanningError

    plan, _ = _plan(training_params(), flops_formula="6nd")
    with pytest.raises(PlanningError, match=rf"the sweep plan was made for the model {HERE}mlp, "
                                            rf"but params:training\.model\.factory trains "
                                            rf"{HERE}fixed_size \("):
        prepare_training(plan, {}, training_params(model="fixed_size"))


@pytest.mark.parametrize(("executor", "fails"), [({"executor": "sequential"}, True),
                                                 ({"executor": "dask"}, True),
                                                 ({"executor": "dask", "dask": {
                                                     "cluster": "slurm"}}, False)])
def test_training_here_on_a_device_this_machine_lacks_fails_before_any_run(
        monkeypatch, executor, fails):
    """Runs that train here (sequentially, or on a LocalCluster) on a missing device fail
    before any run; Slurm jobs train elsewhere, where the device may be."""
    import torch

    from flops_fit.execution import prepare_training
    from flops_fit.nn.runtime import DeviceUnavailableError

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    plan, _ = _plan(training_params(), flops_formula="6nd")
    training = {**training_params(), **executor}
    sections = {"torch": {"device": "cuda"}}
    if fails:
        with pytest.raises(DeviceUnavailableError, match=r"'cuda' but no CUDA device is "
                           r"available on this machine, where the runs train \(training\."):
            prepare_training(plan, {}, training, backend_sections=sections)
    else:
        prepare_training(plan, {}, training, backend_sections=sections)
