"""MNIST-1D (Greydanus 2020, "Scaling down deep learning"), generated fresh and vectorised.

The `mnist1d` package builds each example with a chain of numpy/scipy calls on one sample at a
time (`mnist1d.transform.transform`, about 1 ms per example): too slow for a sweep that wants
millions of examples it never repeats. This module reproduces the same procedure batched over
samples, with the same steps and parameters, from a `numpy.random.Generator`:

  1. template of the digit (10 curves of 12 points, `mnist1d.data.get_templates`) + 1e-8
  2. pad with p ~ U{padding[0], ..., padding[1]} zeros at the end
  3. linear interpolation of the template_len + p points onto template_len + padding[1] (= 72)
  4. scale by 1 + scale_coeff·(u − ½), u ~ U[0, 1)
  5. circular shift by k ~ U{0, ..., max_translation − 1}
  6. where the signal is exactly 0 (the padding), correlated noise: a Gaussian filter
     (σ = 2, reflect boundary, radius 8, as `scipy.ndimage.gaussian_filter`) of
     corr_noise_scale · N(0, 1)
  7. iid noise iid_noise_scale · N(0, 1) everywhere
  8. shear: subtract shear_scale·(u − ½) · linspace(−½, ½)
  9. linear interpolation onto final_seq_length (= 40) points

`transform` is the deterministic part given the random draws, so a test can replay the
package's own global-RNG draws and check equality to ~1e-12 (tests/data/test_mnist1d.py); the
generator only changes *how* the draws are made (one Generator, batched), not their law.

Labels: training labels are iid uniform over the 10 digits (the package makes balanced classes
and shuffles; for a stream of fresh batches iid is the natural equivalent); the held-out set is
exactly balanced (its size // 10 per class, the remainder spread over the first classes).

Normalisation: the package centres and scales the *whole generated dataset* by its own scalar
mean and std (`(xs - xs.mean()) / xs.std()`). A stream has no "whole dataset", and
normalising each batch by its own statistics would make an example's input depend on its
batch-mates. So `MNIST1DSource` fixes one scalar mean and std per generator configuration,
measured once on a reference sample (NORM_SAMPLES examples from its own stream) and applied
identically to every training batch and the held-out set: the same transform the package
applies, with constants that do not wobble from batch to batch.

Random streams (numpy SeedSequence entropy, always three 32-bit words, so no two coincide):
training step k of seed s is [s, k, TRAIN_TAG], the held-out set [heldout_seed, 0, HELDOUT_TAG],
the normalisation reference [0, 0, NORM_TAG]. The last word differs, so the held-out set and
the normalisation sample are disjoint from every training stream of every seed.
"""

from __future__ import annotations

import dataclasses
import functools
from dataclasses import dataclass, field
from typing import Any, ClassVar

import numpy as np
import torch

TRAIN_TAG = 0x7472  # "tr"
HELDOUT_TAG = 0x686F  # "ho"
NORM_TAG = 0x6E6F  # "no"
NORM_SAMPLES = 16384
NUM_CLASSES = 10
_EPS = 1e-8  # added to the template before padding, so the mask of step 6 keeps the digit
_SIGMA = 2.0  # the package's hard-coded gaussian_filter(noise, 2)
_TRUNCATE = 4.0  # scipy's default truncate: radius int(4·2 + 0.5) = 8
_MAX_WORD = 2**32  # SeedSequence splits larger ints into several words: keep each one word

# mnist1d.data.get_templates: the raw digit curves (whitened below, as the package does)
_RAW_DIGITS = np.asarray(
    [
        [5, 6, 6.5, 6.75, 7, 7, 7, 7, 6.75, 6.5, 6, 5],
        [5, 3, 3, 3.4, 3.8, 4.2, 4.6, 5, 5.4, 5.8, 5, 5],
        [5, 6, 6.5, 6.5, 6, 5.25, 4.75, 4, 3.5, 3.5, 4, 5],
        [5, 6, 6.5, 6.5, 6, 5, 5, 6, 6.5, 6.5, 6, 5],
        [5, 4.4, 3.8, 3.2, 2.6, 2.6, 5, 5, 5, 5, 5, 5],
        [5, 3, 3, 3, 3, 5, 6, 6.5, 6.5, 6, 4.5, 5],
        [5, 4, 3.5, 3.25, 3, 3, 3, 3, 3.25, 3.5, 4, 5],
        [5, 7, 7, 6.6, 6.2, 5.8, 5.4, 5, 4.6, 4.2, 5, 5],
        [5, 4, 3.5, 3.5, 4, 5, 5, 4, 3.5, 3.5, 4, 5],
        [5, 4, 3.5, 3.5, 4, 5, 5, 5, 5, 4.7, 4.3, 5],
    ],
    dtype=np.float64,
)


