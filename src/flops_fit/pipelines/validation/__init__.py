"""Validation: train the predicted compute-optimal model at an unseen budget and score the law."""

from flops_fit.pipelines.validation.pipeline import create_pipeline

__all__ = ["create_pipeline"]
