"""The typed-parameter base: one strict Pydantic model per `params:` section.

Kedro 1.7 validates and instantiates a node's `params:<section>` argument annotated with one of
these models before any node runs (`kedro.validation`). A node or a notebook that is handed a
plain mapping calls `Model.from_params(mapping)`, which validates the same way and raises a
`ParameterError` whose every line names the full key, e.g.

    params:planning.batch_size: Input should be greater than 0, got -4
    unknown parameter 'planning.model_sizes.nmu' (did you mean 'planning.model_sizes.num'?)

`origin` (supplied by the project hook) adds where a key came from: a conf file or `--params`.
"""

from __future__ import annotations

import difflib
from collections.abc import Callable, Mapping
from typing import Annotated, Any, ClassVar, TypeVar

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, ValidationError

M = TypeVar("M", bound="Section")


class ParameterError(ValueError):
    """A parameter value or key is invalid; every line of the message names `params:<key>`."""


def _reject_bool(value: Any) -> Any:
    # YAML `true` must not pass for a number (Pydantic's lax mode would read it as 1).
    if isinstance(value, bool):
        raise ValueError("must be a number, not true/false")
    return value


#: A finite number (the models forbid NaN and infinity) that is not a boolean.
Number = Annotated[float, BeforeValidator(_reject_bool)]
PositiveNumber = Annotated[Number, Field(gt=0)]
NonNegativeNumber = Annotated[Number, Field(ge=0)]
Fraction = Annotated[Number, Field(ge=0, le=1)]
Integer = Annotated[int, BeforeValidator(_reject_bool)]
PositiveInt = Annotated[Integer, Field(ge=1)]
NonNegativeInt = Annotated[Integer, Field(ge=0)]


class Section(BaseModel):
    """A parameter section: unknown keys are errors, values are immutable once validated."""

    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)

    #: the dotted `params:` key this model validates, e.g. "training.dask"
    SECTION: ClassVar[str] = ""

    @classmethod
    def from_params(cls: type[M], params: Any = None, origin: Origin | None = None) -> M:
        """`params` validated into this model (an instance passes through unchanged)."""
        if isinstance(params, cls):
            return params
        if isinstance(params, BaseModel):
            params = params.model_dump()
        if params is None:
            params = {}
        try:
            return cls.model_validate(params)
        except ValidationError as exc:
            raise ParameterError(describe_errors(cls, exc, origin)) from None


#: dotted key -> where it was set ("conf/mock/parameters_training.yml", "--params"), or None
Origin = Callable[[str], "str | None"]


def _field_names(model: type[BaseModel] | None, path: tuple[Any, ...]) -> list[str]:
    """The field names of the (nested) model that holds `path[-1]`."""
    for part in path[:-1]:
        if model is None:
            return []
        info = model.model_fields.get(str(part))
        model = _model_of(info.annotation) if info is not None else None
    return list(model.model_fields) if model is not None else []


def _model_of(annotation: Any) -> type[BaseModel] | None:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    for arg in getattr(annotation, "__args__", ()) or ():
        found = _model_of(arg)
        if found is not None:
            return found
    return None


def _shown(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


_TYPE_TAGS = {"int", "float", "str", "bool", "none", "list", "tuple", "dict", "decimal"}


def _is_tag(part: Any) -> bool:
    """Pydantic's names for union members and validators ("literal['auto']", "[key]", "int")."""
    return isinstance(part, str) and (not part.isidentifier() or part in _TYPE_TAGS)


def describe_errors(model: type[Section], exc: ValidationError, origin: Origin | None) -> str:
    """One line per problem key, each naming the full dotted key (and its origin when known)."""
    problems: dict[str, list[str]] = {}
    errors = exc.errors(include_url=False)
    for err in errors:
        loc = tuple(p for p in err["loc"] if not _is_tag(p))
        if err["type"] == "too_short" and any(
            len(other["loc"]) > len(err["loc"]) and other["loc"][: len(err["loc"])] == err["loc"]
            for other in errors
        ):
            continue  # a list emptied by its own items' errors: those errors say it
        key = ".".join(str(p) for p in (model.SECTION, *loc) if str(p))
        where = origin(key) if origin else None
        source = f" in {where}" if where and where != "--params" else ""
        source += " given with --params" if where == "--params" else ""
        if err["type"] == "extra_forbidden":
            siblings = _field_names(model, loc)
            match = difflib.get_close_matches(str(loc[-1]), siblings, n=1) if loc else []
            parent = key.rsplit(".", 1)[0]
            hint = f" (did you mean '{parent}.{match[0]}'?)" if match else (
                f" (known keys: {', '.join(siblings)})" if siblings else "")
            problems.setdefault(f"unknown parameter '{key}'{source}{hint}", [])
            continue
        msg = str(err["msg"])
        for noise in ("Value error, ", "Assertion failed, "):
            msg = msg.removeprefix(noise)
        value = err.get("input")
        shown = "" if err["type"] == "missing" or isinstance(value, Mapping) \
            else f", got {_shown(value)}"
        line = f"params:{key}: {{}}{shown}{source}"
        if msg not in problems.setdefault(line, []):
            problems[line].append(msg)
    # A union (e.g. `auto` or a positive integer) fails once per member: one line, "or"-joined.
    lines = [line.format(" or ".join(msgs)) if msgs else line for line, msgs in problems.items()]
    return "\n".join(lines) if lines else str(exc)
