"""Reporting: analysed runs and fitted laws -> four figures, report.html, report.md."""

from flops_fit.pipelines.reporting.pipeline import create_pipeline

__all__ = ["create_pipeline"]
