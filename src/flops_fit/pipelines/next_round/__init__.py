"""Next round: the study's fit -> the next round's runs (or why the study stops)."""

from flops_fit.pipelines.next_round.pipeline import create_pipeline

__all__ = ["create_pipeline"]
