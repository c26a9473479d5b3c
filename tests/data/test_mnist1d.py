"""MNIST-1D: the vectorised generator against the `mnist1d` package, the source's contract, the
classifier factory and the catalog entry."""

from __future__ import annotations

import pickle
import sys

import numpy as np
import pytest
import torch
from kedro.io import DataCatalog, DatasetError
from scipy.interpolate import interp1d
from scipy.ndimage import gaussian_filter
from torch.utils.flop_counter import FlopCounterMode

from flops_fit.data import mnist1d as m
from flops_fit.datasets.mnist1d_dataset import MNIST1DDataset
from flops_fit.models.mnist1d import MLPClassifier, mlp

pkg_data = pytest.importorskip("mnist1d.data")
pkg_transform = sys.modules["mnist1d.transform"]  # the package re-exports a function of that name


def _pkg_args(**overrides):
    args = pkg_data.get_dataset_args()
    for key, value in overrides.items():
        setattr(args, key, value)
    return args


def test_templates_and_defaults_are_the_packages():
    np.testing.assert_array_equal(m.templates(), pkg_data.get_templates()["x"])
    published = pkg_data.get_dataset_args(as_dict=True)
    ours = vars(m.MNIST1DArgs())
    assert {k: published[k] for k in ours} == {**ours, "padding": list(ours["padding"])}


def test_linear_maps_match_scipy():
    rng = np.random.default_rng(0)
    noise = rng.standard_normal((5, 72))
    smoothed = np.stack([gaussian_filter(row, 2) for row in noise])
    np.testing.assert_allclose(m._matmul(noise, m._smoothing_t(72)), smoothed, atol=1e-13)
    x = rng.standard_normal((5, 72))
    ref = interp1d(np.linspace(0, 1, 72), x, axis=1, kind="linear")(np.linspace(0, 1, 40))
    np.testing.assert_allclose(m._matmul(x, m._interpolation_t(72, 40)), ref, atol=1e-13)


def test_transform_replays_the_package_exactly():
    """Seed numpy's global RNG, record the draws `mnist1d.transform.transform` makes per sample
    (in its order), replay them through our batched `transform`: same signals to rounding."""
    args, tpl, n = _pkg_args(), pkg_data.get_templates(), 400
    np.random.seed(7)
    labels = np.random.randint(0, 10, n)
    state = np.random.get_state()
    draws = {k: [] for k in ("pad", "scale", "shift", "corr", "iid", "shear")}
    for _ in range(n):
        draws["pad"].append(36 + int(np.random.rand() * 25))  # transform.pad
        draws["scale"].append(np.random.rand())
        draws["shift"].append(np.random.choice(48))  # transform.translate
        draws["corr"].append(np.random.randn(72))
        draws["iid"].append(np.random.randn(72))
        draws["shear"].append(np.random.rand())
    np.random.set_state(state)
    ref = np.stack([pkg_transform.transform(tpl["x"][y], tpl["t"], args)[0] for y in labels])
    d = m.Draws(
        pad=np.array(draws["pad"]),
        scale=np.array(draws["scale"]),
        shift=np.array(draws["shift"]),
        corr_noise=np.stack(draws["corr"]),
        iid_noise=np.stack(draws["iid"]),
        shear=np.array(draws["shear"]),
    )
    np.testing.assert_allclose(m.transform(labels, d, m.MNIST1DArgs()), ref, rtol=0, atol=1e-12)


def test_draws_cover_the_packages_ranges():
    """pad = low + int(rand·(high − low + 1)) is uniform on {36..60} inclusive, and
    np.random.choice(48) on {0..47}: the same ranges as ours, both ends reached."""
    d = m.draw(np.random.default_rng(0), 20000, m.MNIST1DArgs())
    assert (d.pad.min(), d.pad.max(), d.shift.min(), d.shift.max()) == (36, 60, 0, 47)
    assert np.bincount(d.pad - 36).min() > 20000 / 25 * 0.8
    for u in (d.scale, d.shear):
        assert u.min() >= 0 and u.max() < 1 and abs(u.mean() - 0.5) < 0.01
    assert abs(d.corr_noise.std() - 1) < 0.01 and abs(d.iid_noise.mean()) < 0.01


