"""Custom Kedro datasets of the project."""

from flops_fit.datasets.package_corpus import PackageCorpusDataset

__all__ = ["PackageCorpusDataset"]
