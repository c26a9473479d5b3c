"""`params:training.model`, `training.data` and `training.loss`: a user's model, data and loss,
named by import path (`package.module:attribute`), so nobody edits flops-fit to bring them.

Only the *form* of each entry is checked here; `flops_fit.plugins.resolve` imports them before
any node runs and `flops_fit.plugins.contracts` probes them on a real batch when planning and
training start. Defaults (every entry null) are the built-in u-μP GPT on the byte corpus with
next-token cross entropy.
"""

from __future__ import annotations

import re
from typing import Annotated, Any

from pydantic import AfterValidator, Field, field_validator, model_validator

from flops_fit.parameters.base import PositiveInt, Section

#: `package.module:attribute` (the attribute may be dotted: `module:Class.method`)
IMPORT_PATH = re.compile(r"^[A-Za-z_][\w]*(\.[A-Za-z_]\w*)*:[A-Za-z_]\w*(\.[A-Za-z_]\w*)*$")
_IDENTIFIER = re.compile(r"^[A-Za-z_]\w*$")


def check_import_path(value: str | None) -> str | None:
    if value is not None and not IMPORT_PATH.match(value.strip()):
        raise ValueError("must be an import path 'package.module:attribute' (or null)")
    return value.strip() if value is not None else None


#: a plugin's import path, or null (the built-in one)
ImportPath = Annotated[str | None, AfterValidator(check_import_path)]


class SizeSearch(Section):
    """The values `size_param` may take; planning searches them for each target N."""

    SECTION = "training.model.size"

    min: PositiveInt = 1
    max: PositiveInt = 65536
    multiple: PositiveInt = 1  # only multiples of this (e.g. 8 for widths that tile well)

    @model_validator(mode="after")
    def _range(self) -> SizeSearch:
        if self.min > self.max:
            raise ValueError(f"min ({self.min}) is above max ({self.max})")
        if (self.max // self.multiple) * self.multiple < self.min:
            raise ValueError(
                f"no multiple of {self.multiple} lies between min {self.min} and max {self.max}"
            )
        return self


class ModelPluginParams(Section):
    """`factory(**kwargs, <size_param>=value)` returns the torch.nn.Module of one planned size.

    factory null: the built-in u-μP GPT, sized by its own shape ladder
    (`params:planning.model_family`), with `kwargs` its u-μP settings.
    """

    SECTION = "training.model"

    factory: ImportPath = None
    size_param: str | None = None  # the integer argument planning varies (width, d_model, ...)
    kwargs: dict[str, Any] = {}  # fixed keyword arguments of every call
    size: SizeSearch = SizeSearch()

    @field_validator("size_param")
    @classmethod
    def _identifier(cls, value: str | None) -> str | None:
        if value is not None and not _IDENTIFIER.match(value):
            raise ValueError("must be the name of one keyword argument of the factory")
        return value

    @model_validator(mode="after")
    def _size_param_given(self) -> ModelPluginParams:
        if self.factory is not None and self.size_param is None:
            raise ValueError(
                "factory is set but size_param is null: name the factory argument planning "
                "varies (e.g. size_param: width)"
            )
        if self.factory is None and self.size_param is not None:
            raise ValueError(
                "size_param is set but factory is null (the built-in GPT is sized by "
                "params:planning.model_family); give factory too"
            )
        if self.size_param is not None and self.size_param in self.kwargs:
            raise ValueError(
                f"kwargs sets {self.size_param!r}, which is size_param: planning chooses it"
            )
        return self

    @property
    def builtin(self) -> bool:
        return self.factory is None


class DataPluginParams(Section):
    """Where training batches and the held-out set come from.

    factory null: the `training_data` catalog entry (the Kedro way: a dataset whose load returns
    a DataSource, a {"train": {...}, "heldout": {...}} mapping of arrays, or text for the
    built-in byte corpus). A factory is called as `factory(**kwargs)` and returns a DataSource
    or such a mapping; the catalog entry is then not read.
    """

    SECTION = "training.data"

    factory: ImportPath = None
    kwargs: dict[str, Any] = {}
    unit: str | None = Field(None, min_length=1)  # what D counts for an arrays mapping; null: examples
