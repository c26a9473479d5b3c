"""Figure 3, tokens (or the study's unit of D) per parameter: D/N at the optimum against C per
approach, the fitted trend, the predictions with their intervals and, for tokens, the Chinchilla
rule of thumb (≈ 20)."""

from __future__ import annotations

from typing import Any

import pandas as pd
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.ticker import FuncFormatter, LogLocator

from flops_fit.reporting import inputs as inp
from flops_fit.reporting.figures.common import (
    GREY,
    OFF_CHART,
    decade_locator,
    figure_specs,
    finite,
    flops_axis,
    legend_below,
    no_data_figure,
    sig2_tick,
    sig_tick,
)
from flops_fit.reporting.formatting import format_sig
from flops_fit.reporting.styles import get_style, styled_figure
from flops_fit.schema import APPROACHES

#: predictions of the three approaches are nudged apart along C (in dex) so their bars show
_OFFSETS = dict(zip(APPROACHES, (-0.03, 0.0, 0.03), strict=True))


def tokens_per_param(
    optimal_points: Any,
    scaling_law_curves: Any = None,
    predictions: Any = None,
    style: str = "notebook",
    reference: float = 20.0,
    scaling_laws: Any = None,
) -> Figure:
    """D/N at the optimum against C per approach, the fitted trend and the ≈20 reference.

    The unit of D is scaling_laws' `data_unit` (tokens without it); the reference line is
    Chinchilla's tokens per parameter, drawn only when D counts tokens.
    """
    unit = inp.data_unit(inp.laws_dict(scaling_laws))
    title = figure_specs(unit)["tokens_per_param"]["title"]
    k = get_style(style).marker_scale
    optima = inp.optimal_frame(optimal_points)
    optima = optima[optima["approach"].isin(APPROACHES)
                    & finite(optima["compute_budget"], optima["tokens_per_param"])]
    optima = optima[optima["tokens_per_param"] > 0]
    curves = inp.curves_frame(scaling_law_curves)
    curves = curves[curves["approach"].isin(APPROACHES)]
    preds = inp.predictions_frame(predictions)
    preds = preds[preds["approach"].isin(APPROACHES)]
    if optima.empty and curves.dropna(subset=["model_size", "num_tokens"]).empty:
        return no_data_figure(title, "there are no optimal points and no fitted curves to take "
                              "D/N from; run the analysis pipeline first.", style)

    with styled_figure(style, height_ratio=0.5, width_scale=0.75) as fig:
        ax = fig.add_subplot()
        ax.set_xscale("log")
        ax.set_yscale("log")
        handles: list = []
        for approach in APPROACHES:
            if _draw_approach(ax, approach, curves, optima, preds, k):
                handles.append(Line2D([], [], color=inp.APPROACH_COLOURS[approach], marker="o",
                                      markersize=5 * k,
                                      label=f"{inp.APPROACH_NAMES[approach]} "
                                            f"({inp.APPROACH_METHODS[approach]})"))
        if (~optima["used_in_fit"]).any():
            handles.append(Line2D([], [], marker="x", ls="none", color=GREY,
                                  label="optimum not used in the fit"))
        if not preds.dropna(subset=["tokens_per_param"]).empty:
            handles.append(Line2D([], [], marker="o", ls="none", mfc="white", mec=GREY,
                                  label="prediction at a target budget (95% interval)"))
        if reference and unit.is_tokens:
            ax.axhline(reference, color="black", ls="--", lw=1.1, zorder=1)
            handles.append(Line2D([], [], color="black", ls="--",
                                  label=f"Chinchilla ≈ {format_sig(reference)} tokens/parameter"))
        ax.set_xlabel("compute budget C (FLOPs)")
        ax.set_ylabel(f"{unit.plural} per parameter D/N")
        ax.set_title(f"How many {unit.plural} per parameter is compute-optimal?")
        ax.xaxis.set_major_locator(decade_locator(ax))
        flops_axis(ax)
        ax.yaxis.set_major_formatter(FuncFormatter(sig_tick))
        ax.yaxis.set_minor_formatter(FuncFormatter(sig2_tick))
        ax.yaxis.set_minor_locator(LogLocator(base=10, subs=(2.0, 5.0), numticks=12))
        legend_below(fig, handles, ncols=2)
    return fig


def _draw_approach(ax, approach: str, curves: pd.DataFrame, optima: pd.DataFrame,
                   preds: pd.DataFrame, k: float) -> bool:
    """One approach's trend, optima and predictions; whether it has a trend or an optimum."""
    k2 = k * k
    colour = inp.APPROACH_COLOURS[approach]
    drawn = False
    c = curves[(curves["approach"] == approach)
               & finite(curves["compute_budget"], curves["model_size"], curves["num_tokens"])]
    if not c.empty:
        ax.plot(c["compute_budget"], c["num_tokens"] / c["model_size"], color=colour, lw=1.5)
        drawn = True
    p = optima[optima["approach"] == approach]
    used = p[p["used_in_fit"]]
    if not used.empty:
        ax.scatter(used["compute_budget"], used["tokens_per_param"], color=colour, s=28 * k2,
                   zorder=4, edgecolors="white", linewidths=0.5)
        drawn = True
    # an optimum the fit left out is a cross (a hollow circle is a prediction here), and only
    # near the used ones, as in the scaling-laws figure
    unused = p[~p["used_in_fit"]]
    if not used.empty:
        lo = used["tokens_per_param"].min() / OFF_CHART
        hi = used["tokens_per_param"].max() * OFF_CHART
        unused = unused[unused["tokens_per_param"].between(lo, hi)]
    if not unused.empty:
        ax.scatter(unused["compute_budget"], unused["tokens_per_param"], color=colour,
                   marker="x", s=24 * k2, linewidths=1.0, zorder=4)
        drawn = True
    q = preds[(preds["approach"] == approach)
              & finite(preds["compute_budget"], preds["tokens_per_param"])]
    if not q.empty:
        lo = (q["tokens_per_param"] - q["tokens_per_param_lo"]).clip(lower=0).fillna(0)
        hi = (q["tokens_per_param_hi"] - q["tokens_per_param"]).clip(lower=0).fillna(0)
        ax.errorbar(q["compute_budget"] * 10 ** _OFFSETS[approach], q["tokens_per_param"],
                    yerr=[lo, hi], fmt="o", mfc="white", mec=colour, ecolor=colour,
                    ms=5 * k, capsize=3 * k, zorder=4)
    return drawn
