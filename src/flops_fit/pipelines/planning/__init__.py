"""Planning: compute range -> IsoFLOP sweep plan."""

from flops_fit.pipelines.planning.pipeline import create_pipeline

__all__ = ["create_pipeline"]
