"""One training run: token accounting, learning, seeding, checkpoint/resume, data guards."""

from __future__ import annotations

import logging
import math

import numpy as np
import pytest

from flops_fit.backends import RunContext, get_backend
from flops_fit.data.corpus import CorpusSplit, split_corpus
from flops_fit.data.text import ByteWindows, DataError, check_epochs, heldout_windows
from flops_fit.nn.checkpoint import checkpoint_path
from flops_fit.nn.train import train_run
from flops_fit.parameters.base import ParameterError
from flops_fit.parameters.torch_backend import TorchConfig
from flops_fit.planning.flops import training_flops_per_token
from flops_fit.planning.shapes import ModelShape, non_embedding_params
from flops_fit.plugins.data import NEXT_TOKEN_LOSS
from flops_fit.plugins.models import BUILTIN_GPT, ModelPlugin
from flops_fit.schema import LOSS_CURVE_FIELD

SHAPE = ModelShape(
    d_model=32, num_layers=1, num_heads=1, d_ff=96, vocab_size=256, context_length=64
)
FAST = {"eval": {"heldout_tokens": 4096, "batch_size": 64}, "checkpoint_every_minutes": None,
        "curve": {"points": 16, "max_cost": 1.0}}
GPT = ModelPlugin(BUILTIN_GPT)


def gpt_train(shape: ModelShape, *, corpus: CorpusSplit, config: TorchConfig | None = None,
              **kw) -> dict:
    """The generic loop with the built-in GPT on the byte corpus, as the backend runs it."""
    config = config or TorchConfig()
    data = ByteWindows(corpus, shape.context_length, config.eval.heldout_tokens)
    return train_run(GPT, shape.to_dict(), data=data, loss=NEXT_TOKEN_LOSS,
                     flops_per_unit=training_flops_per_token(shape), config=config, **kw)


def ctx(split: CorpusSplit | None, seed: int = 0, **kw) -> RunContext:
    data = ByteWindows(split, SHAPE.context_length, 4096) if split is not None else None
    return RunContext(seed=seed, data=data, model=GPT, loss=NEXT_TOKEN_LOSS, **kw)


def record(shape: ModelShape = SHAPE, steps: int = 20, batch: int = 8, **extra) -> dict:
    tokens = steps * batch * shape.context_length
    return {
        "experiment_id": f"test-d{shape.d_model}-s{steps}",
        "compute_budget": float(training_flops_per_token(shape) * tokens),
        "model_size": non_embedding_params(shape),
        "num_tokens": tokens,
        **shape.to_dict(),
        "batch_size": batch,
        "num_steps": steps,
        "flops_formula": "full",
        "flops_per_token": training_flops_per_token(shape, extra.get("flops_formula", "full")),
        **extra,
    }


def test_backend_is_registered_and_sets_omp_policy():
    import os

    backend = get_backend("torch")
    assert backend.name == "torch" and backend.needs_data
    assert os.environ["OMP_WAIT_POLICY"].upper() == "PASSIVE"
    backend.validate_params(FAST)
    with pytest.raises(ValueError, match=r"unknown parameter 'torch_backend\.optimizer\.lrr' "
                       r"\(did you mean 'torch_backend\.optimizer\.lr'\?\)"):
        backend.validate_params({"optimizer": {"lrr": 1.0}})


def test_exact_token_accounting(corpus_split):
    rec = record(steps=12, batch=4)
    out = get_backend("torch").train(
        rec, FAST, ctx(corpus_split, show_progress=False)
    )
    assert rec["num_steps"] * rec["batch_size"] * rec["context_length"] == rec["num_tokens"]
    assert out["tokens_seen"] == rec["num_tokens"] == out["num_steps_run"] * 4 * 64
    assert out["actual_flops"] == rec["num_tokens"] * training_flops_per_token(SHAPE, "full")
    assert out["heldout_units"] == 4096 and out["heldout_examples"] == 64
    assert out["device"] == "cpu" and out["precision"] == "float32"
    assert math.isclose(out["final_loss_bits"], out["final_loss"] / math.log(2))
    six_nd = get_backend("torch").train(
        record(steps=2, batch=4, flops_formula="6nd"),
        FAST,
        ctx(corpus_split, show_progress=False),
    )
    assert six_nd["actual_flops"] == 6 * non_embedding_params(SHAPE) * 2 * 4 * 64


