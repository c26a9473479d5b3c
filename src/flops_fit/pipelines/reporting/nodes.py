"""Reporting nodes: thin adapters from datasets and `params:reporting` to `flops_fit.reporting`.

Runs are read from `analysis_runs` (every run with analysis's canonical column names, its budget
and whether it was used in the fits), not from `results`, whose columns are the user's own in
`--env imported`.

Every figure node returns its Figure twice: once to the MatplotlibDataset that writes the PNG,
once to an in-memory dataset that the HTML report embeds (a MatplotlibDataset cannot be loaded).
No node saves, shows or closes a figure, and none opens a file.
"""

from __future__ import annotations

import logging
from typing import Any

import pandas as pd
from matplotlib.figure import Figure

from flops_fit.parameters.reporting import ReportingConfig
from flops_fit.parameters.study import StudyConfig
from flops_fit.reporting import figures, inputs
from flops_fit.reporting.render import render_html, render_markdown
from flops_fit.reporting.summary import summarise_study

log = logging.getLogger(__name__)


def plot_isoflop_curves(analysis_runs: pd.DataFrame, optimal_points: pd.DataFrame,
                        scaling_laws: dict[str, Any], reporting: ReportingConfig,
                        ) -> tuple[Figure, Figure]:
    cfg = ReportingConfig.from_params(reporting)
    fig = figures.isoflop_curves(analysis_runs, optimal_points, scaling_laws, style=cfg.style)
    return fig, fig


def plot_scaling_laws(optimal_points: pd.DataFrame, scaling_law_curves: pd.DataFrame,
                      scaling_laws: dict[str, Any], reporting: ReportingConfig,
                      ) -> tuple[Figure, Figure]:
    cfg = ReportingConfig.from_params(reporting)
    fig = figures.scaling_laws(optimal_points, scaling_law_curves, scaling_laws, style=cfg.style)
    return fig, fig


def plot_tokens_per_param(optimal_points: pd.DataFrame, scaling_law_curves: pd.DataFrame,
                          predictions: pd.DataFrame, reporting: ReportingConfig,
                          scaling_laws: dict[str, Any] | None = None,
                          ) -> tuple[Figure, Figure]:
    """D/N against C; `scaling_laws` names the unit of D (without it: tokens)."""
    cfg = ReportingConfig.from_params(reporting)
    fig = figures.tokens_per_param(optimal_points, scaling_law_curves, predictions,
                                   style=cfg.style, reference=cfg.reference_tokens_per_param,
                                   scaling_laws=scaling_laws)
    return fig, fig


def plot_parametric_fit(analysis_runs: pd.DataFrame, scaling_laws: dict[str, Any],
                        reporting: ReportingConfig) -> tuple[Figure, Figure]:
    cfg = ReportingConfig.from_params(reporting)
    fig = figures.parametric_fit(analysis_runs, scaling_laws, style=cfg.style)
    return fig, fig


def plot_loss_curves(loss_curves: pd.DataFrame | None, analysis_runs: pd.DataFrame,
                     scaling_laws: dict[str, Any], reporting: ReportingConfig,
                     ) -> tuple[Figure, Figure]:
    """Every analysed run's loss curve; `loss_curves` is None where training did not run here."""
    cfg = ReportingConfig.from_params(reporting)
    laws = inputs.laws_dict(scaling_laws)
    fig = figures.loss_curves(inputs.analysed_curves(loss_curves, analysis_runs),
                              style=cfg.style, unit=inputs.data_unit(laws),
                              loss=inputs.loss_unit(laws))
    return fig, fig


def summarise_report(analysis_runs: pd.DataFrame, scaling_laws: dict[str, Any],
                     optimal_points: pd.DataFrame, predictions: pd.DataFrame,
                     scaling_law_curves: pd.DataFrame, reporting: ReportingConfig,
                     validation: dict[str, Any] | None = None,
                     study_rounds: pd.DataFrame | None = None,
                     settings_check: dict[str, Any] | None = None,
                     loss_curves: pd.DataFrame | None = None) -> dict[str, Any]:
    """What the report says, as JSON: a validation verdict first when there is one, runs
    reused under changed settings, the headline numbers, the study's rounds, then laws,
    checks, runs."""
    cfg = ReportingConfig.from_params(reporting)
    summary = summarise_study(
        analysis_runs, scaling_laws, optimal_points, predictions, scaling_law_curves,
        headline_budget=cfg.headline_budget, headline_approach=cfg.headline_approach,
        max_headline_extrapolation=cfg.max_headline_extrapolation, title=cfg.title, validation=validation, study_rounds=study_rounds,
        settings_check=settings_check, loss_curves=loss_curves,
    )
    if summary["validation"] is not None:
        log.info("Validation (%s): %s", summary["validation"]["status"],
                 summary["validation"]["verdict"])
    log.info("%s", summary["headline"]["text"])
    for item in summary["missing"]:
        log.warning("Report input %s: %s", item["input"], item["why"])
    return summary


#: the study parameters a report of a study that was not steered is drawn with (never read)
_NOT_STEERED = StudyConfig()


def render_html_report(report_summary: dict[str, Any], isoflops_curves_figure: Figure,
                       scaling_laws_figure: Figure, tokens_per_param_figure: Figure,
                       parametric_fit_figure: Figure, reporting: ReportingConfig,
                       loss_curves_figure: Figure | None = None,
                       study_rounds: pd.DataFrame | None = None,
                       study: StudyConfig = _NOT_STEERED) -> str:
    """The self-contained HTML report, every figure embedded: a steered study's rounds are
    drawn here from `study_rounds` (None or empty: not a steered study)."""
    cfg = ReportingConfig.from_params(reporting)
    rounds_figure = None
    if study_rounds is not None and len(study_rounds) and report_summary.get("study"):
        from flops_fit.reporting.figures.study_rounds import study_rounds_figure

        steered = StudyConfig.from_params(study)
        rounds_figure = study_rounds_figure(study_rounds, steered.target_budget,
                                            steered.precision, cfg.style)
    return render_html(report_summary, {
        "isoflops_curves": isoflops_curves_figure,
        "scaling_laws": scaling_laws_figure,
        "tokens_per_param": tokens_per_param_figure,
        "parametric_fit": parametric_fit_figure,
        "loss_curves": loss_curves_figure,
        "study_rounds": rounds_figure,
    }, embed_dpi=cfg.embed_dpi)


def render_markdown_report(report_summary: dict[str, Any]) -> str:
    return render_markdown(report_summary)
