"""One Python entry point for analysis: `analyse(results, analysis, compute_model=...)`.

It runs exactly what the analysis pipeline runs, step for step (the pipeline's nodes call the
same step functions, listed in `STEPS`), and returns one typed `Analysis`:

    from flops_fit import analyse
    from flops_fit.csvsafe import read_csv  # pandas' read_csv, undoing the CSV formula guard

    results = read_csv("data/03_primary/results.csv")
    study = analyse(results, {"target_budgets": [1e13, 1e14]}, compute_model="plan")
    study.recommended            # "approach_3", say: the answer the report opens with
    study.predict([3e13, 1e14])  # N_opt, D_opt, loss with intervals at any budget
    study.to_json()              # the text of scaling_laws.json, as `kedro run` writes it

The compute model (C = f(N) D, which (N, D) a budget buys) changes the answer, so it is never
assumed: pass `compute_model` ("plan": the plan's flops_per_token, which every study planned by
flops-fit carries; "6nd": C = 6 N D; "table": each run's own C / D; "auto": the plan's when the
table has it, else 6 N D; or a `ComputeModel`), or set `compute_model` in the analysis
parameters, as `conf/base/parameters_analysis.yml` does for `kedro run`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from flops_fit.fitting.checks.extrapolation import ExtrapolationCheck, extrapolation_check
from flops_fit.fitting.isoflop.approaches import IsoflopFit, fit_isoflop_approaches
from flops_fit.fitting.outputs.draws import bootstrap_draws_table
from flops_fit.fitting.outputs.optimal_points import optimal_points_table
from flops_fit.fitting.outputs.predictions import predict, predictions_at
from flops_fit.fitting.outputs.scaling_laws import summarise
from flops_fit.fitting.runs.prepare import prepare_runs
from flops_fit.fitting.surface.compute_model import ComputeModel, compute_model_of
from flops_fit.fitting.surface.study import SurfaceFit, fit_surface
from flops_fit.jsonsafe import to_json_text
from flops_fit.parameters.analysis import COMPUTE_MODEL_SOURCES, AnalysisConfig
from flops_fit.schema import APPROACHES

#: the analysis pipeline, in order: (step, its inputs, its outputs), as the nodes wire them
STEPS = (
    ("prepare_runs", "results, config", "runs, runs_summary"),
    ("compute_model_of", "runs, compute model choice", "compute_model"),
    ("fit_isoflop_approaches", "runs, config", "isoflop (Approaches 1 and 2)"),
    ("fit_surface", "runs, config, compute_model", "surface (Approach 3)"),
    ("extrapolation_check", "runs, config, compute_model, surface", "extrapolation"),
    ("bootstrap_draws_table", "isoflop, surface", "draws"),
    ("optimal_points_table", "isoflop, surface, runs, compute_model", "optimal_points"),
    ("predict", "isoflop, surface, runs, config, compute_model", "predictions, curves"),
    ("summarise", "everything above", "scaling_laws"),
)


class AnalysisInputError(ValueError):
    """The call to `analyse` is missing a choice that changes the answer."""


@dataclass(frozen=True)
class Analysis:
    """Everything the analysis pipeline computes, for one results table."""

    config: AnalysisConfig
    compute_model: ComputeModel
    runs: pd.DataFrame  # the analysis runs table (catalog: analysis_runs)
    runs_summary: dict[str, Any]
    isoflop: dict[str, IsoflopFit]  # approach_1, approach_2
    surface: SurfaceFit  # approach_3
    extrapolation: ExtrapolationCheck
    optimal_points: pd.DataFrame
    predictions: pd.DataFrame  # at config.target_budgets
    curves: pd.DataFrame  # the laws on a grid of budgets, for figures
    scaling_laws: dict[str, Any]  # the scaling_laws document
    draws: pd.DataFrame  # the bootstrap draws of Approaches 2 and 3 (catalog: bootstrap_draws)

    @property
    def recommended(self) -> str | None:
        """The approach the report opens with (None when no approach has an allocation)."""
        return self.scaling_laws["recommended_approach"]["approach"]

    @property
    def warnings(self) -> list[str]:
        return list(self.scaling_laws["warnings"])

    def predict(self, compute: float | Sequence[float], approach: str | None = None
                ) -> pd.DataFrame:
        """N_opt, D_opt, tokens per unit, loss and their intervals at budget(s) `compute`, from
        `approach` (default: the recommended one; "all" for every approach)."""
        expected = f"compute: expected positive finite budget(s), got {compute!r}"
        try:
            budgets = np.atleast_1d(np.asarray(compute, dtype=float))
        except (TypeError, ValueError):
            raise AnalysisInputError(expected) from None
        if budgets.ndim != 1 or not len(budgets) or not np.all(np.isfinite(budgets) & (budgets > 0)):
            raise AnalysisInputError(expected)
        chosen = self.recommended if approach is None else approach
        wanted = APPROACHES if chosen == "all" else (chosen,)
        unknown = [a for a in wanted if a not in APPROACHES]
        if chosen is None or unknown:
            raise AnalysisInputError(
                f"approach: expected one of {', '.join(APPROACHES)} or 'all', got {chosen!r}"
                + (" (no approach has a fitted allocation)" if chosen is None else ""))
        return predictions_at(self.isoflop, self.surface, self.compute_model, budgets,
                              self.config.confidence_level, wanted)

    def to_json(self) -> str:
        """The text of scaling_laws.json, byte for byte what the catalog writes."""
        return to_json_text(self.scaling_laws)


def resolve_compute_model(runs: pd.DataFrame, choice: ComputeModel | str) -> ComputeModel:
    """`choice` as a ComputeModel: one already built, or a source read from the runs table."""
    if isinstance(choice, ComputeModel):
        return choice
    if choice not in COMPUTE_MODEL_SOURCES:
        raise AnalysisInputError(
            f"compute_model: expected a ComputeModel or one of {', '.join(COMPUTE_MODEL_SOURCES)}, "
            f"got {choice!r}")
    return compute_model_of(runs, choice)


def _compute_model_choice(cfg: AnalysisConfig, compute_model: ComputeModel | str | None):
    if compute_model is not None:
        return compute_model
    if "compute_model" in cfg.model_fields_set:
        return cfg.compute_model
    raise AnalysisInputError(
        "compute_model: say how the study counts compute, it changes Approach 3's answer: "
        "'plan' (the plan's flops_per_token, what `kedro run` uses for a study flops-fit "
        "planned), '6nd' (C = 6 N D), 'table' (each run's C / D), 'auto', or a ComputeModel; "
        "or set compute_model in the analysis parameters")


def analyse(results: pd.DataFrame | Sequence[Mapping[str, Any]],
            analysis: AnalysisConfig | Mapping[str, Any] | None = None,
            compute_model: ComputeModel | str | None = None) -> Analysis:
    """Run the analysis pipeline on `results` (the results table, or its records) with the
    `analysis` parameters (a mapping as in parameters_analysis.yml, or an AnalysisConfig) under
    `compute_model` (see the module docstring; required unless the parameters set it)."""
    cfg = AnalysisConfig.from_params(analysis)
    choice = _compute_model_choice(cfg, compute_model)
    runs, runs_summary = prepare_runs(results, cfg)
    model = resolve_compute_model(runs, choice)
    isoflop = fit_isoflop_approaches(runs, cfg)
    surface = fit_surface(runs, cfg, model)
    check = extrapolation_check(runs, cfg, model, surface)
    draws = bootstrap_draws_table(isoflop, surface)
    points = optimal_points_table(isoflop, surface, runs, model)
    predictions, curves = predict(isoflop, surface, runs, cfg, model)
    laws = summarise(runs_summary, runs, isoflop, surface, check, predictions, cfg, model)
    return Analysis(config=cfg, compute_model=model, runs=runs, runs_summary=runs_summary,
                    isoflop=isoflop, surface=surface, extrapolation=check,
                    optimal_points=points, predictions=predictions, curves=curves,
                    scaling_laws=laws, draws=draws)
