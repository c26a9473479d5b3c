"""`params:planning`: the IsoFLOP sweep (budgets, sizes per budget, the model family, D's rounding).

Defaults equal `conf/base/parameters_planning.yml` (tests/parameters/test_defaults.py checks it).
"""

from __future__ import annotations

import functools
import math
from collections.abc import Sequence
from typing import Any, Literal, NamedTuple

import numpy as np
from pydantic import Field, field_validator, model_validator

from flops_fit.parameters.base import (
    Integer,
    NonNegativeInt,
    NonNegativeNumber,
    Number,
    PositiveInt,
    PositiveNumber,
    Section,
)
from flops_fit.planning.flops import PLANNING_FORMULAS, readable_budget
from flops_fit.planning.shapes import ShapeFamily

MIN_SIZES_PER_BUDGET = 3  # an IsoFLOP profile needs three points to locate a minimum


class UnreadKeys(NamedTuple):
    """Keys (under `planning.`) that the mode `selector` picks leaves unread."""

    selector: str  # the key whose value picks the mode
    state: str  # its value, as a message shows it
    keys: tuple[str, ...]
    hint: str  # how to make the keys count
    read_by: str | None = None  # who still reads them ("... read it"), or None: nothing does


class ComputeBudgets(Section):
    SECTION = "planning.compute_budgets"

    values: tuple[PositiveNumber, ...] | None = Field((1.0e11, 3.0e11, 1.0e12), min_length=1)
    min: PositiveNumber = 1.0e11
    max: PositiveNumber = 1.0e12
    num: PositiveInt = 3

    @model_validator(mode="after")
    def _consistent(self) -> ComputeBudgets:
        if self.values is not None:
            if len(set(self.values)) != len(self.values):
                raise ValueError("values has duplicate budgets")
            return self
        if self.min > self.max:
            raise ValueError(f"min ({self.min:g}) is above max ({self.max:g})")
        if (self.num == 1) != (self.min == self.max):
            raise ValueError("use num: 1 with min == max for a single budget")
        return self

    def budgets(self) -> tuple[float, ...]:
        """The explicit `values` sorted, or `num` log-spaced budgets between `min` and `max`."""
        if self.values is not None:
            return tuple(sorted(float(v) for v in self.values))
        if self.num == 1:
            return (float(self.min),)
        # Three significant figures keep budget labels (and experiment IDs) readable.
        return tuple(readable_budget(x) for x in np.geomspace(self.min, self.max, self.num))


class PowerLawCentre(Section):
    SECTION = "planning.model_sizes.power_law"

    coefficient: PositiveNumber = 1.0
    exponent: PositiveNumber = 0.5


class FixedRange(Section):
    SECTION = "planning.model_sizes.fixed_range"

    min: PositiveNumber = 1.0e3
    max: PositiveNumber = 8.0e5

    @model_validator(mode="after")
    def _ordered(self) -> FixedRange:
        if self.min >= self.max:
            raise ValueError(f"min ({self.min:g}) must be below max ({self.max:g})")
        return self


class ModelSizes(Section):
    SECTION = "planning.model_sizes"

    num: Integer = 7
    centre: Literal["power_law", "fixed_range"] = "fixed_range"
    power_law: PowerLawCentre = PowerLawCentre()
    span_factor: Number = Field(8.0, gt=1)
    fixed_range: FixedRange = FixedRange()

    @field_validator("num")
    @classmethod
    def _enough(cls, num: int) -> int:
        if num < MIN_SIZES_PER_BUDGET:
            raise ValueError(
                f"an IsoFLOP profile needs at least {MIN_SIZES_PER_BUDGET} sizes per budget "
                "to locate a minimum"
            )
        return num

    def grid(self) -> tuple[float, float]:
        """(anchor, ratio) of the log grid of sizes the targets lie on: a trunk design snaps
        every budget's and round's targets to it, so that sizes recur."""
        if self.centre == "power_law":
            return 1.0, self.span_factor ** (2.0 / (self.num - 1))
        return self.fixed_range.min, (self.fixed_range.max / self.fixed_range.min) ** (
            1.0 / (self.num - 1))

    def targets(self, budget: float) -> np.ndarray:
        """Log-spaced target sizes centred on the prior N_opt(C), or spanning the fixed range."""
        if self.centre == "power_law":
            centre = self.power_law.coefficient * budget**self.power_law.exponent
            return np.geomspace(centre / self.span_factor, centre * self.span_factor, self.num)
        return np.geomspace(self.fixed_range.min, self.fixed_range.max, self.num)


