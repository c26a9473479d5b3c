"""Every folder under pipelines/ that exposes create_pipeline() is registered under its name."""

from kedro.framework.project import find_pipelines
from kedro.pipeline import Pipeline

#: what `kedro run` runs without --pipelines: one round of the study, its validation, the report
STAGES = ("planning", "training", "analysis", "validation", "reporting")


def register_pipelines() -> dict[str, Pipeline]:
    pipelines = find_pipelines(raise_errors=True)
    default = Pipeline([])
    for stage in STAGES:
        if stage in pipelines:
            default += pipelines[stage]
    pipelines["__default__"] = default
    return pipelines
