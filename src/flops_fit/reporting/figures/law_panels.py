"""Figure 2, scaling laws: N_opt, D_opt and L_opt against C per approach, with the fitted power
laws, their bootstrap bands, the extrapolated range and the held-out check."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import pandas as pd
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.patches import Patch
from matplotlib.ticker import FuncFormatter, LogLocator, NullLocator

from flops_fit.reporting import inputs as inp
from flops_fit.reporting.figures.common import (
    FIGURES,
    OFF_CHART,
    count_axis,
    decade_locator,
    finite,
    flops_axis,
    legend_below,
    no_data_figure,
    sig_tick,
)
from flops_fit.reporting.formatting import DataUnit, LossUnit, format_sig
from flops_fit.reporting.styles import get_style, styled_figure
from flops_fit.schema import APPROACHES, LAW_COLUMNS

_LAW_SYMBOLS = {"n_opt": "N", "d_opt": "D", "l_opt": "L"}


def _panels(unit: DataUnit, loss: LossUnit) -> tuple[tuple[str, str, str, str], ...]:
    """(law key, optimum column, y label, panel title), one panel each."""
    return tuple(
        (key, LAW_COLUMNS[key], ylabel, panel_title) for key, ylabel, panel_title in (
            ("n_opt", "N_opt (parameters)", "compute-optimal model size"),
            ("d_opt", f"D_opt ({unit.plural})", f"compute-optimal training {unit.plural}"),
            ("l_opt", loss.label("L_opt", unit), "loss at the optimum"),
        )
    )


def scaling_laws(
    optimal_points: Any,
    scaling_law_curves: Any = None,
    scaling_laws: Any = None,
    style: str = "notebook",
) -> Figure:
    """N_opt, D_opt and L_opt against C on log axes, per approach, with bootstrap bands."""
    title = FIGURES["scaling_laws"]["title"]
    k = get_style(style).marker_scale
    optima = inp.optimal_frame(optimal_points)
    optima = optima[optima["approach"].isin(APPROACHES)]
    curves = inp.curves_frame(scaling_law_curves)
    curves = curves[curves["approach"].isin(APPROACHES)]
    laws = inp.laws_dict(scaling_laws)
    if optima.dropna(subset=["compute_budget", "model_size"]).empty and curves.empty:
        return no_data_figure(title, "there are no optimal points and no fitted curves "
                              "(optimal_points and scaling_law_curves are empty or missing); "
                              "run the analysis pipeline first.", style)
    held_out = inp.held_out_budget(laws)
    fitted_range = _fitted_range(optima, laws)
    c_max = np.nanmax([curves["compute_budget"].max(), optima["compute_budget"].max()])

    with styled_figure(style, height_ratio=0.4) as fig:
        axes = fig.subplots(1, 3)
        panels = _panels(inp.data_unit(laws), inp.loss_unit(laws))
        for ax, (key, column, ylabel, panel_title) in zip(axes, panels, strict=True):
            ax.set_xscale("log")
            ax.set_yscale("log")
            for approach in APPROACHES:
                _draw_approach(ax, approach, column, curves, optima, k)
            if fitted_range and c_max > fitted_range[1]:
                ax.axvspan(fitted_range[1], c_max, color="0.5", alpha=0.08, lw=0)
                # rising laws leave the lower right empty, the falling loss the upper right
                start = max(fitted_range[1], held_out or 0.0) * 1.4
                _annotate_span(ax, start, "extrapolation", top=key == "l_opt", ha="left")
            if held_out:
                ax.axvline(held_out, color="0.25", ls=":", lw=1.2)
                # beside the line, away from the optima: below the falling loss, above the
                # rising N_opt and D_opt
                _annotate_span(ax, held_out / 1.25, "held-out check", top=key != "l_opt",
                               rotation=90, ha="right")
            ax.set_title(panel_title)
            ax.set_xlabel("compute budget C (FLOPs)")
            ax.set_ylabel(ylabel)
            _format_axes(ax, key)
        handles = [
            Line2D([], [], color=inp.APPROACH_COLOURS[a], marker="o", markersize=5 * k,
                   label=_law_label(laws, a))
            for a in APPROACHES
            if (optima["approach"] == a).any() or (curves["approach"] == a).any()
        ]
        notes = ["shaded band: bootstrap 95% interval of the fit"]
        if (~optima["used_in_fit"]).any():
            notes.append("hollow marker: optimum not used in the fit")
        handles.append(Patch(facecolor="0.5", alpha=0.3, label=";  ".join(notes)))
        legend_below(fig, handles, ncols=1)
    return fig


#: a loss axis spanning more decades than this is labelled by decades
LOSS_DECADES = 1.5


def _draw_approach(ax, approach: str, column: str, curves: pd.DataFrame, optima: pd.DataFrame,
                   k: float) -> None:
    """One approach in one panel: its fitted law with the band, its optima (hollow: unused)."""
    k2 = k * k
    colour = inp.APPROACH_COLOURS[approach]
    c = curves[curves["approach"] == approach]
    ok = finite(c["compute_budget"], c[column])
    if ok.any():
        ax.plot(c.loc[ok, "compute_budget"], c.loc[ok, column], color=colour, lw=1.6)
        band = ok & finite(c[f"{column}_lo"], c[f"{column}_hi"])
        if band.any():
            ax.fill_between(c.loc[band, "compute_budget"], c.loc[band, f"{column}_lo"],
                            c.loc[band, f"{column}_hi"], color=colour, alpha=0.15, lw=0)
    p = optima[(optima["approach"] == approach)
               & finite(optima["compute_budget"], optima[column])]
    p = p[p[column] > 0]
    used = p[p["used_in_fit"]]
    ax.scatter(used["compute_budget"], used[column], color=colour, s=26 * k2, zorder=4,
               edgecolors="white", linewidths=0.5)
    # an unused optimum is drawn only where it is one: a parabola with no minimum leaves an
    # infinite N and a loss far off the chart, which would set the panel's scale
    unused = p[~p["used_in_fit"] & finite(p["model_size"], p["num_tokens"], p["loss"])]
    if not used.empty:
        lo, hi = used[column].min() / OFF_CHART, used[column].max() * OFF_CHART
        unused = unused[(unused[column] >= lo) & (unused[column] <= hi)]
    ax.scatter(unused["compute_budget"], unused[column], facecolors="none",
               edgecolors=colour, s=30 * k2, zorder=4, linewidths=1.2)


def _format_axes(ax, key: str) -> None:
    ax.xaxis.set_major_locator(decade_locator(ax))
    flops_axis(ax)
    if key != "l_opt":
        count_axis(ax, "y")
    elif np.log10(np.divide(*ax.get_ylim()[::-1])) > LOSS_DECADES:
        count_axis(ax, "y")  # a loss falling over decades (towards 0): decades, as N and D
    else:  # losses span less than a decade: label 1.5, 2, 3, ... rather than decades
        ax.yaxis.set_major_locator(LogLocator(base=10, subs=(1.0, 1.5, 2.0, 3.0, 4.0, 6.0),
                                              numticks=12))
        ax.yaxis.set_minor_locator(NullLocator())
        ax.yaxis.set_major_formatter(FuncFormatter(sig_tick))


def _law_label(laws: Mapping[str, Any], approach: str) -> str:
    """'Approach 2 (IsoFLOP parabolas): N ∝ C^0.453 [0.433, 0.473], D ∝ ...' for the legend."""
    parts = []
    for key, symbol in _LAW_SYMBOLS.items():
        fitted = inp.law(laws, approach, key)
        if fitted is None:
            continue
        text = rf"${symbol} \propto C^{{{format_sig(fitted['exponent'])}}}$"
        if fitted["exponent_interval"]:
            lo, hi = fitted["exponent_interval"]
            text += f" [{format_sig(lo)}, {format_sig(hi)}]"
        parts.append(text)
    label = f"{inp.APPROACH_NAMES[approach]} ({inp.APPROACH_METHODS[approach]})"
    return label + (": " + ",  ".join(parts) if parts else ": no fitted law")


def _annotate_span(ax, x: float, text: str, *, top: bool, rotation: int = 0,
                   ha: str = "center") -> None:
    """A small grey label at the top or bottom edge of the axes (x in data coordinates)."""
    y, va = (0.97, "top") if top else (0.03, "bottom")
    ax.text(x, y, text, transform=ax.get_xaxis_transform(), rotation=rotation, ha=ha, va=va,
            fontsize="x-small", color="0.3")


def _fitted_range(optima: pd.DataFrame, laws: Mapping[str, Any]) -> tuple[float, float] | None:
    used = optima.loc[optima["used_in_fit"], "compute_budget"].dropna()
    if used.empty:
        budgets = [b for b in (inp.section(laws, "meta").get("budgets") or []) if b]
        held_out = inp.held_out_budget(laws)
        used = pd.Series([float(b) for b in budgets if held_out is None or b != held_out])
    return (float(used.min()), float(used.max())) if not used.empty else None