def templates() -> np.ndarray:
    """The 10 digit templates (10, 12), exactly `mnist1d.data.get_templates()["x"]`."""
    x = _RAW_DIGITS.copy()
    x -= x.mean(1, keepdims=True)
    x /= x.std(1, keepdims=True)
    x -= x[:, :1]  # signal starts and ends at 0
    return x / 6.0


@dataclass(frozen=True)
class MNIST1DArgs:
    """The generator's parameters; defaults are the published ones (`get_dataset_args()`)."""

    template_len: int = 12
    padding: tuple[int, int] = (36, 60)
    scale_coeff: float = 0.4
    max_translation: int = 48
    corr_noise_scale: float = 0.25
    iid_noise_scale: float = 2e-2
    shear_scale: float = 0.75
    final_seq_length: int = 40

    def __post_init__(self) -> None:
        object.__setattr__(self, "padding", tuple(int(v) for v in self.padding))
        low, high = self.padding
        if self.template_len != _RAW_DIGITS.shape[1]:
            raise ValueError(
                f"template_len must be {_RAW_DIGITS.shape[1]} (the templates' length), "
                f"got {self.template_len}"
            )
        if not 0 <= low <= high:
            raise ValueError(
                f"padding must be (low, high) with 0 <= low <= high, got {self.padding}"
            )
        if self.max_translation < 1 or self.final_seq_length < 2:
            raise ValueError("max_translation must be >= 1 and final_seq_length >= 2")

    @property
    def padded_length(self) -> int:
        """Length after dilation (step 3): template_len + padding[1]."""
        return self.template_len + self.padding[1]


def _gaussian_kernel(sigma: float, truncate: float) -> np.ndarray:
    radius = int(truncate * sigma + 0.5)
    x = np.arange(-radius, radius + 1)
    phi = np.exp(-0.5 / sigma**2 * x**2)
    return phi / phi.sum()


@functools.lru_cache(maxsize=8)
def _smoothing_t(length: int) -> torch.Tensor:
    """(length, length) float64 Gᵀ with noise @ Gᵀ == gaussian_filter1d(noise, 2) on each row
    (mode "reflect": the signal is mirrored about its edges, d c b a | a b c d | d c b a)."""
    kernel = _gaussian_kernel(_SIGMA, _TRUNCATE)
    radius = len(kernel) // 2
    g = np.zeros((length, length))
    for i in range(length):
        for offset, weight in zip(range(-radius, radius + 1), kernel, strict=True):
            j = i + offset
            # reflect until inside (one reflection suffices unless radius >= length)
            while j < 0 or j >= length:
                j = -j - 1 if j < 0 else 2 * length - j - 1
            g[i, j] += weight
    return torch.from_numpy(np.ascontiguousarray(g.T))


@functools.lru_cache(maxsize=8)
def _interpolation_t(n_in: int, n_out: int) -> torch.Tensor:
    """(n_in, n_out) float64: the transposed matrix of linear interpolation between uniform
    grids on [0, 1] (`mnist1d.transform.interpolate`, i.e. scipy's interp1d(kind="linear"))."""
    pos = np.arange(n_out) * (n_in - 1) / (n_out - 1)
    lo = np.minimum(np.floor(pos).astype(int), n_in - 2)
    w = pos - lo
    m = np.zeros((n_out, n_in))
    m[np.arange(n_out), lo] = 1 - w
    m[np.arange(n_out), lo + 1] += w
    return torch.from_numpy(np.ascontiguousarray(m.T))


@dataclass(frozen=True)
class Draws:
    """The random variables of n examples, one row each (what the package draws per sample)."""

    pad: np.ndarray  # (n,) int: zeros appended to the template, in [padding[0], padding[1]]
    scale: np.ndarray  # (n,) U[0, 1)
    shift: np.ndarray  # (n,) int in [0, max_translation)
    corr_noise: np.ndarray  # (n, padded_length) N(0, 1), before scaling and smoothing
    iid_noise: np.ndarray  # (n, padded_length) N(0, 1), before scaling
    shear: np.ndarray  # (n,) U[0, 1)


