"""`params:analysis`: how runs become budgets, which runs are used, the fits and the bootstrap.

Defaults equal `conf/base/parameters_analysis.yml` (tests/parameters/test_defaults.py checks it).
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field, StrictBool, model_validator

from flops_fit.fitting.laws.families import LAW_NAMES
from flops_fit.parameters.base import (
    Integer,
    NonNegativeInt,
    Number,
    PositiveInt,
    PositiveNumber,
    Section,
)
from flops_fit.schema import RUN_COLUMN_ROLES

#: analysis.compute_model (fitting/surface/compute_model.py reads it)
COMPUTE_MODEL_SOURCES = ("auto", "plan", "6nd", "table")
RESAMPLE_MODES = ("residuals", "runs", "budgets")  # fitting/bootstrap.py
#: fewer finite bootstrap draws than this give no interval (fitting/bootstrap.py)
MIN_DRAWS_FOR_INTERVAL = 10

#: start, stop, step of a grid of exponents
GridSpec = tuple[PositiveNumber, PositiveNumber, PositiveNumber]


class BudgetGrouping(Section):
    """Clustering of log10 C into budgets, for runs without a planned `compute_budget`."""

    SECTION = "analysis.budgets"

    gap_dex: PositiveNumber = 0.05  # a new budget starts where sorted log10 C jumps by more
    max_width_dex: PositiveNumber | None = 0.2  # ... or spans more than this
    min_runs: PositiveInt = 3  # budgets with fewer usable runs are left out of Approaches 1-2


class OutlierRule(Section):
    """Runs too far off their budget's IsoFLOP curve for the study's own noise are left out
    (`find_outliers` in fitting/runs/outliers.py)."""

    SECTION = "analysis.outliers"

    enabled: StrictBool = True
    alpha: Number = Field(1.0e-3, gt=0, lt=1)  # P(an honest study loses any run); Bonferroni
    # of each budget's curve of log-loss in log10 N; auto: a quadratic, or a cubic where the
    # profiles lean one way on balance (`outliers.shared_skew`)
    degree: Literal["auto", 2, 3] = "auto"
    min_points: PositiveInt = 5  # only budgets with at least this many runs are screened
    min_scale: PositiveNumber = 0.005  # floor of the noise SD (log-loss)
    max_fraction: Number = Field(0.2, ge=0, le=1)  # flag at most this share of a budget


class Approach3Params(Section):
    """The parametric fit: its objective, Huber threshold and the (alpha, beta) start search."""

    SECTION = "analysis.approach_3"

    # huber_log: sum of Huber(huber_delta) of log-loss residuals (the paper's); least_squares:
    # sum of squared raw-loss residuals (L_hat - L)^2, the fit for additive noise (fitting/surface/objective.py)
    objective: Literal["huber_log", "least_squares"] = "huber_log"
    huber_delta: PositiveNumber = 1.0e-3  # objective huber_log only
    alpha_grid: GridSpec = (0.02, 3.0, 0.04)
    beta_grid: GridSpec = (0.02, 3.0, 0.04)
    n_starts: PositiveInt = 24  # best local minima of the start search refined together
    n_polish: PositiveInt = 3  # best refined points polished with L-BFGS-B

    @model_validator(mode="after")
    def _grids(self) -> Approach3Params:
        for name in ("alpha_grid", "beta_grid"):
            start, stop, _ = getattr(self, name)
            if start > stop:
                raise ValueError(f"{name}: start ({start:g}) is above stop ({stop:g})")
        return self


class LawChoiceParams(Section):
    """How `law: auto` chooses a family: rollout over the largest budgets (fitting/laws/choice.py)."""

    held_out: PositiveInt = 2  # the largest budgets predicted in turn from the smaller ones
    tie: Number = Field(0.1, ge=0)  # fewer parameters win within this relative held-out error
    #: the bootstrap repeats the choice in this many draws first; when every one of them makes
    #: the full data's choice, the other draws keep it (another family's share is then below
    #: 3/pilot_draws at 95% confidence); else every draw repeats it. Set it to the number of
    #: draws to repeat the choice in every draw.
    pilot_draws: PositiveInt = 100


class BootstrapParams(Section):
    SECTION = "analysis.bootstrap"

    enabled: StrictBool = True
    draws: NonNegativeInt = 1000
    seed: NonNegativeInt = 0
    # residuals (fixed-design residual bootstrap, calibrated) | runs (pairs, within budgets)
    # | budgets (whole budgets); fitting/bootstrap.py
    resample: Literal[RESAMPLE_MODES] = "residuals"
    extra_starts: NonNegativeInt = 2  # Approach 3: perturbed starts per draw

    @model_validator(mode="after")
    def _enough_draws(self) -> BootstrapParams:
        if self.enabled and 0 < self.draws < MIN_DRAWS_FOR_INTERVAL:
            raise ValueError(
                f"draws: {self.draws} draws give no interval (at least "
                f"{MIN_DRAWS_FOR_INTERVAL}; 0 or enabled: false turns the bootstrap off)"
            )
        return self

    @property
    def active(self) -> bool:
        return self.enabled and self.draws > 0

    def meta(self) -> dict[str, Any]:
        return {"draws": self.draws if self.active else 0, "seed": self.seed,
                "resample": self.resample}


class AnalysisConfig(Section):
    SECTION = "analysis"

    # role -> a column name or a list of candidates (the first present wins); see fitting/runs/table.py
    # (a role left out or null falls back to these defaults)
    columns: dict[Literal[RUN_COLUMN_ROLES], str | list[str] | None] = {
        "experiment_id": "experiment_id",
        "model_size": "model_size",
        "num_tokens": "num_tokens",
        "compute": ["planned_flops", "compute"],
        "compute_budget": ["compute_budget", "budget"],
        "loss": "final_loss",
        "status": "status",
        "error_message": "error_message",
    }
    filter: dict[str, Any] = {}  # keep rows whose column has this value (or one of a list)
    min_budgets: Integer = Field(3, ge=2)
    # C = f(N) D for Approach 3's optimum: auto (the plan's flops_per_token, else 6 N), plan (the
    # plan's, an error without it), 6nd, or table (each run's C / D); fitting/surface/compute_model.py
    compute_model: Literal[COMPUTE_MODEL_SOURCES] = "auto"
    budgets: BudgetGrouping = BudgetGrouping()
    drop_highest_loss: NonNegativeInt = 0
    outliers: OutlierRule = OutlierRule()
    approach_3: Approach3Params = Approach3Params()
    # Approach 3's family: one of LAW_NAMES pinned, or auto (chosen by held-out error)
    law: Literal[("auto", *LAW_NAMES)] = "chinchilla"
    law_choice: LawChoiceParams = LawChoiceParams()
    # above the centre of the budgets, Approach 3's intervals also carry its law's error, by
    # rollout over law_choice.held_out budgets (fitting/laws/beyond.py); false: parameters only
    law_error: StrictBool = True
    # with law_error: the least error of the loss per unit of ln C beyond the centre, measured
    # or not (fitting/laws/beyond.py; calibrated on public ladders by benchmarks/bench_laws.py)
    law_error_floor: Number = Field(0.0025, ge=0, lt=0.1)
    bootstrap: BootstrapParams = BootstrapParams()
    confidence_level: Number = Field(0.95, gt=0, lt=1)
    target_budgets: tuple[PositiveNumber, ...] = Field((3.0e12, 1.0e13, 3.0e13), min_length=1)
    curve_points: Integer = Field(60, ge=2)
    blas_threads: PositiveInt | None = 1  # BLAS threads while fitting (null: leave them alone)
    source: str | None = None  # label for the runs in messages and meta.source
