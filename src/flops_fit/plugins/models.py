"""A model plugin: a factory named by import path, sized by one integer keyword argument.

`factory(**kwargs, <size_param>=value)` returns a `torch.nn.Module`. Its size N is the module's
`num_params()` when it defines one, else every parameter except those of `nn.Embedding` /
`nn.EmbeddingBag` submodules: embedding tables are lookups, not matmuls, and do not scale with
compute like the rest (Kaplan et al. 2020; Chinchilla counts N the same way).

Planning sizes a model without memory: it calls the factory under `torch.device("meta")` (no
weights are allocated), counts parameters, and searches `size_param` over
`params:training.model.size` for the value whose N is nearest each target in log space. The
built-in GPT keeps its own shape ladder (`flops_fit.planning.shapes`), sized by
`params:planning.model_family`.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass, field
from typing import Any

from flops_fit.parameters.plugins import ModelPluginParams
from flops_fit.plugins.imports import plugin_error, resolve_callable

log = logging.getLogger(__name__)

BUILTIN_GPT = "flops_fit.nn.model:make_gpt"
KEY = "training.model"


def count_params(model: Any) -> int:
    """N of the plugin contract (see the module docstring)."""
    from torch import nn

    hook = getattr(model, "num_params", None)
    if callable(hook):
        return int(hook())
    skip = {id(p) for m in model.modules() if isinstance(m, (nn.Embedding, nn.EmbeddingBag))
            for p in m.parameters(recurse=False)}
    return int(sum(p.numel() for p in model.parameters() if id(p) not in skip))


@dataclass
class ModelPlugin:
    """Picklable: only the import path and plain kwargs travel; the factory is resolved where it
    is used (in each Dask worker)."""

    factory_path: str
    size_param: str | None = None  # None: the built-in GPT, sized by its shape ladder
    kwargs: dict[str, Any] = field(default_factory=dict)  # fixed keyword arguments
    size_min: int = 1
    size_max: int = 65536
    size_multiple: int = 1
    extra: dict[str, Any] = field(default_factory=dict)  # trainer settings (the GPT's u-μP)
    _sizes: dict[int, int] = field(default_factory=dict, repr=False, compare=False)

    @classmethod
    def from_params(cls, params: ModelPluginParams, umup: Any = None) -> ModelPlugin:
        if params.builtin:
            extra = {"umup": umup.model_dump() if hasattr(umup, "model_dump") else umup}
            return cls(BUILTIN_GPT, extra={} if umup is None else extra)
        return cls(params.factory, params.size_param, dict(params.kwargs), params.size.min,
                   params.size.max, params.size.multiple)

    @property
    def builtin(self) -> bool:
        return self.size_param is None

    @property
    def key(self) -> str:
        return f"{KEY}.factory"

    def factory(self):
        return resolve_callable(self.factory_path, self.key)

    def build(self, model_kwargs: dict[str, Any], device: Any = None) -> Any:
        """The module for one planned size (`model_kwargs` as the plan recorded them)."""
        import torch

        factory = self.factory()
        call = {**model_kwargs, **self.extra}
        try:
            if device is None:
                model = factory(**call)
            else:
                with torch.device(device):
                    model = factory(**call)
        except TypeError as exc:
            if self.size_param and f"'{self.size_param}'" in str(exc):
                raise plugin_error(f"{KEY}.size_param", self.factory_path,
                                   f"the factory does not take {self.size_param!r}: {exc}") from exc
            unknown = [k for k in self.kwargs if f"unexpected keyword argument '{k}'" in str(exc)]
            if unknown:
                raise plugin_error(f"{KEY}.kwargs", self.factory_path,
                                   f"the factory does not take {unknown[0]!r}: {exc}") from exc
            raise plugin_error(self.key, self.factory_path,
                               f"calling it with {_shown(model_kwargs)} raised "
                               f"TypeError: {exc}") from exc
        except Exception as exc:
            raise plugin_error(self.key, self.factory_path,
                               f"calling it with {_shown(model_kwargs)} raised "
                               f"{type(exc).__name__}: {exc}") from exc
        if not isinstance(model, torch.nn.Module):
            raise plugin_error(self.key, self.factory_path,
                               f"returned a {type(model).__name__} for {_shown(model_kwargs)}, "
                               "not a torch.nn.Module")
        return model

    def kwargs_for(self, value: int) -> dict[str, Any]:
        return {**self.kwargs, self.size_param: int(value)}

    def size_of(self, value: int) -> int:
        """N at `size_param = value`, counted on the meta device (cached)."""
        if value not in self._sizes:
            n = count_params(self.build(self.kwargs_for(value), device="meta"))
            if n <= 0:
                raise plugin_error(self.key, self.factory_path,
                                   f"the model for {self.size_param}={value} has N = {n} "
                                   "parameters to count")
            self._sizes[value] = n
        return self._sizes[value]

    def values(self) -> range:
        m = self.size_multiple
        first = -(-self.size_min // m) * m
        return range(first, self.size_max + 1, m)

    def check_monotone(self) -> None:
        """N must grow with the size parameter: probed at the ends and a few points between."""
        values = self.values()
        picks = sorted({values[round(i * (len(values) - 1) / 4)] for i in range(5)})
        sizes = [self.size_of(v) for v in picks]
        if len(set(sizes)) == 1:
            raise plugin_error(
                f"{KEY}.size_param", self.factory_path,
                f"changing {self.size_param} from {picks[0]} to {picks[-1]} does not change N "
                f"(always {sizes[0]}): it is not the argument that sets the model's size")
        for i in range(1, len(picks)):
            (v0, n0), (v1, n1) = (picks[i - 1], sizes[i - 1]), (picks[i], sizes[i])
            if n1 <= n0:
                raise plugin_error(
                    f"{KEY}.size_param", self.factory_path,
                    f"N does not increase with {self.size_param}: {self.size_param}={v0} gives "
                    f"N={n0} but {self.size_param}={v1} gives N={n1}; it must make a larger "
                    "model for a larger value")

    def nearest(self, target: float) -> tuple[int, int]:
        """(value, N) with N nearest `target` in log space, by bisection over the values."""
        values = self.values()
        lo, hi = 0, len(values) - 1
        while lo < hi:  # smallest index with N >= target
            mid = (lo + hi) // 2
            if self.size_of(values[mid]) < target:
                lo = mid + 1
            else:
                hi = mid
        best = values[lo]
        if lo > 0:
            below = values[lo - 1]
            n_hi, n_lo = self.size_of(best), self.size_of(below)
            if math.log(target) - math.log(n_lo) <= math.log(n_hi) - math.log(target):
                best = below
        n = self.size_of(best)
        if target < n / 2 or target > 2 * n:  # the size range ends before the target
            log.info("target N=%.3g is outside %s's sizes; using %s=%d (N=%d)",
                     target, self.factory_path, self.size_param, best, n)
        return best, n


def _shown(kwargs: dict[str, Any]) -> str:
    text = ", ".join(f"{k}={v!r}" for k, v in kwargs.items())
    return text if len(text) < 200 else text[:200] + "..."


__all__ = ["BUILTIN_GPT", "ModelPlugin", "count_params"]
