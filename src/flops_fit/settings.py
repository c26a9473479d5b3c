"""Kedro project settings."""

from kedro.config import OmegaConfigLoader

from flops_fit.hooks import ParameterValidationHooks

HOOKS = (ParameterValidationHooks(),)

CONFIG_LOADER_CLASS = OmegaConfigLoader
CONFIG_LOADER_ARGS = {
    "base_env": "base",
    "default_run_env": "local",
    # An environment overrides single keys instead of replacing a whole top-level section.
    "merge_strategy": {"parameters": "soft"},
}