def test_inconsistent_record_or_missing_corpus_is_rejected(corpus_split):
    backend = get_backend("torch")
    bad = {**record(steps=10, batch=4), "num_tokens": 10 * 4 * 64 + 1}
    with pytest.raises(ValueError, match="differs from num_tokens"):
        backend.train(bad, FAST, ctx(corpus_split))
    with pytest.raises(ValueError, match="needs the study's data, model and loss"):
        backend.train(record(), FAST, ctx(None))


def test_a_few_hundred_steps_learn_far_below_the_uniform_baseline(corpus_split):
    cfg = TorchConfig.from_params(FAST)
    out = gpt_train(SHAPE, num_steps=300, batch_size=16, corpus=corpus_split, config=cfg, seed=0)
    uniform = math.log(256)  # 5.55 nats: a model that learnt nothing
    assert out["final_loss"] < 3.0 < uniform
    assert out["train_loss"] < 3.0
    # the held-out estimate is precise enough to compare runs
    assert 0 < out["final_loss_stderr"] < 0.05


def test_same_seed_same_loss_other_seed_other_loss(corpus_split):
    cfg = TorchConfig.from_params(FAST)

    def run(seed: int) -> dict:
        return gpt_train(
            SHAPE, num_steps=15, batch_size=4, corpus=corpus_split, config=cfg, seed=seed
        )

    a, b, c = run(3), run(3), run(4)
    assert a["final_loss"] == b["final_loss"] and a["train_loss"] == b["train_loss"]
    assert a["final_loss"] != c["final_loss"]


class Crash(RuntimeError):
    pass


@pytest.mark.parametrize("trigger", ["steps", "minutes"])
def test_resume_after_a_crash_gives_the_uninterrupted_result(corpus_split, tmp_path, trigger):
    steps, crash_at = 24, 14
    base = TorchConfig.from_params(FAST)
    reference = gpt_train(
        SHAPE, num_steps=steps, batch_size=4, corpus=corpus_split, config=base, seed=7, name="r"
    )
    if trigger == "steps":  # a checkpoint every 5 steps: the last one before the crash is 10
        params, resume_at = {**FAST, "checkpoint_every_steps": 5}, 10
    else:  # a (tiny) time interval: a checkpoint after every step
        params, resume_at = {**FAST, "checkpoint_every_minutes": 1e-9}, crash_at
    cfg = TorchConfig.from_params(params)
    ckdir = tmp_path / "ck"

    def crash(step: int) -> None:
        if step == crash_at:
            raise Crash(f"simulated crash after step {step}")

    with pytest.raises(Crash):
        gpt_train(
            SHAPE,
            num_steps=steps,
            batch_size=4,
            corpus=corpus_split,
            config=cfg,
            seed=7,
            name="r",
            checkpoint_dir=ckdir,
            on_step=crash,
        )
    assert checkpoint_path(ckdir).is_file()
    resumed = gpt_train(
        SHAPE,
        num_steps=steps,
        batch_size=4,
        corpus=corpus_split,
        config=cfg,
        seed=7,
        name="r",
        checkpoint_dir=ckdir,
    )
    assert resumed["resumed_from_step"] == resume_at
    assert resumed["final_loss"] == reference["final_loss"]
    # the loss curve too: points before the checkpoint come from it, later ones are replayed
    got, want = resumed[LOSS_CURVE_FIELD], reference[LOSS_CURVE_FIELD]
    assert [(p["step"], p["heldout_loss"]) for p in got] == [
        (p["step"], p["heldout_loss"]) for p in want]
    assert [p["train_loss"] for p in got] == pytest.approx([p["train_loss"] for p in want])
    assert resumed["train_loss"] == pytest.approx(reference["train_loss"], rel=1e-12)
    assert resumed["tokens_seen"] == reference["tokens_seen"]
    assert not checkpoint_path(ckdir).exists()  # removed once the run completed


def test_checkpoint_of_another_run_is_ignored_and_kept_on_request(corpus_split, tmp_path):
    cfg = TorchConfig.from_params({**FAST, "checkpoint_every_steps": 2, "keep_checkpoints": True})
    kw = dict(batch_size=4, corpus=corpus_split, config=cfg, checkpoint_dir=tmp_path)
    gpt_train(SHAPE, num_steps=4, seed=1, name="a", **kw)
    assert checkpoint_path(tmp_path).is_file()  # kept on request
    out = gpt_train(SHAPE, num_steps=4, seed=2, name="a", **kw)  # another seed: start over
    assert out["resumed_from_step"] == 0