def test_noise_free_curves_equal_the_packages():
    """With every random transform and noise switched off, `make_dataset` and `generate` give
    the same 10 deterministic curves (after the package's dataset-wide normalisation)."""
    off = dict(
        padding=[48, 48],
        scale_coeff=0.0,
        max_translation=1,
        corr_noise_scale=0.0,
        iid_noise_scale=0.0,
        shear_scale=0.0,
    )
    ds = pkg_data.make_dataset(_pkg_args(num_samples=50, train_split=1.0, **off))
    x, y = m.generate(np.random.default_rng(0), 50, m.MNIST1DArgs(**off), np.arange(50) % 10)
    x = (x - x.mean()) / x.std()
    for digit in range(10):
        np.testing.assert_allclose(x[y == digit], ds["x"][ds["y"] == digit], atol=1e-12)


def test_distribution_matches_make_dataset():
    """Per-class mean and std curves of 3000 package samples vs 30000 of ours.

    Each point's difference is compared with its standard error (from the two samples'
    spreads). 400 such z-scores per statistic (10 classes x 40 points) stay within |z| < 4.5
    with probability > 0.99 when the laws agree (measured max 3.1 here). The check has power
    against wrong ranges (max_translation 40 instead of 48: z = 10; padding (36, 56): z = 7;
    no shear: z = 6) but not against subtle noise scales (iid noise x2: z = 3.0): those are
    pinned by the exact replay above and the draws by `test_draws_cover_the_packages_ranges`.
    """
    ds = pkg_data.make_dataset(_pkg_args(num_samples=3000, train_split=1.0))
    px, py = ds["x"], ds["y"]
    ox, oy = m.generate(np.random.default_rng(1), 30000)
    ox = (ox - ox.mean()) / ox.std()  # the package's dataset-wide normalisation
    for digit in range(10):
        a, b = px[py == digit], ox[oy == digit]
        se_mean = np.sqrt(a.var(0) / len(a) + b.var(0) / len(b))
        z_mean = (a.mean(0) - b.mean(0)) / se_mean
        se_std = np.sqrt(a.var(0) / (2 * len(a)) + b.var(0) / (2 * len(b)))
        z_std = (a.std(0) - b.std(0)) / se_std
        assert np.abs(z_mean).max() < 4.5, (digit, np.abs(z_mean).max())
        assert np.abs(z_std).max() < 4.5, (digit, np.abs(z_std).max())
    assert abs(np.mean(oy == 3) - 0.1) < 0.01  # iid uniform labels


@pytest.fixture(scope="module")
def source() -> m.MNIST1DSource:
    return m.MNIST1DSource(heldout_size=1000)


def test_source_contract_attributes(source):
    from flops_fit.plugins.data import DataSource

    assert isinstance(source, DataSource)
    assert (source.unit, source.units_per_example, source.train_units) == ("examples", 1, None)
    assert source.default_loss == "flops_fit.nn.losses:classification_cross_entropy"


def test_train_batch_is_a_pure_function_of_seed_and_step(source):
    b = source.train_batch(5, 64, seed=3)
    assert b["inputs"].dtype == torch.float32 and b["inputs"].shape == (64, 40)
    assert b["targets"].dtype == torch.int64 and b["targets"].shape == (64,)
    again = m.MNIST1DSource(heldout_size=7).train_batch(5, 64, seed=3)  # another instance
    assert all(torch.equal(b[k], again[k]) for k in b)
    for other in (source.train_batch(6, 64, seed=3), source.train_batch(5, 64, seed=4)):
        assert not torch.equal(b["inputs"], other["inputs"])
    big = source.train_batch(0, 4096, seed=0)["inputs"]
    assert abs(big.mean().item()) < 0.05 and abs(big.std().item() - 1) < 0.05


