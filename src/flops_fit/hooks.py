"""Project hooks: configuration checks that must fail before any node runs."""

from __future__ import annotations

from pathlib import Path

from kedro.framework.hooks import hook_impl

from flops_fit.parameter_keys import check_parameter_keys


class ParameterValidationHooks:
    @hook_impl
    def after_context_created(self, context) -> None:
        loader = context.config_loader
        conf_root = Path(getattr(loader, "conf_source", Path(context.project_path) / "conf"))
        check_parameter_keys(
            conf_root,
            base_env=getattr(loader, "base_env", "base") or "base",
            run_env=context.env or getattr(loader, "default_run_env", "local"),
            runtime_params=getattr(context, "_runtime_params", None) or {},
        )