def test_epoch_guard(caplog):
    with caplog.at_level(logging.WARNING):
        assert check_epochs(1500, 1000, 4.0, "run-x") == 1.5
    assert "repeats training data" in caplog.text
    with pytest.raises(DataError, match="max_epochs"):
        check_epochs(5000, 1000, 4.0, "run-x")
    assert check_epochs(5000, 1000, None) == 5.0


def test_run_beyond_max_epochs_fails_before_training():
    tiny = CorpusSplit(
        train=np.arange(2000, dtype=np.uint8), heldout=np.arange(2000, dtype=np.uint8)
    )
    cfg = TorchConfig.from_params({**FAST, "eval": {"heldout_tokens": 64}})
    with pytest.raises(DataError, match="epochs"):
        gpt_train(SHAPE, num_steps=10, batch_size=4, corpus=tiny, config=cfg, max_epochs=1)


def test_corpus_split_and_evaluation_windows_never_overlap_training_text():
    block, n_blocks = 97, 200
    # every block holds one distinct byte value: a byte identifies its block
    tokens = np.repeat(np.arange(n_blocks, dtype=np.uint8), block)
    split = split_corpus(tokens, heldout_fraction=0.05, block_size=block)
    train_blocks, heldout_blocks = set(split.train.tolist()), set(split.heldout.tolist())
    assert train_blocks.isdisjoint(heldout_blocks)
    assert len(train_blocks) + len(heldout_blocks) == n_blocks
    windows = heldout_windows(split.heldout, context_length=16, heldout_tokens=160)
    assert windows.shape == (10, 17)
    assert set(windows.ravel().tolist()) <= heldout_blocks
    import torch

    source = ByteWindows(split, 16, 160)
    batch = source.train_batch(0, 8, seed=0)
    x, y = batch["inputs"], batch["targets"]
    assert set(x.unique().tolist()) <= train_blocks
    assert torch.equal(x[:, 1:], y[:, :-1])
    five = source.train_batch(5, 8, 0)["inputs"]
    assert torch.equal(five, source.train_batch(5, 8, 0)["inputs"])  # pure in (step, seed)
    assert not torch.equal(five, source.train_batch(6, 8, 0)["inputs"])
    assert not torch.equal(five, source.train_batch(5, 8, 1)["inputs"])
    assert set(source.heldout()["inputs"].unique().tolist()) <= heldout_blocks


def test_heldout_set_is_fixed_and_spans_the_real_corpus(corpus_split):
    w = heldout_windows(corpus_split.heldout, 128, 65536)
    assert w.shape == (512, 129)
    assert np.array_equal(w, heldout_windows(corpus_split.heldout, 128, 65536))
    # windows come from every source: the last one lies near the end of the held-out split
    starts = [corpus_split.heldout.tobytes().find(row.tobytes()) for row in w[[0, -1]]]
    assert starts[0] < 1000 and starts[1] > 0.95 * corpus_split.heldout.size
    with pytest.raises(DataError, match="heldout_tokens"):
        heldout_windows(corpus_split.heldout, 128, 10**8)


def test_config_errors_name_the_key():
    with pytest.raises(ParameterError, match=r"torch_backend\.device"):
        TorchConfig.from_params({"device": "tpu"})
    with pytest.raises(ParameterError, match=r"torch_backend\.eval\.heldout_tokens"):
        TorchConfig.from_params({"eval": {"heldout_tokens": 0}})
    with pytest.raises(ParameterError, match=r"unknown parameter 'torch_backend\.colour'"):
        TorchConfig.from_params({"colour": "red"})
    with pytest.raises(ParameterError, match=r"optimizer\.betas"):
        TorchConfig.from_params({"optimizer": {"betas": [0.9]}})


def test_bfloat16_autocast_path_runs(corpus_split):
    """The CUDA precision path (bf16 autocast, fp32 loss) exercised on the CPU."""
    cfg = TorchConfig.from_params({**FAST, "precision": "bfloat16"})
    out = gpt_train(SHAPE, num_steps=10, batch_size=4, corpus=corpus_split, config=cfg)
    assert out["precision"] == "bfloat16" and math.isfinite(out["final_loss"])
    assert out["final_loss"] < math.log(256)
