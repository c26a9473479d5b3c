"""The data contract: TensorSource, as_source, data factories and the probe-batch checks."""

from __future__ import annotations

import pickle

import numpy as np
import pytest
import torch

from flops_fit.plugins import PluginError
from flops_fit.plugins.contracts import check_data
from flops_fit.plugins.data import (
    CLASSIFICATION_LOSS,
    NEXT_TOKEN_LOSS,
    DataSource,
    TensorSource,
    as_source,
)
from flops_fit.plugins.study import Study

from . import toy_plugins
from .toy_plugins import HERE, make_study


def _numbered(n: int, heldout: int = 4) -> TensorSource:
    """Example i has input i, so a batch shows which examples it holds."""
    train = {"inputs": np.arange(n, dtype=np.float32)[:, None], "targets": np.arange(n) % 3}
    held = {"inputs": np.zeros((heldout, 1), np.float32), "targets": np.zeros(heldout, int)}
    return TensorSource(train, held)


def _seen(source: TensorSource, steps: range, batch: int, seed: int = 0) -> np.ndarray:
    return np.concatenate([source.train_batch(s, batch, seed)["inputs"][:, 0].numpy()
                           for s in steps]).astype(int)


def test_each_epoch_is_a_permutation():
    n, batch = 10, 3  # batches straddle the epoch boundaries
    seen = _seen(_numbered(n), range(10), batch)  # 30 examples: three epochs
    epochs = seen.reshape(3, n)
    for epoch in epochs:
        assert sorted(epoch) == list(range(n))  # no repeat before every example was seen
    assert not (epochs[0] == epochs[1]).all()  # a fresh order each epoch


def test_batches_are_pure_in_seed_and_step():
    a, b = _numbered(50), _numbered(50)
    for step in (0, 3, 17):
        first, again = a.train_batch(step, 8, seed=5), b.train_batch(step, 8, seed=5)
        assert all(torch.equal(first[k], again[k]) for k in first)
    # the order of calls does not matter (a resumed run jumps straight to step k)
    assert torch.equal(a.train_batch(17, 8, 5)["inputs"], _numbered(50).train_batch(17, 8, 5)[
        "inputs"])
    assert not torch.equal(a.train_batch(0, 8, 5)["inputs"], a.train_batch(0, 8, 6)["inputs"])
    assert not torch.equal(a.train_batch(0, 8, 5)["inputs"], a.train_batch(1, 8, 5)["inputs"])


def test_batch_dtypes():
    batch = TensorSource(**{"train": toy_plugins.arrays()["train"],
                            "heldout_arrays": toy_plugins.arrays()["heldout"]}).train_batch(0, 4, 0)
    assert batch["inputs"].dtype == torch.float32
    assert batch["targets"].dtype == torch.int64  # what cross entropy takes


def test_pickling_drops_the_cached_heldout_tensors():
    source = _numbered(20, heldout=6)
    heldout = source.heldout()
    assert source.heldout() is heldout  # cached where it is used
    copy = pickle.loads(pickle.dumps(source))
    assert copy._heldout is None
    assert source._heldout is heldout  # pickling does not clear the original's cache
    assert all(torch.equal(copy.heldout()[k], heldout[k]) for k in heldout)
    assert torch.equal(copy.train_batch(3, 4, 1)["inputs"], source.train_batch(3, 4, 1)["inputs"])


def test_as_source_accepts_a_mapping_of_arrays():
    source = as_source(toy_plugins.arrays(n_train=64, n_heldout=16), "somewhere")
    assert isinstance(source, TensorSource) and isinstance(source, DataSource)
    assert (source.unit, source.units_per_example, source.train_units) == ("examples", 1, 64)
    assert source.default_loss == CLASSIFICATION_LOSS
    assert len(source.heldout()["inputs"]) == 16


def test_as_source_with_token_sequences():
    rng = np.random.default_rng(0)
    split = {"inputs": rng.integers(0, 9, (12, 5)), "targets": rng.integers(0, 9, (12, 5))}
    source = as_source({"train": split, "heldout": split}, "somewhere", unit="tokens")
    assert (source.unit, source.units_per_example, source.train_units) == ("tokens", 5, 60)
    assert source.default_loss == NEXT_TOKEN_LOSS


def test_as_source_passes_a_data_source_through():
    fresh = toy_plugins.fresh()
    assert as_source(fresh, "somewhere") is fresh


def test_as_source_rejects_anything_else():
    with pytest.raises(PluginError) as err:
        as_source([1, 2, 3], "params:training.data.factory (x.y:z)")
    message = str(err.value)
    assert message.startswith("params:training.data.factory (x.y:z) gave a list; it must be a "
                              "DataSource")
    assert "{'train': {'inputs': ..., 'targets': ...}, 'heldout': {...}}" in message