def draw(rng: np.random.Generator, n: int, args: MNIST1DArgs) -> Draws:
    """The random variables of n examples from one Generator (fixed order of calls)."""
    m = args.padded_length
    low, high = args.padding
    return Draws(
        pad=rng.integers(low, high + 1, size=n),
        scale=rng.random(n),
        shift=rng.integers(0, args.max_translation, size=n),
        corr_noise=rng.standard_normal((n, m)),
        iid_noise=rng.standard_normal((n, m)),
        shear=rng.random(n),
    )


def _matmul(x: np.ndarray, matrix_t: torch.Tensor) -> np.ndarray:
    """x @ matrix_t through torch, not numpy: numpy's OpenBLAS starts its own threads for these
    sizes and ignores `torch.set_num_threads`, so two 1-thread training workers on 2 cores each
    spawned busy-waiting BLAS threads and every step ran ~5x slower (measured). torch's matmul
    stays within the caller's torch thread budget."""
    return (torch.from_numpy(x) @ matrix_t).numpy()


@functools.lru_cache(maxsize=8)
def _dilated_templates(args: MNIST1DArgs) -> np.ndarray:
    """Steps 1-3 for every (digit, pad): (10 · n_pads, padded_length) float64, row
    digit · n_pads + (pad − padding[0]). Only 10 × 25 distinct curves exist, so the
    interpolation is done once here and an example's curve is a row lookup."""
    t_len, m = args.template_len, args.padded_length
    low, high = args.padding
    pads = np.arange(low, high + 1)
    padded = np.zeros((NUM_CLASSES, m + 1))  # a spare zero column: lo + 1 stays in range
    padded[:, :t_len] = templates() + _EPS
    src_len = t_len + pads
    # point j of m samples the padded signal (t_len + pad points) at j·(t_len + pad − 1)/(m − 1)
    pos = np.arange(m)[None, :] * ((src_len - 1) / (m - 1))[:, None]
    lo = np.minimum(np.floor(pos).astype(np.int64), (src_len - 2)[:, None])
    w = pos - lo
    table = padded[:, lo] * (1 - w) + padded[:, lo + 1] * w  # (10, n_pads, m)
    table = table.reshape(NUM_CLASSES * len(pads), m)
    table.setflags(write=False)
    return table


@functools.lru_cache(maxsize=8)
def _roll_index(m: int, max_translation: int) -> np.ndarray:
    """(max_translation, m): the source index of each point after a right roll by k."""
    idx = (np.arange(m)[None, :] - np.arange(max_translation)[:, None]) % m
    idx.setflags(write=False)
    return idx


def transform(labels: np.ndarray, d: Draws, args: MNIST1DArgs) -> np.ndarray:
    """The deterministic part of the procedure: (n, final_seq_length) float64 signals of the
    digits `labels` under the draws `d` (steps 1-9 of the module docstring), unnormalised."""
    labels = np.asarray(labels)
    m = args.padded_length
    n_pads = args.padding[1] - args.padding[0] + 1
    # 1-3 and 5: the dilated template of (digit, pad), read through the roll by `shift`
    # (np.concatenate([x[-k:], x[:-k]]) in the package): one gather
    row = (labels * n_pads + (d.pad - args.padding[0])) * m
    x = _dilated_templates(args).ravel()[
        row[:, None] + _roll_index(m, args.max_translation)[d.shift]
    ]
    # 4. scale (a positive factor, so it commutes with the roll and keeps the zero mask)
    x *= (1 + args.scale_coeff * (d.scale - 0.5))[:, None]
    # 6-7. correlated noise where the signal is exactly zero, iid noise everywhere
    corr = _matmul(args.corr_noise_scale * d.corr_noise, _smoothing_t(m))
    x = np.where(x != 0, x, corr)
    x += args.iid_noise_scale * d.iid_noise
    # 8-9. shear and subsample
    x -= (args.shear_scale * (d.shear - 0.5))[:, None] * np.linspace(-0.5, 0.5, m)[None, :]
    return _matmul(x, _interpolation_t(m, args.final_seq_length))


