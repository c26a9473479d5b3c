"""Analysis: the runs table -> scaling laws with bootstrap intervals, optima and predictions."""

from flops_fit.pipelines.analysis.pipeline import create_pipeline

__all__ = ["create_pipeline"]
