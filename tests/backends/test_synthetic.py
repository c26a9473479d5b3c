from __future__ import annotations

import math
import re

import numpy as np
import pytest

from flops_fit.backends import get_backend
from flops_fit.backends.base import RunContext, TrainingBackend
from flops_fit.backends.synthetic import SyntheticBackend, SyntheticFailure, true_loss
from flops_fit.parameters.training import SyntheticParams
from flops_fit.planning.flops import training_flops
from flops_fit.planning.shapes import ModelShape


def test_registered_and_implements_the_interface():
    backend = get_backend("synthetic")
    assert isinstance(backend, SyntheticBackend)
    assert isinstance(backend, TrainingBackend)
    assert backend.name == "synthetic" and backend.needs_data is False


def test_loss_is_the_chinchilla_surface_with_small_noise(plan):
    backend = SyntheticBackend()
    ratios = []
    for i, record in enumerate(plan):
        out = backend.train(record, {}, RunContext(seed=i))
        truth = true_loss(record["model_size"], record["num_tokens"], {})
        assert out["true_loss"] == pytest.approx(truth)
        ratios.append(math.log(out["final_loss"] / truth))
        assert out["tokens_seen"] == record["num_tokens"]
        shape = ModelShape.from_record(record)
        assert out["actual_flops"] == training_flops(shape, record["num_tokens"], "6nd")
    assert np.std(ratios) < 0.03 and abs(np.mean(ratios)) < 0.02


def test_noiseless_loss_is_exact(plan):
    record = plan[0]
    out = SyntheticBackend().train(record, {"noise_sigma": 0.0}, RunContext(seed=1))
    n, d = record["model_size"], record["num_tokens"]
    expected = 1.69 + 406.4 / n**0.34 + 410.7 / d**0.28
    assert out["final_loss"] == pytest.approx(expected, rel=1e-12)
    assert out["train_loss"] == pytest.approx(expected, rel=1e-12)


def test_same_seed_same_loss_different_seed_different_loss(plan):
    backend = SyntheticBackend()
    a = backend.train(plan[3], {}, RunContext(seed=42))
    b = backend.train(plan[3], {}, RunContext(seed=42))
    c = backend.train(plan[3], {}, RunContext(seed=43))
    assert a == b
    assert a["final_loss"] != c["final_loss"]


def test_injected_failures_and_divergences_follow_their_fractions(plan):
    backend = SyntheticBackend()
    params = {"failure_fraction": 0.3, "divergence_fraction": 0.2}
    failed = diverged = 0
    for seed in range(400):
        try:
            out = backend.train(plan[0], params, RunContext(seed=seed))
        except SyntheticFailure:
            failed += 1
            continue
        diverged += math.isnan(out["final_loss"])
    assert 0.22 < failed / 400 < 0.38
    assert 0.12 < diverged / (400 - failed) < 0.28
    # fraction 1 fails every run, 0 none
    with pytest.raises(SyntheticFailure):
        backend.train(plan[0], {"failure_fraction": 1.0}, RunContext(seed=0))


@pytest.mark.parametrize(
    ("params", "key"),
    [
        ({"alpha": -0.1}, "params:training.synthetic.alpha"),
        ({"A": "big"}, "params:training.synthetic.A"),
        ({"noise_sigma": -1}, "params:training.synthetic.noise_sigma"),
        ({"failure_fraction": 1.5}, "params:training.synthetic.failure_fraction"),
        ({"sleep_seconds": float("nan")}, "params:training.synthetic.sleep_seconds"),
        ({"alfa": 0.3}, "unknown parameter 'training.synthetic.alfa' (did you mean 'training.synthetic.alpha'?)"),
    ],
)
def test_bad_params_name_their_key(params, key):
    with pytest.raises(ValueError, match=re.escape(key)):
        SyntheticBackend().validate_params(params)


def test_defaults_validate():
    SyntheticBackend().validate_params(SyntheticParams().model_dump())
    SyntheticBackend().validate_params({})