# ---- a data factory named in parameters ---------------------------------------------------


def test_a_data_factory_returning_arrays():
    study = make_study(data="arrays")
    assert isinstance(study.data, TensorSource) and study.data.train_units == 64
    assert study.data_where == f"params:training.data.factory ({HERE}arrays)"
    assert study.loss_path == CLASSIFICATION_LOSS  # the data's default, loss being null
    assert "null" in study.loss_key


def test_a_data_factory_that_raises():
    with pytest.raises(PluginError) as err:
        make_study(data="broken_data")
    assert str(err.value) == (
        f"params:training.data.factory ({HERE}broken_data): calling it with kwargs {{}} raised "
        "OSError: the data folder is not mounted")


def test_a_data_factory_returning_something_else():
    with pytest.raises(PluginError, match=rf"^params:training\.data\.factory \({HERE}a_list\) "
                                          "gave a list; it must be a DataSource"):
        make_study(data="a_list")


def test_arrays_without_targets_name_the_factory():
    with pytest.raises(PluginError) as err:
        make_study(data="arrays_without_targets")
    message = str(err.value)
    assert "missing ['targets']" in message
    assert f"params:training.data.factory ({HERE}arrays_without_targets)" in message


# ---- the probe batch (contracts.check_data) ------------------------------------------------


def test_a_batch_without_targets():
    study = make_study(data="no_targets")
    with pytest.raises(PluginError) as err:
        check_data(study, batch_size=8)
    message = str(err.value)
    assert message.startswith("params:training.data")
    assert f"params:training.data.factory ({HERE}no_targets)" in message
    assert "train_batch(0, 4, 0) has keys ['inputs', 'labels'], missing ['targets']" in message


def test_a_train_batch_that_is_not_pure():
    study = make_study(data="impure")
    with pytest.raises(PluginError) as err:
        check_data(study, batch_size=8)
    message = str(err.value)
    assert message.startswith(f"params:training.data.factory ({HERE}impure): ")
    assert "returned different batches for the same arguments" in message
    assert "pure function" in message


class _Odd(toy_plugins._Source):
    """A source that breaks one contract at a time (set in each test)."""


def _study_of(source) -> Study:
    study = make_study()
    return Study(study.model, source, study.loss_path, data_where="the training_data catalog "
                 "entry (_Odd)")


@pytest.mark.parametrize("attr, value, problem", [
    ("unit", "", "its DataSource has unit ''; it must name what D counts"),
    ("unit", None, "its DataSource has unit None"),
    ("units_per_example", 0, "units_per_example is 0; it must be a positive integer"),
    ("units_per_example", True, "units_per_example is True"),
    ("train_units", -5, "train_units is -5; it must be a positive integer or None"),
])
def test_bad_source_attributes(attr, value, problem):
    source = _Odd()
    setattr(source, attr, value)
    with pytest.raises(PluginError) as err:
        check_data(_study_of(source), batch_size=8)
    message = str(err.value)
    assert message.startswith("the training_data catalog entry (_Odd): ")
    assert problem in message


def test_a_batch_of_the_wrong_size():
    source = _Odd()
    source.train_batch = lambda step, batch_size, seed: toy_plugins._Source.train_batch(
        source, step, batch_size + 1, seed)
    with pytest.raises(PluginError, match=r"train_batch\(0, 4, 0\) returned 5 examples, not 4"):
        check_data(_study_of(source), batch_size=8)


def test_a_batch_whose_tensors_disagree_on_rows():
    source = _Odd()
    source.heldout = lambda: {"inputs": torch.zeros(3, 8), "targets": torch.zeros(2).long()}
    with pytest.raises(PluginError, match=r"^the training_data catalog entry.*heldout\(\) tensors "
                                          r"disagree on the number of examples"):
        check_data(_study_of(source), batch_size=8)


def test_a_batch_of_arrays_not_tensors():
    source = _Odd()
    source.heldout = lambda: {"inputs": np.zeros((3, 8)), "targets": torch.zeros(3).long()}
    with pytest.raises(PluginError, match=r"heldout\(\)\['inputs'\] is a ndarray, not a "
                                          "torch.Tensor"):
        check_data(_study_of(source), batch_size=8)


def test_reading_a_batch_that_raises():
    source = _Odd()

    def fail(step, batch_size, seed):
        raise RuntimeError("disk full")

    source.train_batch = fail
    with pytest.raises(PluginError, match="reading a probe batch raised RuntimeError: disk full"):
        check_data(_study_of(source), batch_size=8)


def test_a_good_source_gives_the_probe_batch():
    batch = check_data(make_study(data="arrays"), batch_size=2)
    assert len(batch["inputs"]) == 2  # never more rows than a planned batch
    assert len(check_data(make_study(data="arrays"), batch_size=64)["inputs"]) == 4
