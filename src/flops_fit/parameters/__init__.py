"""Typed parameters: one strict Pydantic model per `params:` section.

- `base`: the `Section` base model, `ParameterError` and the error messages;
- `planning`, `corpus`, `training`, `torch_backend`, `analysis`, `reporting`: the sections;
- `sections`: the registry of top-level sections (`SECTIONS`).

Each model's defaults equal its `conf/base/parameters_<section>.yml`.
"""