class PlanningConfig(Section):
    SECTION = "planning"

    compute_budgets: ComputeBudgets = ComputeBudgets()
    model_sizes: ModelSizes = ModelSizes()
    model_family: ShapeFamily = ShapeFamily()
    batch_size: PositiveInt = 16
    flops_formula: Literal[PLANNING_FORMULAS] = "auto"  # auto: full (GPT) or measured (plugin)
    min_tokens_per_param: NonNegativeNumber = 0.5
    max_tokens_per_param: PositiveNumber | None = 5000.0
    max_epochs: PositiveNumber | None = 4.0
    # points: every (N, D) its own run; trunks: one constant-rate run per size, a cooldown
    # branch per budget (flops_fit.planning.trunks; needs torch_backend.schedule.kind: wsd)
    design: Literal["points", "trunks"] = "points"
    timing_probe_steps: NonNegativeInt = 3  # timed steps per probed model; 0: use throughput
    throughput_flops_per_second: PositiveNumber = 3.5e10  # per worker, without a probe

    @model_validator(mode="after")
    def _tokens_per_param_range(self) -> PlanningConfig:
        if self.min_tokens_per_param >= self.max_tpp:
            raise ValueError(
                f"min_tokens_per_param ({self.min_tokens_per_param:g}) must be below "
                f"max_tokens_per_param ({self.max_tpp:g})"
            )
        return self

    def targets(self, budget: float, targets: Sequence[float] | None = None) -> list[float]:
        """The target sizes of a budget (default: `model_sizes`'), on the shared grid of sizes
        under the trunk design."""
        if targets is None:
            targets = [float(t) for t in self.model_sizes.targets(budget)]
        if self.design != "trunks":
            return [float(t) for t in targets]
        from flops_fit.planning.trunks import snap_targets

        return snap_targets(targets, *self.model_sizes.grid())

    @property
    def max_tpp(self) -> float:
        return math.inf if self.max_tokens_per_param is None else self.max_tokens_per_param

    def unread_keys(self) -> tuple[UnreadKeys, ...]:
        """What the chosen modes do not read: explicit budgets leave min, max and num unread,
        each centre of the sizes the other centre's keys. Under `fixed_range` a study's later
        rounds still read `span_factor` (`flops_fit.study.design`), the planned sizes do not."""
        unread = []
        if self.compute_budgets.values is not None:
            shown = ", ".join(f"{v:g}" for v in self.compute_budgets.values)
            unread.append(UnreadKeys(
                "compute_budgets.values", f"set ({shown})",
                ("compute_budgets.min", "compute_budgets.max", "compute_budgets.num"),
                "set planning.compute_budgets.values=null to plan budgets from min, max and num"))
        if self.model_sizes.centre == "fixed_range":
            hint = ("set planning.model_sizes.centre=power_law to centre each budget's sizes on "
                    "power_law's N_opt(C), from centre/span_factor to centre*span_factor")
            unread.append(UnreadKeys(
                "model_sizes.centre", "fixed_range",
                ("model_sizes.power_law.coefficient", "model_sizes.power_law.exponent"), hint))
            unread.append(UnreadKeys(
                "model_sizes.centre", "fixed_range", ("model_sizes.span_factor",), hint,
                read_by="a study's later rounds read it (kedro study spans them span_factor "
                        "each way of a fitted optimum)"))
        else:
            unread.append(UnreadKeys(
                "model_sizes.centre", "power_law",
                ("model_sizes.fixed_range.min", "model_sizes.fixed_range.max"),
                "set planning.model_sizes.centre=fixed_range to plan every budget's sizes over "
                "fixed_range"))
        return tuple(unread)

    def value_at(self, key: str) -> Any:
        """The value of a dotted key under `planning.` (`model_sizes.power_law.exponent`)."""
        return functools.reduce(getattr, key.split("."), self)

    def with_budgets(self, budgets: list[float] | tuple[float, ...]) -> PlanningConfig:
        """The same plan over explicit budgets (the planning pipeline passes them between nodes)."""
        return self.model_copy(
            update={"compute_budgets": ComputeBudgets(values=tuple(float(b) for b in budgets))}
        )
