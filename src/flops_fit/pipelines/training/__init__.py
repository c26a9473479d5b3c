"""Training: sweep plan -> one result per planned run, crash-safe and resumable."""

from flops_fit.pipelines.training.pipeline import create_pipeline

__all__ = ["create_pipeline"]