def test_heldout_is_fixed_balanced_and_off_the_training_streams(source):
    h = source.heldout()
    assert h["inputs"].shape == (1000, 40) and h["inputs"].dtype == torch.float32
    assert np.bincount(h["targets"].numpy()).tolist() == [100] * 10
    assert source.heldout() is h  # cached
    fresh = m.MNIST1DSource(heldout_size=1000).heldout()
    assert torch.equal(fresh["inputs"], h["inputs"])
    # a training run whose seed equals the held-out seed still draws other examples
    train = source.train_batch(0, 1000, seed=source.heldout_seed)["inputs"].numpy()
    assert not set(map(bytes, train)) & set(map(bytes, h["inputs"].numpy()))
    # the same normalisation for both: held-out statistics match the training ones
    assert abs(h["inputs"].mean().item()) < 0.05 and abs(h["inputs"].std().item() - 1) < 0.05


def test_pickle_is_small_and_round_trips(source):
    source.heldout()
    blob = pickle.dumps(source)
    assert len(blob) < 2000  # the held-out tensors stay behind
    back = pickle.loads(blob)
    assert back == source and back._heldout is None
    assert torch.equal(back.heldout()["inputs"], source.heldout()["inputs"])
    assert torch.equal(back.train_batch(1, 8, 0)["inputs"], source.train_batch(1, 8, 0)["inputs"])


def test_source_rejects_bad_arguments():
    with pytest.raises(ValueError, match="heldout_size"):
        m.MNIST1DSource(heldout_size=0)
    with pytest.raises(ValueError, match="padding"):
        m.MNIST1DArgs(padding=(10, 5))
    with pytest.raises(ValueError, match="step"):
        m.MNIST1DSource(heldout_size=10).train_batch(-1, 8, 0)


def test_classifier_factory():
    widths = [8, 16, 32, 64]
    with torch.device("meta"):
        models = [mlp(width=w) for w in widths]
    counts = [model.num_params() for model in models]
    assert counts == sorted(set(counts))
    assert counts[-1] == 2 * 64**2 + (40 + 3 + 10) * 64 + 10
    assert all(p.is_meta for p in models[0].parameters())
    model = mlp(width=16, depth=2)
    assert isinstance(model, MLPClassifier)
    assert model(torch.zeros(5, 40)).shape == (5, 10)
    with pytest.raises(ValueError, match="width"):
        mlp(width=0)


def test_classifier_flops_are_close_to_6n():
    """Matmuls only: FlopCounterMode sees 6N per example less the first layer's input gradient
    (2·40·width) and the bias adds (6 per bias), which it does not count."""
    width, rows = 64, 4
    with torch.device("meta"):
        model = mlp(width=width)
        with FlopCounterMode(display=False) as counter:
            model(torch.empty(rows, 40)).sum().backward()
    biases = 3 * width + 10
    expected = 6 * model.num_params() - 2 * 40 * width - 6 * biases
    assert counter.get_total_flops() / rows == expected


def test_kedro_dataset_loads_the_source():
    ds = MNIST1DDataset(heldout_size=200, heldout_seed=5, generator_args={"iid_noise_scale": 0.05})
    src = ds.load()
    assert isinstance(src, m.MNIST1DSource)
    assert (src.heldout_size, src.heldout_seed, src.args.iid_noise_scale) == (200, 5, 0.05)
    with pytest.raises(DatasetError, match="read-only"):
        ds.save(src)
    with pytest.raises(DatasetError, match="unknown"):
        MNIST1DDataset(generator_args={"iid_noise": 0.1})
    catalog = DataCatalog.from_config(
        {
            "mnist1d": {
                "type": "flops_fit.datasets.mnist1d_dataset.MNIST1DDataset",
                "heldout_size": 100,
            }
        }
    )
    assert catalog.load("mnist1d").heldout()["inputs"].shape == (100, 40)
