"""The held-out data and the loss's value on it are probed at planning (and again when
training starts), so a held-out set that would fail every run fails before anything trains."""

from __future__ import annotations

import logging
import math

import pytest

from flops_fit.pipelines.planning.nodes import plan_isoflop_sweep, summarise_data
from flops_fit.plugins import PluginError, contracts
from flops_fit.plugins.contracts import check_study

from .toy_plugins import HERE, empty_heldout, make_study, training_params

PLANNING = {"compute_budgets": {"values": [1.0e8]}, "batch_size": 8, "max_epochs": None,
            "flops_formula": "6nd",
            "model_sizes": {"num": 3, "centre": "fixed_range",
                            "fixed_range": {"min": 300.0, "max": 3000.0}}}
ONE = [{"width": 8}]


def _plan(training: dict, training_data=None):
    summary = summarise_data(training_data, {}, training, PLANNING, {})
    return plan_isoflop_sweep([1.0e8], summary, training_data, PLANNING, training, {}, {})


@pytest.fixture(autouse=True)
def _no_loss_warned_yet(monkeypatch):
    monkeypatch.setattr(contracts, "_SQUEEZE_WARNED", set())


@pytest.mark.parametrize("data, problem", [
    ("nan_heldout", "heldout()['inputs'] holds 1 NaN (of 128 values); the held-out set must be "
                    "finite"),
    ("narrow_heldout", "heldout()['inputs'] holds examples of shape (5,) (torch.float32) where "
                       "train_batch gives (8,) (torch.float32)"),
    ("empty_heldout_source", "heldout() is empty: its tensors hold 0 examples"),
    ("empty_heldout", "the held-out set is empty: its arrays hold 0 examples"),
])
def test_planning_rejects_a_bad_heldout_set(data, problem):
    with pytest.raises(PluginError) as err:
        _plan(training_params(data=data))
    message = str(err.value)
    assert message.startswith(f"params:training.data.factory ({HERE}{data}): ")
    assert problem in message
    assert "disagree" not in message


def test_an_empty_heldout_set_in_the_catalog_names_the_entry():
    with pytest.raises(PluginError) as err:
        _plan(training_params(data=None), training_data=empty_heldout())
    assert str(err.value).startswith("the training_data catalog entry (dict): the held-out set "
                                     "is empty")


def test_the_loss_is_probed_on_heldout_examples():
    with pytest.raises(PluginError) as err:
        check_study(make_study(data="unknown_heldout_labels"), ONE, batch_size=8)
    message = str(err.value)
    assert message.startswith("params:training.loss (flops_fit.nn.losses:classification_cross_"
                              "entropy): cannot take the output of the model with width=8 "
                              "(shape (4, 3)) on 4 held-out example(s) of "
                              f"params:training.data.factory ({HERE}unknown_heldout_labels)")


def test_training_start_checks_the_heldout_set_too():
    from flops_fit.backends.torch_backend import TorchBackend
    from flops_fit.parameters.torch_backend import TorchConfig
    from flops_fit.parameters.training import TrainingConfig

    plan, _ = _plan(training_params(data="arrays"))
    training = TrainingConfig.from_params(training_params(data="nan_heldout"))
    with pytest.raises(PluginError, match=r"nan_heldout\): heldout\(\)\['inputs'\] holds 1 NaN"):
        TorchBackend().prepare_study(plan, training, TorchConfig.from_params({}), None, None)


def test_an_integer_loss_is_called_an_integer_tensor():
    for check in (lambda: check_study(make_study(loss="integer_loss"), ONE, batch_size=8),
                  lambda: _plan(training_params(loss="integer_loss"))):
        with pytest.raises(PluginError) as err:
            check()
        message = str(err.value)
        assert message.startswith(f"params:training.loss ({HERE}integer_loss): returned an "
                                  "integer tensor (torch.int64) for the model with width=")
        assert "must be a floating-point tensor" in message
        assert "does not depend" not in message


def test_a_one_element_loss_is_squeezed_with_one_warning_and_trains(caplog):
    from flops_fit.nn.train import train_run
    from flops_fit.parameters.torch_backend import TorchConfig

    with caplog.at_level(logging.WARNING):
        plan, _ = _plan(training_params(loss="one_element_loss"))
        check_study(make_study(loss="one_element_loss"), ONE, batch_size=8)  # training's check
    warned = [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]
    assert len(warned) == 1, warned
    assert warned[0].startswith(f"params:training.loss ({HERE}one_element_loss): returned a "
                                "one-element tensor of shape (1,)")
    assert "squeezed" in warned[0]
    study = make_study(loss="one_element_loss")
    out = train_run(study.model, {"width": 8}, data=study.data, loss=study.loss_path,
                    num_steps=3, batch_size=4, flops_per_unit=1.0,
                    config=TorchConfig.from_params({"checkpoint_every_minutes": None}))
    assert math.isfinite(out["final_loss"]) and math.isfinite(out["train_loss"])
