"""Resolve `package.module:attribute` import paths named in parameters, with errors that say
which parameter named them and what went wrong (the module, the attribute, or what it is)."""

from __future__ import annotations

import difflib
import importlib
from typing import Any


class PluginError(ValueError):
    """A plugin (model, data or loss) named in parameters does not meet its contract.

    The message names the parameter key, the import path and what was wrong.
    """


def plugin_error(key: str, path: str | None, problem: str) -> PluginError:
    named = f" ({path})" if path else ""
    return PluginError(f"params:{key}{named}: {problem}")


def resolve_import(path: str, key: str) -> Any:
    """The object at `package.module:attribute`; PluginError naming `key` if it is not there."""
    module_name, sep, attribute = str(path).partition(":")
    if not sep or not module_name or not attribute:
        raise plugin_error(key, path, "must be an import path 'package.module:attribute'")
    try:
        obj: Any = importlib.import_module(module_name)
    except ImportError as exc:
        raise plugin_error(
            key, path, f"cannot import module {module_name!r}: {exc}. Is the package installed "
            "in this environment (pip install -e <your package>) or on PYTHONPATH?"
        ) from exc
    except Exception as exc:  # the user's module raised while being imported
        raise plugin_error(
            key, path, f"importing module {module_name!r} raised {type(exc).__name__}: {exc}"
        ) from exc
    for part in attribute.split("."):
        if not hasattr(obj, part):
            public = [n for n in dir(obj) if not n.startswith("_")]
            close = difflib.get_close_matches(part, public, n=3)
            raise plugin_error(
                key, path, f"{module_name!r} has no attribute {attribute!r}"
                + (f" (did you mean: {', '.join(close)}?)" if close else "")
            )
        obj = getattr(obj, part)
    return obj


def resolve_callable(path: str, key: str) -> Any:
    obj = resolve_import(path, key)
    if not callable(obj):
        raise plugin_error(key, path, f"is a {type(obj).__name__}, not a callable")
    return obj
