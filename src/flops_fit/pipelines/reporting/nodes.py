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
import math
from dataclasses import dataclass
from typing import Any

import pandas as pd
from matplotlib.figure import Figure

from flops_fit.reporting import figures, report
from flops_fit.reporting.inputs import APPROACHES
from flops_fit.reporting.styles import STYLES

log = logging.getLogger(__name__)


class ReportingConfigError(ValueError):
    """`params:reporting` is invalid; the message names the key."""


@dataclass(frozen=True)
class ReportingConfig:
    style: str = "notebook"
    headline_budget: float = 1e24
    headline_approach: str = "approach_3"
    reference_tokens_per_param: float = 20.0
    embed_dpi: float = 110.0
    title: str = "Compute-optimal scaling report"

    @classmethod
    def from_params(cls, params: dict[str, Any] | None) -> ReportingConfig:
        params = dict(params or {})
        known = set(cls.__dataclass_fields__)
        unknown = sorted(set(params) - known)
        if unknown:
            raise ReportingConfigError(
                f"unknown key(s) {unknown} in params:reporting; allowed keys: {sorted(known)}")
        cfg = cls(**params)
        if cfg.style not in STYLES:
            raise ReportingConfigError(
                f"params:reporting.style must be one of {sorted(STYLES)}, got {cfg.style!r}")
        if cfg.headline_approach not in APPROACHES:
            raise ReportingConfigError(
                f"params:reporting.headline_approach must be one of {list(APPROACHES)}, "
                f"got {cfg.headline_approach!r}")
        for key in ("headline_budget", "reference_tokens_per_param", "embed_dpi"):
            value = getattr(cfg, key)
            if isinstance(value, bool) or not isinstance(value, (int, float)) \
                    or not math.isfinite(value) or value <= 0:
                raise ReportingConfigError(
                    f"params:reporting.{key} must be a positive number, got {value!r}")
        return cfg


def plot_isoflop_curves(analysis_runs: pd.DataFrame, optimal_points: pd.DataFrame,
                        scaling_laws: dict[str, Any], reporting: dict[str, Any],
                        ) -> tuple[Figure, Figure]:
    cfg = ReportingConfig.from_params(reporting)
    fig = figures.isoflop_curves(analysis_runs, optimal_points, scaling_laws, style=cfg.style)
    return fig, fig


def plot_scaling_laws(optimal_points: pd.DataFrame, scaling_law_curves: pd.DataFrame,
                      scaling_laws: dict[str, Any], reporting: dict[str, Any],
                      ) -> tuple[Figure, Figure]:
    cfg = ReportingConfig.from_params(reporting)
    fig = figures.scaling_laws(optimal_points, scaling_law_curves, scaling_laws, style=cfg.style)
    return fig, fig


def plot_tokens_per_param(optimal_points: pd.DataFrame, scaling_law_curves: pd.DataFrame,
                          predictions: pd.DataFrame, reporting: dict[str, Any],
                          ) -> tuple[Figure, Figure]:
    cfg = ReportingConfig.from_params(reporting)
    fig = figures.tokens_per_param(optimal_points, scaling_law_curves, predictions,
                                   style=cfg.style, reference=cfg.reference_tokens_per_param)
    return fig, fig


def plot_parametric_fit(analysis_runs: pd.DataFrame, scaling_laws: dict[str, Any],
                        reporting: dict[str, Any]) -> tuple[Figure, Figure]:
    cfg = ReportingConfig.from_params(reporting)
    fig = figures.parametric_fit(analysis_runs, scaling_laws, style=cfg.style)
    return fig, fig


def summarise_report(analysis_runs: pd.DataFrame, scaling_laws: dict[str, Any],
                     optimal_points: pd.DataFrame, predictions: pd.DataFrame,
                     scaling_law_curves: pd.DataFrame, reporting: dict[str, Any],
                     ) -> dict[str, Any]:
    """What the report says, as JSON: the headline numbers first, then laws, checks, runs."""
    cfg = ReportingConfig.from_params(reporting)
    summary = report.summarise_study(
        analysis_runs, scaling_laws, optimal_points, predictions, scaling_law_curves,
        headline_budget=cfg.headline_budget, headline_approach=cfg.headline_approach,
        title=cfg.title,
    )
    log.info("%s", summary["headline"]["text"])
    for item in summary["missing"]:
        log.warning("Report input %s: %s", item["input"], item["why"])
    return summary


def render_html_report(report_summary: dict[str, Any], isoflops_curves_figure: Figure,
                       scaling_laws_figure: Figure, tokens_per_param_figure: Figure,
                       parametric_fit_figure: Figure, reporting: dict[str, Any]) -> str:
    cfg = ReportingConfig.from_params(reporting)
    return report.render_html(report_summary, {
        "isoflops_curves": isoflops_curves_figure,
        "scaling_laws": scaling_laws_figure,
        "tokens_per_param": tokens_per_param_figure,
        "parametric_fit": parametric_fit_figure,
    }, embed_dpi=cfg.embed_dpi)


def render_markdown_report(report_summary: dict[str, Any]) -> str:
    return report.render_markdown(report_summary)
