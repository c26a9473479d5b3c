"""Catch misspelt parameter keys before anything runs.

`conf/base` declares every parameter the project understands. An environment (`--env X`,
`conf/local`) or `--params` may only override keys that base declares; anything else is almost
always a typo that would otherwise be silently ignored (soft merging keeps the base value).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import yaml

PARAMETER_PATTERNS = ("parameters*.yml", "parameters*.yaml", "parameters*/**/*.yml")


class ParameterKeyError(ValueError):
    """A parameter key that the project does not know."""


def flatten_keys(tree: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """Map dotted key paths to their values; mappings are descended, everything else is a leaf."""
    flat: dict[str, Any] = {}
    for key, value in tree.items():
        path = f"{prefix}{key}"
        flat[path] = value
        if isinstance(value, Mapping) and value:
            flat.update(flatten_keys(value, prefix=f"{path}."))
    return flat


def _parameter_files(env_dir: Path) -> list[Path]:
    files: set[Path] = set()
    for pattern in PARAMETER_PATTERNS:
        files.update(p for p in env_dir.glob(pattern) if p.is_file())
    return sorted(files)


def declared_keys(env_dir: Path) -> dict[str, Path]:
    """Dotted key path -> the file under `env_dir` that declares it."""
    keys: dict[str, Path] = {}
    for path in _parameter_files(env_dir):
        with path.open(encoding="utf-8") as fh:
            try:
                tree = yaml.safe_load(fh) or {}
            except yaml.YAMLError as exc:
                raise ParameterKeyError(f"{path}: not valid YAML: {exc}") from exc
        if not isinstance(tree, Mapping):
            raise ParameterKeyError(f"{path}: expected a mapping of parameters at the top level")
        for key in flatten_keys(tree):
            keys.setdefault(key, path)
    return keys


def _open_mappings(base: Mapping[str, Path], base_values: Mapping[str, Any]) -> set[str]:
    """Keys whose base value is an empty mapping accept any sub-keys (user-defined maps)."""
    return {k for k, v in base_values.items() if isinstance(v, Mapping) and not v}


def _is_known(key: str, known: Iterable[str], open_maps: set[str]) -> bool:
    if key in known:
        return True
    parts = key.split(".")
    return any(".".join(parts[:i]) in open_maps for i in range(1, len(parts)))


def _base_values(env_dir: Path) -> dict[str, Any]:
    values: dict[str, Any] = {}
    for path in _parameter_files(env_dir):
        with path.open(encoding="utf-8") as fh:
            values.update(flatten_keys(yaml.safe_load(fh) or {}))
    return values


def _suggest(key: str, known: Iterable[str]) -> str:
    import difflib

    match = difflib.get_close_matches(key, list(known), n=1)
    return f" (did you mean '{match[0]}'?)" if match else ""


def check_parameter_keys(
    conf_root: Path,
    base_env: str,
    run_env: str | None,
    runtime_params: Mapping[str, Any] | None = None,
) -> None:
    """Raise ParameterKeyError naming the key and its file for any key base does not declare."""
    conf_root = Path(conf_root)
    base = declared_keys(conf_root / base_env)
    open_maps = _open_mappings(base, _base_values(conf_root / base_env))
    problems: list[str] = []
    if run_env and run_env != base_env and (conf_root / run_env).is_dir():
        for key, path in declared_keys(conf_root / run_env).items():
            if not _is_known(key, base, open_maps):
                problems.append(
                    f"unknown parameter '{key}' in {path}{_suggest(key, base)}"
                )
    sections = {k.split(".")[0] for k in base}
    resolved = runtime_param_names(conf_root)
    for key, value in flatten_keys(_nest_dotted(runtime_params or {})).items():
        parts = key.split(".")
        if parts[0] in sections:
            if not _is_known(key, base, open_maps):
                problems.append(
                    f"unknown parameter '{key}' given with --params{_suggest(key, base)}"
                )
        elif not (isinstance(value, Mapping) and value) and not any(  # name the leaves only
            ".".join(parts[:i]) in resolved for i in range(1, len(parts) + 1)
        ):
            # Keys outside our sections are fine only where a config file reads them through
            # ${runtime_params:...} (data_root, runs_path); `planing.x` or `data_roto` are typos.
            problems.append(
                f"unknown parameter '{key}' given with --params{_suggest(key, [*base, *resolved])}"
            )
    if problems:
        raise ParameterKeyError(
            "; ".join(problems)
            + f". Known keys are declared in {conf_root / base_env}/parameters*.yml."
        )


_RUNTIME_PARAM = re.compile(r"\$\{\s*runtime_params:\s*([A-Za-z0-9_.\-]+)")


def runtime_param_names(conf_root: Path) -> set[str]:
    """Names that some config file under `conf_root` reads with ${runtime_params:NAME,...}."""
    names: set[str] = set()
    for path in Path(conf_root).rglob("*.y*ml"):
        if path.is_file():
            names.update(_RUNTIME_PARAM.findall(path.read_text(encoding="utf-8")))
    return names


def _nest_dotted(params: Mapping[str, Any]) -> dict[str, Any]:
    nested: dict[str, Any] = {}
    for key, value in params.items():
        node = nested
        parts = str(key).split(".")
        for part in parts[:-1]:
            node = node.setdefault(part, {})
        if isinstance(value, Mapping):
            node.setdefault(parts[-1], {}).update(_nest_dotted(value))
        else:
            node[parts[-1]] = value
    return nested
