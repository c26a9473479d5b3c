"""From a target N to a concrete model of the study, and its training FLOPs per unit of D.

Two sizers share one interface: the built-in GPT's shape ladder (`flops_fit.planning.shapes`, exact N
from the shape) and a plugin factory searched over its size parameter on the meta device
(`ModelPlugin.nearest`). `flops_per_unit` applies `params:planning.flops_formula`:
  full      the GPT's analytic count (`flops_fit.planning.flops`), every matmul FLOP;
  6nd       C = 6·N·D;
  measured  `torch.utils.flop_counter` over one forward + backward of a probe example on the
            meta device (`flops_fit.nn.flop_count`), divided by the units in that example.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from flops_fit.planning.flops import FLOPS_PER_PARAM_TOKEN, training_flops_per_token
from flops_fit.planning.shapes import (
    SHAPE_FIELDS,
    ModelShape,
    ShapeFamily,
    embedding_params,
    non_embedding_params,
    shape_for_target,
    total_params,
)
from flops_fit.plugins.imports import PluginError, plugin_error
from flops_fit.plugins.models import ModelPlugin


@dataclass(frozen=True)
class PlannedModel:
    """One concrete model: the kwargs the plan records, its exact N and how runs are named."""

    kwargs: dict[str, Any] = field(hash=False)
    model_size: int
    label: str  # in the experiment_id: "d64-L2" (GPT) or "width32" (a plugin)
    fields: dict[str, Any] = field(hash=False)  # extra plan-record fields
    identity: str  # what makes two targets "the same model"


class GPTLadder:
    """The built-in GPT: exact shapes from `params:planning.model_family`."""

    def __init__(self, family: ShapeFamily, plugin: ModelPlugin):
        self.family, self.plugin = family, plugin

    def model_for(self, target: float) -> PlannedModel:
        shape = shape_for_target(float(target), self.family)
        return PlannedModel(
            kwargs=shape.to_dict(),
            model_size=non_embedding_params(shape),
            label=f"d{shape.d_model}-L{shape.num_layers}",
            fields={"size_param": None, "size_value": None, **shape.to_dict(),
                    "embedding_params": embedding_params(shape),
                    "total_params": total_params(shape)},
            identity=repr(shape),
        )

    def analytic_flops(self, model: PlannedModel, formula: str) -> float:
        return float(training_flops_per_token(ModelShape(**model.kwargs), formula))


class FactorySizes:
    """A plugin factory, searched over its size parameter."""

    def __init__(self, plugin: ModelPlugin):
        self.plugin = plugin
        plugin.check_monotone()

    def model_for(self, target: float) -> PlannedModel:
        value, n = self.plugin.nearest(float(target))
        kwargs = self.plugin.kwargs_for(value)
        total = _total_params(self.plugin, kwargs)
        return PlannedModel(
            kwargs=kwargs, model_size=n, label=f"{self.plugin.size_param}{value}",
            fields={"size_param": self.plugin.size_param, "size_value": value,
                    **dict.fromkeys(SHAPE_FIELDS), "embedding_params": total - n,
                    "total_params": total},
            identity=f"{self.plugin.size_param}={value}",
        )

    def analytic_flops(self, model: PlannedModel, formula: str) -> float:
        raise plugin_error(
            "planning.flops_formula", None,
            f"'{formula}' is the built-in GPT's analytic count; a plugin model "
            f"({self.plugin.factory_path}) needs 'measured' (or 'auto') or '6nd'")


def _total_params(plugin: ModelPlugin, kwargs: dict[str, Any]) -> int:
    model = plugin.build(kwargs, device="meta")
    return int(sum(p.numel() for p in model.parameters()))


def sizer_for(plugin: ModelPlugin, family: ShapeFamily):
    return GPTLadder(family, plugin) if plugin.builtin else FactorySizes(plugin)


def resolve_formula(formula: str, builtin: bool) -> str:
    """`auto`: the GPT's analytic `full` count (`builtin`), `measured` for a plugin model."""
    if formula != "auto":
        return formula
    return "full" if builtin else "measured"


class FlopsPerUnit:
    """Training FLOPs per unit of D for each planned model, by the study's formula."""

    def __init__(self, sizer, formula: str, probe: Any = None, loss_fn: Any = None,
                 units_per_example: int = 1):
        self.sizer, self.formula = sizer, formula
        self.probe, self.loss_fn, self.units_per_example = probe, loss_fn, units_per_example
        self._measured: dict[str, float] = {}

    def __call__(self, model: PlannedModel) -> float:
        if self.formula == "6nd":
            return float(FLOPS_PER_PARAM_TOKEN * model.model_size)
        if self.formula == "measured":
            return self.measured(model)
        return self.sizer.analytic_flops(model, self.formula)

    def measured(self, model: PlannedModel) -> float:
        if model.identity not in self._measured:
            from flops_fit.nn.flop_count import training_flops_per_example

            plugin = self.sizer.plugin
            try:
                per_example = training_flops_per_example(
                    lambda: plugin.build(model.kwargs), self.probe, self.loss_fn)
            except PluginError:
                raise
            except Exception as exc:  # the counter runs on meta tensors: say so, and where
                raise plugin_error(
                    "planning.flops_formula", "measured",
                    f"counting the FLOPs of {plugin.factory_path} with {model.identity} on the "
                    f"meta device failed: {type(exc).__name__}: {exc}. Use flops_formula: 6nd "
                    "if the model cannot run on meta tensors") from exc
            self._measured[model.identity] = per_example / self.units_per_example
        return self._measured[model.identity]
