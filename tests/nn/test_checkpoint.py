"""Whatever sits at a checkpoint path and is not a checkpoint of this run is moved aside with
one warning, and the run starts from step 0 and completes; a checkpoint of this run resumes."""

from __future__ import annotations

import logging
import math
import random
import warnings
from pathlib import Path

import pytest
import torch

from flops_fit.nn.checkpoint import checkpoint_path, load_checkpoint
from flops_fit.nn.train import train_run
from flops_fit.parameters.torch_backend import TorchConfig
from tests.plugins.toy_plugins import make_study

STEPS = 6


class Crash(RuntimeError):
    pass


def _train(ckdir: Path, seed: int = 0, keep: bool = False, width: int = 8, on_step=None):
    study = make_study()
    config = TorchConfig.from_params({"checkpoint_every_minutes": None,
                                      "checkpoint_every_steps": 2, "keep_checkpoints": keep})
    return train_run(study.model, {"width": width}, data=study.data, loss=study.loss_path,
                     num_steps=STEPS, batch_size=4, flops_per_unit=1.0, config=config,
                     seed=seed, checkpoint_dir=ckdir, name="r", on_step=on_step)


def _truncated(path: Path) -> None:
    _train(path.parent, keep=True)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])


def _other_seed(path: Path) -> None:
    _train(path.parent, seed=1, keep=True)


def _other_weights(path: Path) -> None:
    """This run's key, but weights of another width (the model's code changed under it)."""
    _train(path.parent, keep=True)
    state = torch.load(path, weights_only=True)
    state["model"] = make_study().model.build({"width": 16}).state_dict()
    torch.save(state, path)


BAD = {
    "a list": ("corrupt", lambda p: torch.save([1, 2, 3], p)),
    "a dict of other things": ("corrupt", lambda p: torch.save({"step": 3}, p)),
    "truncated": ("corrupt", _truncated),
    "random bytes": ("corrupt", lambda p: p.write_bytes(random.Random(0).randbytes(4096))),
    "a folder": ("corrupt", lambda p: p.mkdir()),
    "another run's": ("other-run", _other_seed),
    "weights of another shape": ("other-run", _other_weights),
}


@pytest.mark.parametrize("case", list(BAD))
def test_anything_else_at_the_path_is_moved_aside_and_the_run_starts_over(case, tmp_path,
                                                                          caplog):
    tag, make = BAD[case]
    path = checkpoint_path(tmp_path)
    make(path)
    before = path.read_bytes() if path.is_file() else None
    caplog.clear()
    with caplog.at_level(logging.WARNING), warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        out = _train(tmp_path)
    assert out["resumed_from_step"] == 0 and math.isfinite(out["final_loss"])
    warned = [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]
    assert len(warned) == 1, warned
    assert warned[0].startswith(f"ignoring the checkpoint at {path}: ")
    assert warned[0].endswith("and this run starts from step 0")
    assert "weights_only" not in warned[0]
    assert not [w for w in caught if "pickle" in str(w.message) or "weights_only" in
                str(w.message)]
    moved = list(tmp_path.glob(f"checkpoint.pt.{tag}-*"))
    assert len(moved) == 1 and f"moved it to {moved[0].name}" in warned[0]
    if before is not None:
        assert moved[0].read_bytes() == before  # kept as it was, for a look
    assert not path.exists()  # the completed run removed its own checkpoint


def test_the_reason_is_said_in_our_own_words(tmp_path, caplog):
    path = checkpoint_path(tmp_path)
    torch.save([1, 2, 3], path)
    with caplog.at_level(logging.WARNING):
        assert load_checkpoint(path, {"name": "r"}) is None
    assert "it holds a list, not a checkpoint" in caplog.text
    path.write_bytes(random.Random(1).randbytes(512))
    caplog.clear()
    with caplog.at_level(logging.WARNING):
        assert load_checkpoint(path, {"name": "r"}) is None
    assert "it cannot be read as a checkpoint" in caplog.text
    assert len(list(tmp_path.glob("checkpoint.pt.corrupt-*"))) == 2  # never overwritten


def test_a_checkpoint_of_this_run_still_resumes_without_a_warning(tmp_path, caplog):
    def crash(step: int) -> None:
        if step == 4:
            raise Crash("simulated crash after step 4")

    with pytest.raises(Crash):
        _train(tmp_path, on_step=crash)
    with caplog.at_level(logging.WARNING):
        out = _train(tmp_path)
    assert out["resumed_from_step"] == 4
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING]
    assert out["final_loss"] == _train(tmp_path / "fresh")["final_loss"]
