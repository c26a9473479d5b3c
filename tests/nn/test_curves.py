"""Every run's loss curve: where it is evaluated, what it costs, and that it changes nothing."""

from __future__ import annotations

import math

import pytest
import torch

from flops_fit.nn.curves import curve_steps, heldout_rows, subset
from flops_fit.nn.train import train_run
from flops_fit.parameters.torch_backend import TorchConfig
from flops_fit.planning.flops import training_flops_per_token
from flops_fit.plugins.data import NEXT_TOKEN_LOSS
from flops_fit.plugins.imports import resolve_callable
from flops_fit.schema import LOSS_CURVE_FIELD, LOSS_CURVE_POINT_FIELDS
from tests.nn.test_train import FAST, GPT, SHAPE, gpt_train


def test_steps_are_log_spaced_end_at_the_last_step_and_respect_the_cost():
    steps = curve_steps(1000, 16, subset_units=100, train_units=10**7, max_cost=0.05)
    assert len(steps) == 16 and steps[0] == 1 and steps[-1] == 1000
    ratios = [b / a for a, b in zip(steps[5:], steps[6:], strict=False)]
    assert max(ratios) / min(ratios) < 1.5  # evenly spaced in log steps
    # each point costs a third of the subset's units: 16 points of 3000 units cost 16% of
    # 100k units, so only 5 are affordable at 5%
    assert len(curve_steps(1000, 16, 3000, 10**5, 0.05)) == 5
    assert curve_steps(1000, 16, 10**6, 10**5, 0.05) == [1000]  # at least the last step
    assert curve_steps(1000, 0, 100, 10**7, 0.05) == []
    assert curve_steps(3, 16, 1, 10**7, 0.05) == [1, 2, 3]
    assert heldout_rows(512, 0.0625) == 32 and heldout_rows(5, 0.01) == 1
    rows = {"inputs": torch.arange(512), "targets": torch.arange(512)}
    assert subset(rows, 32)["inputs"].tolist() == list(range(0, 512, 16))  # spans the set


def test_a_run_records_its_curve_and_the_curve_changes_nothing_else(corpus_split):
    with_curve = TorchConfig.from_params(
        {**FAST, "curve": {"points": 8, "max_cost": 1.0, "heldout_fraction": 1.0}})
    without = TorchConfig.from_params({**FAST, "curve": {"points": 0}})
    kw = dict(num_steps=60, batch_size=4, corpus=corpus_split, seed=5)
    a = gpt_train(SHAPE, config=with_curve, **kw)
    b = gpt_train(SHAPE, config=without, **kw)
    assert a["final_loss"] == b["final_loss"] and a["train_loss"] == b["train_loss"]
    assert b[LOSS_CURVE_FIELD] == []
    curve = a[LOSS_CURVE_FIELD]
    assert 5 <= len(curve) <= 8
    assert all(tuple(p) == LOSS_CURVE_POINT_FIELDS for p in curve)
    assert [p["step"] for p in curve] == sorted({p["step"] for p in curve})
    assert curve[-1]["step"] == 60 and curve[-1]["units"] == 60 * 4 * SHAPE.context_length
    assert all(math.isfinite(p["heldout_loss"]) and math.isfinite(p["train_loss"])
               for p in curve)
    assert curve[0]["heldout_loss"] > curve[-1]["heldout_loss"] + 0.3  # it learnt
    # on the whole held-out set, the last point is the final loss
    assert curve[-1]["heldout_loss"] == pytest.approx(a["final_loss"], rel=1e-9)
    assert a["curve_heldout_units"] == 4096


def test_a_diverging_run_fails_with_its_curve_so_far(corpus_split):
    calls = {"n": 0}
    loss = resolve_callable(NEXT_TOKEN_LOSS, "training.loss")

    def diverging(outputs, batch):
        calls["n"] += 1
        value = loss(outputs, batch)
        return value * torch.nan if calls["n"] > 30 else value

    cfg = TorchConfig.from_params({**FAST, "curve": {"points": 16, "max_cost": 1.0}})
    from flops_fit.data.text import ByteWindows

    data = ByteWindows(corpus_split, SHAPE.context_length, cfg.eval.heldout_tokens)
    with pytest.raises(FloatingPointError) as caught:
        train_run(GPT, SHAPE.to_dict(), data=data, loss=diverging, num_steps=200,
                  batch_size=4, flops_per_unit=training_flops_per_token(SHAPE), config=cfg)
    partial = caught.value.partial_metrics[LOSS_CURVE_FIELD]
    assert partial and all(p["step"] <= 30 for p in partial)


def test_a_nan_held_out_loss_fails_the_run_with_its_whole_curve(corpus_split):
    from flops_fit.data.text import ByteWindows

    loss = resolve_callable(NEXT_TOKEN_LOSS, "training.loss")

    def nan_when_evaluated(outputs, batch):  # finite in training, NaN on the held-out set
        value = loss(outputs, batch)
        return value if torch.is_grad_enabled() else value * torch.nan

    cfg = TorchConfig.from_params({**FAST, "curve": {"points": 4, "max_cost": 1.0}})
    data = ByteWindows(corpus_split, SHAPE.context_length, cfg.eval.heldout_tokens)
    with pytest.raises(FloatingPointError, match="held-out loss is nan") as caught:
        train_run(GPT, SHAPE.to_dict(), data=data, loss=nan_when_evaluated, num_steps=20,
                  batch_size=4, flops_per_unit=training_flops_per_token(SHAPE), config=cfg)
    curve = caught.value.partial_metrics[LOSS_CURVE_FIELD]
    assert [p["step"] for p in curve][-1] == 20
