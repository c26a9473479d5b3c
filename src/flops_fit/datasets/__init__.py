"""Custom Kedro datasets of the project."""

from flops_fit.datasets.mnist1d_dataset import MNIST1DDataset
from flops_fit.datasets.package_corpus import PackageCorpusDataset

__all__ = ["MNIST1DDataset", "PackageCorpusDataset"]
