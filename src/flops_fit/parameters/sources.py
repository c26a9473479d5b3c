"""Where each parameter came from, and the checks Kedro's own validation leaves out.

Kedro validates every `params:<section>` that a node annotates with a model (see `base`); its
message names the key inside the section but not the file or `--params` that set it, offers no
"did you mean", and it cannot see a misspelt *section* (`planing.batch_size`, `data_roto`), which
soft merging would otherwise ignore. This module adds exactly that, reading the conf folder as
plain YAML (no Kedro): the project hook (`flops_fit.hooks`) calls `check_parameters` before any
node runs.
"""

from __future__ import annotations

import difflib
import logging
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml

from flops_fit.parameters.base import ParameterError
from flops_fit.parameters.sections import SECTIONS

PARAMETER_PATTERNS = ("parameters*.yml", "parameters*.yaml", "parameters*/**/*.yml")
_RUNTIME_PARAM = re.compile(r"\$\{\s*runtime_params:\s*([A-Za-z0-9_.\-]+)")
# once per process: `kedro study` checks the parameters again in each of its sessions
_WARNED: set[str] = set()

log = logging.getLogger(__name__)


def flatten_keys(tree: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """Dotted key paths -> values; mappings are descended (and listed themselves)."""
    flat: dict[str, Any] = {}
    for key, value in tree.items():
        path = f"{prefix}{key}"
        flat[path] = value
        if isinstance(value, Mapping) and value:
            flat.update(flatten_keys(value, prefix=f"{path}."))
    return flat


def nest_dotted(params: Mapping[str, Any]) -> dict[str, Any]:
    """{"a.b": 1} -> {"a": {"b": 1}} (runtime params may arrive either way)."""
    nested: dict[str, Any] = {}
    for key, value in params.items():
        node = nested
        parts = str(key).split(".")
        for part in parts[:-1]:
            node = node.setdefault(part, {})
        if isinstance(value, Mapping):
            node.setdefault(parts[-1], {}).update(nest_dotted(value))
        else:
            node[parts[-1]] = value
    return nested


def parameter_files(env_dir: Path) -> list[tuple[Path, Any]]:
    """Every parameters file under `env_dir`, sorted, with its YAML as read (any shape)."""
    files: set[Path] = set()
    for pattern in PARAMETER_PATTERNS:
        files.update(p for p in Path(env_dir).glob(pattern) if p.is_file())
    out = []
    for path in sorted(files):
        try:
            out.append((path, yaml.safe_load(path.read_text(encoding="utf-8")) or {}))
        except yaml.YAMLError as exc:
            raise ParameterError(f"{path}: not valid YAML: {exc}") from exc
    return out


def declared_keys(env_dir: Path) -> dict[str, Path]:
    """Dotted key path -> the parameters file under `env_dir` that sets it."""
    keys: dict[str, Path] = {}
    for path, tree in parameter_files(env_dir):
        if not isinstance(tree, Mapping):
            raise ParameterError(f"{path}: expected a mapping of parameters at the top level, "
                                 f"got {_kind(tree)}")
        for key in flatten_keys(tree):
            keys.setdefault(key, path)
    return keys


def _kind(value: Any) -> str:
    return "a mapping" if isinstance(value, Mapping) else (
        "a list" if isinstance(value, list) else "a single value")


def merge_conflicts(conf_root: Path, base_env: str, run_env: str | None) -> list[str]:
    """Keys that are a mapping in one parameters file and a list or a value in another (in one
    environment, or the run environment against base): soft merging cannot join them, and the
    config loader's own error names neither file nor key."""
    envs = [base_env] + ([run_env] if run_env and run_env != base_env else [])
    seen: dict[str, tuple[str, Path]] = {}
    problems = []
    for env in envs:
        for path, tree in parameter_files(Path(conf_root) / env):
            if not isinstance(tree, Mapping):
                problems.append(f"{path}: expected a mapping of parameters at the top level, "
                                f"got {_kind(tree)}")
                continue
            for key, value in flatten_keys(tree).items():
                if value is None:  # null merges with anything
                    continue
                kind = _kind(value)
                first = seen.setdefault(key, (kind, path))
                if "a mapping" in (kind, first[0]) and kind != first[0]:
                    problems.append(f"{key} is {first[0]} in {first[1]} but {kind} in {path}: "
                                    "one of them is misshapen")
    return problems


def runtime_param_names(conf_root: Path) -> set[str]:
    """Names some config file reads with ${runtime_params:NAME,...} (data_root, runs_path)."""
    names: set[str] = set()
    for path in Path(conf_root).rglob("*.y*ml"):
        if path.is_file():
            names.update(_RUNTIME_PARAM.findall(path.read_text(encoding="utf-8")))
    return names


class ParameterSources:
    """Answers "where was `key` set?": `--params`, else the run environment, else base."""

    def __init__(self, conf_root: Path, base_env: str, run_env: str | None,
                 runtime_params: Mapping[str, Any] | None, project_path: Path | None = None):
        self.conf_root = Path(conf_root)
        self.runtime = flatten_keys(nest_dotted(runtime_params or {}))
        layers = [base_env] if not run_env or run_env == base_env else [run_env, base_env]
        self.layers = [declared_keys(self.conf_root / env) for env in layers
                       if (self.conf_root / env).is_dir()]
        self.project_path = project_path

    def _shown(self, path: Path) -> str:
        if self.project_path is not None:
            try:
                return str(path.relative_to(self.project_path))
            except ValueError:
                pass
        return str(path)

    def layer(self, key: str) -> int:
        """How specific the place that set `key` is: 0 --params, then the run environment,
        then base (len(layers) + 1 where nothing set it)."""
        if key in self.runtime:
            return 0
        return next((i + 1 for i, layer in enumerate(self.layers) if key in layer),
                    len(self.layers) + 1)

    def __call__(self, key: str) -> str | None:
        at = self.layer(key)
        if at == 0:
            return "--params"
        return self._shown(self.layers[at - 1][key]) if at <= len(self.layers) else None

    def origin(self, key: str) -> str:
        """' given with --params', ' in <file>' or '': where `key` was set, for a message."""
        where = self(key)
        return " given with --params" if where == "--params" else (
            f" in {where}" if where else "")


def unknown_sections(raw_params: Mapping[str, Any], conf_root: Path,
                     sources: ParameterSources) -> list[str]:
    """Top-level keys that are neither a section nor a runtime parameter some file reads."""
    allowed = set(SECTIONS) | runtime_param_names(conf_root)
    problems = []
    for key, value in raw_params.items():
        if key in allowed:
            continue
        # Name the leaves a user typed (`planing.batch_size`), not only their parent.
        leaves = [k for k, v in flatten_keys({key: value}).items()
                  if not (isinstance(v, Mapping) and v)]
        for leaf in leaves:
            head, _, rest = leaf.partition(".")
            match = difflib.get_close_matches(head, sorted(allowed), n=1)
            hint = f" (did you mean '{match[0]}{'.' + rest if rest else ''}'?)" if match else ""
            problems.append(f"unknown parameter '{leaf}'{sources.origin(leaf)}{hint}")
    return problems


def plugin_import_problems(training: Any, sources: ParameterSources) -> list[str]:
    """Every plugin import path (model, data, loss) that does not resolve to a callable."""
    from flops_fit.plugins.imports import PluginError, resolve_callable

    problems = []
    for key, path in (("training.model.factory", training.model.factory),
                      ("training.data.factory", training.data.factory),
                      ("training.loss", training.loss)):
        if path is None:
            continue
        try:
            resolve_callable(path, key)
        except PluginError as exc:
            where = sources(key)
            origin = " (given with --params)" if where == "--params" else (
                f" (in {where})" if where else "")
            problems.append(f"{exc}{origin}")
    return problems


def _set_over(sources: ParameterSources, key: str, selector: str) -> bool:
    """Was `key` set where it overrides the mode `selector` picks: in a more specific place,
    or beside it with --params? A file may keep both modes' keys (base does; an environment
    that switches `compute_budgets.values` on keeps its min, max and num for when it is off);
    a command line that gives both asked for something it will not get."""
    at, mode = sources.layer(key), sources.layer(selector)
    return at < mode or at == mode == 0


def unread_keys(planning: Any, sources: ParameterSources) -> tuple[list[str], list[str]]:
    """(errors, warnings): keys that the chosen planning modes do not read (`unread_keys` of
    `PlanningConfig`), set to something other than their default where it overrides the key that
    picks the mode (`_set_over`). base restates every default beside the mode that ignores it,
    and a mode picked in a more specific place overrides what a less specific one set for the
    other mode: neither is the user's mistake. A key a later stage still reads is a warning."""
    errors: list[str] = []
    warnings: list[str] = []
    defaults = type(planning)()
    for unread in planning.unread_keys():
        selector = f"planning.{unread.selector}"
        for name in unread.keys:
            key = f"planning.{name}"
            value = planning.value_at(name)
            if value == defaults.value_at(name) or not _set_over(sources, key, selector):
                continue
            where = f"{key} ({value:g}){sources.origin(key)}"
            mode = f"{selector} is {unread.state}{sources.origin(selector)}"
            if unread.read_by is None:
                errors.append(f"{where} is not used while {mode}: {unread.hint}")
            else:
                warnings.append(f"{where} does not change the planned sizes while {mode}: "
                                f"only {unread.read_by}. To plan with it, {unread.hint}")
    return errors, warnings


def cross_section_problems(validated: Mapping[str, Any], sources: ParameterSources) -> list[str]:
    """Keys that are valid alone but not together: a value the chosen mode does not read (see
    `unread_keys`), and a trunk design without the schedule it needs."""
    problems = []
    planning = validated.get("planning")
    if planning is not None:
        errors, warnings = unread_keys(planning, sources)
        problems.extend(errors)
        for warning in warnings:
            if warning not in _WARNED:
                _WARNED.add(warning)
                log.warning("%s", warning)
    torch = validated.get("torch_backend")
    if planning is not None and torch is not None and planning.design == "trunks":
        from flops_fit.planning.trunks import TrunkPlanError, check_schedule

        try:
            check_schedule(torch.schedule)
        except TrunkPlanError as exc:
            set_in = ", ".join(f"{k}{sources.origin(k)}" for k in (
                "planning.design", "torch_backend.schedule.kind") if sources(k))
            problems.append(str(exc).replace("params:", "")
                            + (f" (set: {set_in})" if set_in else ""))
    return problems


def check_parameters(raw_params: Mapping[str, Any], conf_root: Path, base_env: str,
                     run_env: str | None, runtime_params: Mapping[str, Any] | None,
                     project_path: Path | None = None) -> None:
    """Raise one ParameterError listing every bad parameter, each with where it was set."""
    sources = ParameterSources(conf_root, base_env, run_env, runtime_params, project_path)
    problems = unknown_sections(raw_params, conf_root, sources)
    problems.extend(f"params:{name}{sources.origin(name)} is empty: give it keys, or remove "
                    "it" for name in SECTIONS if name in raw_params and raw_params[name] is None)
    validated = {}
    for name, model in SECTIONS.items():
        try:
            validated[name] = model.from_params(raw_params.get(name), origin=sources)
        except ParameterError as exc:
            problems.extend(str(exc).splitlines())
    if "training" in validated:
        problems.extend(plugin_import_problems(validated["training"], sources))
    problems.extend(cross_section_problems(validated, sources))
    if problems:
        raise ParameterError(
            "invalid parameters, nothing was run:\n" + "\n".join(f"- {p}" for p in problems)
            + f"\nEvery parameter and its default is declared in {conf_root / base_env}/"
            "parameters*.yml; the guides in docs/guides/ explain each section."
        )
