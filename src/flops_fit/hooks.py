"""Project hooks: every parameter is checked before any node runs.

Kedro validates each node input `params:<section>` annotated with a typed model
(`flops_fit.parameters`) when the context's parameters are first read. This hook reads them as
soon as the context exists, so a bad value fails before planning writes a file even in sections
whose pipeline runs last, and it adds what Kedro's message lacks (`flops_fit.parameters.sources`):
the file or `--params` each bad key came from, a "did you mean", and misspelt top-level keys.
"""

from __future__ import annotations

from pathlib import Path

from kedro.framework.hooks import hook_impl
from kedro.validation.exceptions import ParameterValidationError

from flops_fit.parameters.sources import check_parameters


class ParameterValidationHooks:
    @hook_impl
    def after_context_created(self, context) -> None:
        loader = context.config_loader
        project_path = Path(context.project_path)
        conf_root = Path(getattr(loader, "conf_source", project_path / "conf"))
        raw = loader["parameters"]
        kedro_error: ParameterValidationError | None = None
        try:
            context.params  # noqa: B018 - Kedro validates every typed params: input here
        except ParameterValidationError as exc:
            kedro_error = exc
        check_parameters(
            raw,
            conf_root,
            base_env=getattr(loader, "base_env", "base") or "base",
            run_env=context.env or getattr(loader, "default_run_env", "local"),
            runtime_params=getattr(context, "_runtime_params", None) or {},
            project_path=project_path,
            sections=kedro_error is not None,
        )
        if kedro_error is not None:  # a typed input outside flops_fit.parameters.SECTIONS
            raise kedro_error
