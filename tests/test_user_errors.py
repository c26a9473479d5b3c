"""What a user's mistake prints: one Error: line, without the frames or logs of the libraries
that found it."""

from __future__ import annotations

import pytest

from flops_fit.parameters.base import ParameterError

from .conftest import PROJECT_ROOT


def test_a_bad_value_is_said_once_without_kedros_pydantic_dump(tmp_path):
    """Kedro logs each typed parameter that fails its model (pydantic's dump and URL) before
    the hook's one Error: listing them all: those lines are not shown."""
    import logging

    from kedro.framework.session import KedroSession
    from kedro.framework.startup import bootstrap_project

    bootstrap_project(PROJECT_ROOT)
    seen: list[logging.LogRecord] = []
    handler = logging.Handler()
    handler.emit = seen.append
    validator = logging.getLogger("kedro.validation.parameter_validator")
    validator.addHandler(handler)
    try:
        params = {"data_root": str(tmp_path), "planning": {"batch_size": "abc"}}
        with pytest.raises(ParameterError, match=r"params:planning\.batch_size: Input should be "
                                                 r"a valid integer.*got 'abc' given with --params"
                           ), KedroSession.create(project_path=PROJECT_ROOT, env="mock",
                                                  runtime_params=params) as session:
            session.run(pipeline_names=["planning"])
    finally:
        validator.removeHandler(handler)
    assert not [r for r in seen if r.levelno >= logging.WARNING]
    assert not (tmp_path / "02_intermediate").exists()
