"""A branch of a trunk is exactly the warm-up / stable / decay run it stands for, and trains
only its share of the trunk: the steps from the branch point before it, then its cooldown."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from flops_fit.nn.train import train_run
from flops_fit.nn.trunk import LATEST, TrunkBranch, branch_file
from flops_fit.parameters.torch_backend import TorchConfig
from flops_fit.planning.trunks import branch_step
from tests.plugins.toy_plugins import make_study

WSD = {"schedule": {"kind": "wsd", "cooldown_fraction": 0.25}, "checkpoint_every_minutes": None,
       "curve": {"points": 4, "max_cost": 1.0}}
WARMUP, SEED = 2, 7
LENGTHS = (8, 16, 24)  # three budgets of one size: branches at 6, 12 and 18


def _run(num_steps: int, ckdir: Path | None = None, trunk: TrunkBranch | None = None,
         **config):
    study = make_study()
    cfg = TorchConfig.from_params({**WSD, **config})
    return train_run(study.model, {"width": 8}, data=study.data, loss=study.loss_path,
                     num_steps=num_steps, batch_size=4, flops_per_unit=1.0, config=cfg,
                     seed=SEED, warmup_steps=WARMUP, checkpoint_dir=ckdir, name=f"b{num_steps}",
                     trunk=trunk)


def _branch(tmp_path: Path, num_steps: int) -> TrunkBranch:
    return TrunkBranch(tmp_path / "trunk", "T-toy", branch_step(num_steps, 0.25), WARMUP,
                       max(LENGTHS))


def test_branches_equal_the_runs_they_stand_for_and_share_their_trunk(tmp_path):
    alone = [_run(n) for n in LENGTHS]
    branches = [_run(n, tmp_path / f"b{n}", _branch(tmp_path, n)) for n in LENGTHS]
    for one, branch in zip(alone, branches, strict=True):
        assert branch["final_loss"] == pytest.approx(one["final_loss"], rel=1e-6, abs=1e-7)
        assert branch["train_loss"] == pytest.approx(one["train_loss"], rel=1e-6)
    # each branch trained the trunk from the previous branch point, then its own cooldown
    assert [b["resumed_from_step"] for b in branches] == [0, 6, 12]
    assert [b["trained_flops"] / (4 * 1.0) for b in branches] == [8, 16 - 6, 24 - 12]
    trunk = tmp_path / "trunk"
    assert sorted(p.name for p in trunk.glob("branch-*.pt")) == [
        branch_file(trunk, s).name for s in (6, 12, 18)]
    # the curve goes on along the trunk, then the branch's cooldown
    steps = [p["step"] for p in branches[2]["loss_curve"]]
    assert steps == sorted(steps) and steps[-1] == 24


def test_a_killed_trunk_resumes_from_its_latest_state(tmp_path):
    class Crash(RuntimeError):
        pass

    def crash_at_10(step: int) -> None:
        if step == 10:
            raise Crash

    first = _run(8, tmp_path / "b8", _branch(tmp_path, 8), checkpoint_every_steps=2)
    with pytest.raises(Crash):  # the second branch dies mid-trunk (branch point 12)
        study = make_study()
        train_run(study.model, {"width": 8}, data=study.data, loss=study.loss_path,
                  num_steps=16, batch_size=4, flops_per_unit=1.0,
                  config=TorchConfig.from_params({**WSD, "checkpoint_every_steps": 2}),
                  seed=SEED, warmup_steps=WARMUP, checkpoint_dir=tmp_path / "b16",
                  name="b16", trunk=_branch(tmp_path, 16), on_step=crash_at_10)
    assert torch.load(tmp_path / "trunk" / LATEST, weights_only=True)["step"] == 10
    again = _run(16, tmp_path / "b16", _branch(tmp_path, 16), checkpoint_every_steps=2)
    assert again["resumed_from_step"] == 10
    assert again["final_loss"] == pytest.approx(_run(16)["final_loss"], rel=1e-6, abs=1e-7)
    assert first["resumed_from_step"] == 0


def test_a_trunk_checkpoint_of_another_trunk_is_not_resumed(tmp_path):
    _run(8, tmp_path / "b8", _branch(tmp_path, 8))
    other = TrunkBranch(tmp_path / "trunk", "T-other", 12, WARMUP, 24)
    out = _run(16, tmp_path / "b16", other)
    assert out["resumed_from_step"] == 0
    assert list((tmp_path / "trunk").glob("branch-000000006.pt.other-run-*"))


def test_a_trunk_trained_on_other_data_is_not_resumed(tmp_path):
    _run(8, tmp_path / "b8", _branch(tmp_path, 8))
    base = _branch(tmp_path, 16)
    other = TrunkBranch(base.directory, base.trunk_id, base.branch_step, WARMUP, max(LENGTHS),
                        trained_on=(("data.heldout", '"another digest"'),))
    assert _run(16, tmp_path / "b16", other)["resumed_from_step"] == 0
