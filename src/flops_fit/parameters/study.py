"""`params:study`: a study that steers itself (`kedro study`, `--pipelines next_round`,
`--pipelines validation`): the question (N_opt at `target_budget`), the precision that answers
it, the compute it may spend, and the validation run that scores the law.

Defaults equal `conf/base/parameters_study.yml` (tests/parameters/test_defaults.py checks it).
How each value enters a round: docs/guides/study.md.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field, StrictBool, model_validator

from flops_fit.parameters.base import Fraction, Number, PositiveInt, PositiveNumber, Section

#: the validation runs at one budget, as role -> N / N_opt: the optimum, and with
#: `neighbours` also half and double it
VALIDATION_ROLES: dict[str, float] = {"optimum": 1.0, "half": 0.5, "double": 2.0}


class ValidationParams(Section):
    SECTION = "study.validation"

    # `kedro study` ends with the validation run (the validation pipeline runs it alone)
    enabled: StrictBool = True
    # the validation budget in FLOPs; null: min_factor x the largest fitted budget (the
    # cheapest out-of-sample check); leftover: what study.max_compute leaves after the rounds,
    # at least that and at most study.target_budget
    budget: PositiveNumber | Literal["leftover"] | None = None
    min_factor: Number = Field(2.0, ge=1)
    neighbours: StrictBool = False  # also train N_opt/2 and 2 N_opt at the same budget (3 runs)

    @property
    def roles(self) -> dict[str, float]:
        """The runs it trains (`VALIDATION_ROLES`, or the optimum alone)."""
        return dict(VALIDATION_ROLES) if self.neighbours else {"optimum": 1.0}


class StudyConfig(Section):
    SECTION = "study"

    target_budget: PositiveNumber = 3.0e12  # C*: the budget whose N_opt the study must answer
    precision: Number = Field(2.0, gt=1)  # stop when N_opt(C*)'s interval hi/lo is within this
    max_compute: PositiveNumber = 1.5e13  # training FLOPs of every round together, pilot included
    max_rounds: PositiveInt = 4  # rounds after the pilot
    # a round may spend at least this multiple of the FLOPs trained so far (1: it may double
    # the study), more when max_compute would otherwise be left unspent after max_rounds
    round_compute: PositiveNumber = 1.0
    # stop when the best next round is expected to cut N_opt(C*)'s variance by less than this
    min_expected_gain: Fraction = 0.1
    validation: ValidationParams = ValidationParams()

    @model_validator(mode="after")
    def _validation_fits_the_study(self) -> StudyConfig:
        # max_compute caps what the rounds train; a validation that alone costs more is out of
        # scale with the study it checks (most likely a typo), and is said before any work
        budget, runs = self.validation.budget, len(self.validation.roles)
        if self.validation.enabled and isinstance(budget, float | int) and (
                budget * runs > self.max_compute):
            each = f" x {runs} runs with study.validation.neighbours" if runs > 1 else ""
            raise ValueError(
                f"study.validation.budget ({budget:.3g} FLOPs{each}) costs more than "
                f"study.max_compute ({self.max_compute:.3g} FLOPs), the training the whole "
                "study may spend: set a smaller study.validation.budget, null "
                "(study.validation.min_factor x the largest fitted budget) or leftover (what "
                "study.max_compute leaves after the rounds)")
        return self
