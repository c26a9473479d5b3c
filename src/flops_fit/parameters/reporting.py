"""`params:reporting`: figure style, the report's headline and its title.

Defaults equal `conf/base/parameters_reporting.yml` (tests/parameters/test_defaults.py checks it).
"""

from __future__ import annotations

from typing import Literal

from flops_fit.parameters.base import PositiveNumber, Section
from flops_fit.reporting.styles import STYLES
from flops_fit.schema import APPROACHES

#: `reporting.max_headline_extrapolation`: a headline budget more than this many times the
#: largest fitted budget gets no numbers (predictions.csv still has them). Public scaling
#: studies extrapolate by 10-1,000x (Chinchilla's runs to Gopher's budget: ~50x); at 10^4x and
#: beyond, a law fitted on a toy's budgets says nothing about a frontier model's.
MAX_EXTRAPOLATION = 1.0e4


class ReportingConfig(Section):
    SECTION = "reporting"

    style: Literal[tuple(STYLES)] = "notebook"  # notebook: screen; paper: serif, 300 dpi
    headline_budget: PositiveNumber = 3.0e12  # the report opens with N and D at this budget
    # a headline budget beyond this many times the largest fitted one gets no numbers
    max_headline_extrapolation: PositiveNumber = MAX_EXTRAPOLATION
    # auto: the approach analysis recommends (scaling_laws.recommended_approach); an explicit
    # approach falls back 3 -> 2 -> 1 when it was not fitted
    headline_approach: Literal[("auto", *APPROACHES)] = "auto"
    reference_tokens_per_param: PositiveNumber = 20.0  # the rule-of-thumb line
    embed_dpi: PositiveNumber = 110.0  # resolution of the figures inside report.html
    title: str = "Compute-optimal scaling report"