def generate(
    rng: np.random.Generator,
    n: int,
    args: MNIST1DArgs | None = None,
    labels: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """n fresh examples: (x float64 (n, final_seq_length) unnormalised, y int64 (n,)).

    Labels are iid uniform unless given.
    """
    args = args or MNIST1DArgs()
    if labels is None:
        y = rng.integers(0, NUM_CLASSES, size=n)
    elif len(labels) != n:
        raise ValueError(f"{len(labels)} labels given for {n} examples")
    else:
        y = np.asarray(labels)
    return transform(y, draw(rng, n, args), args), y.astype(np.int64)


def balanced_labels(rng: np.random.Generator, n: int) -> np.ndarray:
    """n labels, n // 10 of each digit (the remainder to the lowest digits), shuffled."""
    return rng.permutation(np.arange(n) % NUM_CLASSES).astype(np.int64)


def _word(name: str, value: int) -> int:
    value = int(value)
    if not 0 <= value < _MAX_WORD:
        raise ValueError(f"{name} must be in [0, 2**32), got {value}")
    return value


@dataclass(frozen=True)
class MNIST1DSource:
    """MNIST-1D as a data source: fresh examples every step and a fixed, balanced held-out set.

    Training batch k of seed s holds `batch_size` new examples from
    `default_rng([s, k, TRAIN_TAG])`, a pure function of (s, k) (a resumed run sees exactly the
    batches of an uninterrupted one). Inputs are float32 (B, final_seq_length), normalised with
    the fixed `mean`/`std` (derived from a reference sample when not given); targets int64 (B,).
    The held-out tensors are built on first use and not pickled: shipping a source to a worker
    costs a few hundred bytes.
    """

    heldout_size: int = 4096
    heldout_seed: int = 2020
    args: MNIST1DArgs = field(default_factory=MNIST1DArgs)
    mean: float | None = None
    std: float | None = None
    _heldout: dict[str, torch.Tensor] | None = field(
        default=None, init=False, repr=False, compare=False
    )

    unit: ClassVar[str] = "examples"
    units_per_example: ClassVar[int] = 1
    train_units: ClassVar[int | None] = None
    default_loss: ClassVar[str] = "flops_fit.nn.losses:classification_cross_entropy"
    num_classes: ClassVar[int] = NUM_CLASSES

    def __post_init__(self) -> None:
        if isinstance(self.args, dict):
            object.__setattr__(self, "args", MNIST1DArgs(**self.args))
        if self.heldout_size < 1:
            raise ValueError(f"heldout_size must be >= 1, got {self.heldout_size}")
        _word("heldout_seed", self.heldout_seed)
        if self.mean is None or self.std is None:
            mean, std = normalisation(self.args)
            object.__setattr__(self, "mean", mean if self.mean is None else float(self.mean))
            object.__setattr__(self, "std", std if self.std is None else float(self.std))
        if not self.std > 0:
            raise ValueError(f"std must be > 0, got {self.std}")

    @property
    def input_length(self) -> int:
        return self.args.final_seq_length

    def _batch(self, x: np.ndarray, y: np.ndarray) -> dict[str, torch.Tensor]:
        inputs = ((x - self.mean) / self.std).astype(np.float32)
        return {"inputs": torch.from_numpy(inputs), "targets": torch.from_numpy(y)}

    def train_batch(self, step: int, batch_size: int, seed: int) -> dict[str, torch.Tensor]:
        rng = np.random.default_rng([_word("seed", seed), _word("step", step), TRAIN_TAG])
        return self._batch(*generate(rng, int(batch_size), self.args))

    def heldout(self) -> dict[str, torch.Tensor]:
        if self._heldout is None:
            rng = np.random.default_rng([self.heldout_seed, 0, HELDOUT_TAG])
            labels = balanced_labels(rng, self.heldout_size)
            object.__setattr__(
                self, "_heldout", self._batch(*generate(rng, len(labels), self.args, labels))
            )
        return self._heldout

    def __getstate__(self) -> dict[str, Any]:
        return {**self.__dict__, "_heldout": None}

    def describe(self) -> dict[str, Any]:
        """Plain-data summary (for logs and the plan)."""
        return {
            "heldout_size": self.heldout_size,
            "heldout_seed": self.heldout_seed,
            "mean": self.mean,
            "std": self.std,
            **dataclasses.asdict(self.args),
        }


@functools.lru_cache(maxsize=8)
def normalisation(args: MNIST1DArgs) -> tuple[float, float]:
    """Scalar mean and std of the unnormalised signals, over NORM_SAMPLES reference examples
    (the statistics the package takes over its whole dataset; ~0.3% sampling error)."""
    rng = np.random.default_rng([0, 0, NORM_TAG])
    labels = balanced_labels(rng, NORM_SAMPLES)
    chunk = 4096  # bounds the temporaries (~6 arrays of chunk x 72 float64)
    xs = [generate(rng, len(y), args, y)[0] for y in np.split(labels, NORM_SAMPLES // chunk)]
    x = np.concatenate(xs)
    return float(x.mean()), float(x.std())
