"""The learning-rate schedules: cosine as before, and warm-up / stable / decay."""

from __future__ import annotations

import math

import pytest

from flops_fit.nn.schedule import cooldown_steps_for, lr_factor, warmup_steps_for
from flops_fit.parameters.base import ParameterError
from flops_fit.parameters.torch_backend import ScheduleParams, TorchConfig


def factors(total: int, **params) -> list[float]:
    schedule = ScheduleParams.from_params(params)
    warmup = warmup_steps_for(total, schedule.warmup_fraction, schedule.max_warmup_steps)
    return [lr_factor(step, total, warmup, schedule) for step in range(total)]


def test_cosine_warms_up_linearly_then_decays_to_the_floor():
    f = factors(100, warmup_fraction=0.1, min_lr_ratio=0.1)
    assert f[:10] == pytest.approx([(k + 1) / 10 for k in range(10)])
    assert f[-1] == pytest.approx(0.1)
    # halfway through the decay the cosine is at the mean of peak and floor
    assert f[10 + 45 - 1] == pytest.approx(0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * 0.5)))
    assert all(a >= b for a, b in zip(f[10:], f[11:], strict=False))


@pytest.mark.parametrize("shape, halfway", [("1-sqrt", 1 - math.sqrt(0.5)), ("linear", 0.5),
                                             ("cosine", 0.5)])
def test_wsd_holds_the_peak_then_cools_down_over_the_last_fraction(shape, halfway):
    f = factors(100, kind="wsd", warmup_fraction=0.1, cooldown_fraction=0.2,
                cooldown_shape=shape, min_lr_ratio=0.0)
    assert cooldown_steps_for(100, 0.2) == 20
    assert f[:10] == pytest.approx([(k + 1) / 10 for k in range(10)])
    assert f[10:80] == [1.0] * 70  # stable: exactly the peak
    assert f[80] < 1.0
    assert f[80 + 10 - 1] == pytest.approx(halfway)  # half of the cooldown done
    assert f[-1] == pytest.approx(0.0)


def test_wsd_runs_of_any_length_share_every_step_before_their_cooldown():
    schedule = ScheduleParams.from_params({"kind": "wsd", "cooldown_fraction": 0.2})
    short, long = 50, 400
    for step in range(short - cooldown_steps_for(short, 0.2)):
        assert lr_factor(step, short, 10, schedule) == lr_factor(step, long, 10, schedule)


def test_wsd_floor_is_min_lr_ratio():
    f = factors(40, kind="wsd", min_lr_ratio=0.25)
    assert f[-1] == pytest.approx(0.25)


def test_schedule_errors_name_the_key():
    with pytest.raises(ParameterError, match="torch_backend.schedule"):
        TorchConfig.from_params({"schedule": {"kind": "wsd", "warmup_fraction": 0.5,
                                              "cooldown_fraction": 0.6}})
    with pytest.raises(ParameterError, match="cooldown_shape"):
        TorchConfig.from_params({"schedule": {"cooldown_shape": "sqrt"}})
    with pytest.raises(ParameterError, match="kind"):
        TorchConfig.from_params({"schedule": {"kind": "linear"}})
    # cosine does not use the cooldown, so the two fractions may sum past 1
    TorchConfig.from_params({"schedule": {"warmup_fraction": 0.5, "cooldown_fraction": 0.6}})
