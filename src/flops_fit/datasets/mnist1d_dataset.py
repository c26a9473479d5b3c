"""MNIST-1D as a catalog entry: loading it returns the data source, not an array.

The examples are generated on demand (fresh ones every training step, see
`flops_fit.data.mnist1d`), so there is nothing to read from disk: the entry only fixes the
held-out set and the generator's parameters, for example

    mnist1d:
      type: flops_fit.datasets.mnist1d_dataset.MNIST1DDataset
      heldout_size: 4096
      generator_args: {iid_noise_scale: 0.05}
"""

from __future__ import annotations

from typing import Any

from kedro.io import AbstractDataset, DatasetError

from flops_fit.data.mnist1d import MNIST1DArgs, MNIST1DSource


class MNIST1DDataset(AbstractDataset[None, MNIST1DSource]):
    """Read-only dataset whose `load()` is an `MNIST1DSource`.

    Args:
        heldout_size: examples in the fixed, class-balanced held-out set.
        heldout_seed: seed of the held-out set (its stream is disjoint from every training
            stream whatever the seeds).
        generator_args: overrides of the published generation parameters
            (`MNIST1DArgs`: padding, scale_coeff, max_translation, corr_noise_scale,
            iid_noise_scale, shear_scale, final_seq_length).
    """

    def __init__(
        self,
        heldout_size: int = 4096,
        heldout_seed: int = 2020,
        generator_args: dict[str, Any] | None = None,
        metadata: dict[str, Any] | None = None,
    ) -> None:
        self._heldout_size = heldout_size
        self._heldout_seed = heldout_seed
        self._generator_args = dict(generator_args or {})
        known = {f for f in MNIST1DArgs.__dataclass_fields__ if f != "template_len"}
        unknown = sorted(set(self._generator_args) - known)
        if unknown:
            raise DatasetError(f"unknown MNIST-1D generator_args {unknown}; known: {sorted(known)}")
        self.metadata = metadata

    def load(self) -> MNIST1DSource:
        try:
            return MNIST1DSource(
                heldout_size=self._heldout_size,
                heldout_seed=self._heldout_seed,
                args=MNIST1DArgs(**self._generator_args),
            )
        except (TypeError, ValueError) as exc:
            raise DatasetError(f"invalid MNIST-1D dataset arguments: {exc}") from exc

    def save(self, data: MNIST1DSource) -> None:
        raise DatasetError("MNIST1DDataset is read-only: its examples are generated")

    def _describe(self) -> dict[str, Any]:
        return {
            "heldout_size": self._heldout_size,
            "heldout_seed": self._heldout_seed,
            "generator_args": self._generator_args,
        }
