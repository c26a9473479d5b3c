"""Figure 1, IsoFLOP profiles: final loss against N for every budget, the Approach 2 parabolas,
Approach 3's fitted surface along each budget's IsoFLOP curve (D = C / f(N), the study's
compute model) and each approach's optimum per budget: Approach 3's lies on its curve."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
from matplotlib.figure import Figure
from matplotlib.lines import Line2D

from flops_fit.fitting.laws.families import DEFAULT_LAW
from flops_fit.fitting.surface.law import parametric_loss
from flops_fit.reporting import inputs as inp
from flops_fit.reporting.figures.common import (
    FIGURES,
    GREY,
    BudgetColours,
    count_axis,
    finite,
    legend_below,
    no_data_figure,
)
from flops_fit.reporting.styles import get_style, styled_figure

_FAILED_Y = 0.04  # failed runs are drawn at this height (axes fraction): they have no loss

# Distinct even when the three optima coincide: a ring around the best run, a filled diamond at
# the vertex, a thin black cross at the parametric optimum.
_OPTIMUM_MARKERS = {
    "approach_1": {"marker": "o", "size": 15, "label": "Approach 1 optimum (best run)",
                   "ring": True},
    "approach_2": {"marker": "D", "size": 10, "label": "Approach 2 optimum (vertex)"},
    "approach_3": {"marker": "P", "size": 8, "label": "Approach 3 optimum (parametric)"},
}


def isoflop_curves(
    runs: Any,
    optimal_points: Any = None,
    scaling_laws: Any = None,
    style: str = "notebook",
) -> Figure:
    """Loss against N per budget: runs, Approach 2 parabolas, each approach's optimum.

    Runs that analysis excluded are drawn hollow (clipped to the top edge as a triangle when
    their loss is off the scale); failed runs have no loss and appear as crosses along the
    bottom edge at their model size.
    """
    title = FIGURES["isoflops_curves"]["title"]
    k = get_style(style).marker_scale
    runs = inp.runs_frame(runs)
    if runs.empty:
        return no_data_figure(title, "the run table is empty: no run has been recorded yet "
                              "(run the training and analysis pipelines first).", style)
    completed = runs[runs["completed"]]
    if completed.empty:
        return no_data_figure(title, f"none of the {len(runs)} recorded runs completed with a "
                              "finite loss; see the run inventory in the report.", style)
    laws = inp.laws_dict(scaling_laws)
    unit = inp.data_unit(laws, runs)
    excluded = inp.excluded_runs(laws, runs)
    is_excluded = completed["experiment_id"].isin(excluded)
    used, dropped = completed[~is_excluded], completed[is_excluded]
    failed = runs[~runs["completed"]]
    optima = inp.optimal_frame(optimal_points)
    colours = BudgetColours.for_budgets(runs["budget"].dropna())

    with styled_figure(style, height_ratio=0.62, width_scale=0.85) as fig:
        ax = fig.add_subplot()
        ax.set_xscale("log")
        handles: list = []
        _draw_runs(ax, used, colours, handles)
        y_values = list(used["final_loss"]) if not used.empty else list(dropped["final_loss"])
        _draw_parabolas(ax, optima, colours, handles)
        _draw_surface_profiles(ax, completed, optima, laws, colours, handles)
        y_values += _draw_optima(ax, optima, colours, k, handles)

        lo, hi = float(np.nanmin(y_values)), float(np.nanmax(y_values))
        span = max(hi - lo, 0.05 * abs(hi) or 0.1)
        bottom = lo - (0.16 if not failed.empty else 0.06) * span
        top = hi + 0.08 * span
        _draw_excluded(ax, dropped, top, colours, k, handles)
        _draw_failed(ax, failed, colours, k, handles)

        ax.set_ylim(bottom, top)
        ax.set_xlabel("model size N (parameters)")
        ax.set_ylabel(inp.loss_unit(laws, runs).label("final held-out loss", unit))
        ax.set_title("IsoFLOP profiles: loss against model size at fixed compute")
        count_axis(ax)
        colours.colorbar(fig, ax)
        legend_below(fig, handles, ncols=2)
    return fig


def _draw_runs(ax, used: pd.DataFrame, colours: BudgetColours, handles: list) -> None:
    for budget, group in used.sort_values("model_size").groupby("budget"):
        ax.plot(group["model_size"], group["final_loss"], "o", color=colours(budget),
                alpha=0.85, zorder=3)
    if not used.empty:
        handles.append(Line2D([], [], marker="o", ls="none", color=GREY, label="run"))


def _draw_parabolas(ax, optima: pd.DataFrame, colours: BudgetColours, handles: list) -> None:
    """Approach 2's parabola in log N over each budget's fitted range (dashed: not fitted)."""
    parabolas = optima[(optima["approach"] == "approach_2")
                       & finite(optima["parabola_c2"], optima["parabola_c1"],
                                optima["parabola_c0"], optima["log10_n_min"],
                                optima["log10_n_max"])]
    for row in parabolas.itertuples(index=False):
        x = np.linspace(row.log10_n_min, row.log10_n_max, 120)
        y = np.polyval([row.parabola_c2, row.parabola_c1, row.parabola_c0], x)
        ax.plot(10**x, y, color=colours(row.compute_budget), lw=1.4, alpha=0.9, zorder=2,
                ls="-" if row.used_in_fit else "--")
    if len(parabolas):
        label = "Approach 2 parabola"
        if not parabolas["used_in_fit"].all():
            label += " (dashed: not fitted)"
        handles.append(Line2D([], [], color=GREY, label=label))


def _surface_label(params: dict[str, Any]) -> str:
    law = params.get("law")
    named = f" ({law})" if law and law != DEFAULT_LAW else ""
    return f"Approach 3 surface{named} along the budget"


def _draw_surface_profiles(ax, completed: pd.DataFrame, optima: pd.DataFrame,
                           laws: dict[str, Any], colours: BudgetColours, handles: list) -> None:
    """Approach 3's L(N, C / f(N)) over each budget's runs (and its optimum), dash-dotted."""
    params = inp.surface(laws)
    rows = optima[(optima["approach"] == "approach_3") & finite(optima["model_size"])]
    if params is None or rows.empty:
        return
    compute = inp.compute_model(laws)
    for row in rows.itertuples(index=False):
        sizes = completed.loc[np.isclose(completed["budget"], row.compute_budget, rtol=1e-6),
                              "model_size"].dropna()
        lo = min([row.model_size, *sizes]) / 1.3
        hi = max([row.model_size, *sizes]) * 1.3
        n = np.geomspace(lo, hi, 120)
        ax.plot(n, parametric_loss(n, compute.units(row.compute_budget, n), params),
                color=colours(row.compute_budget), lw=1.0, ls="-.", alpha=0.8, zorder=2)
    handles.append(Line2D([], [], color=GREY, lw=1.0, ls="-.",
                          label=_surface_label(params)))


def _draw_optima(ax, optima: pd.DataFrame, colours: BudgetColours, k: float,
                 handles: list) -> list[float]:
    """Each approach's optimum per budget (faded where the fit left it out); their losses."""
    k2 = k * k
    losses: list[float] = []
    any_unused = False
    for approach, spec in _OPTIMUM_MARKERS.items():
        rows = optima[(optima["approach"] == approach)
                      & finite(optima["model_size"], optima["loss"])]
        if rows.empty:
            continue
        size = spec["size"] ** 2 * k2
        for used, part in rows.groupby("used_in_fit"):
            alpha = 1.0 if used else 0.35  # faded: an optimum the fit left out
            any_unused |= not used
            if spec.get("ring"):
                ax.scatter(part["model_size"], part["loss"], marker="o", s=size, alpha=alpha,
                           facecolors="none", edgecolors="black", linewidths=1.3, zorder=5)
            elif approach == "approach_3":
                ax.scatter(part["model_size"], part["loss"], marker=spec["marker"], s=size,
                           c="black", edgecolors="white", linewidths=0.6, zorder=7,
                           alpha=alpha)
            else:
                ax.scatter(part["model_size"], part["loss"], marker=spec["marker"], s=size,
                           c=[colours(b) for b in part["compute_budget"]], alpha=alpha,
                           edgecolors="black", linewidths=0.9, zorder=6)
        glyph = ({"markerfacecolor": "none", "markeredgecolor": "black"} if spec.get("ring")
                 else {"markerfacecolor": "black", "markeredgecolor": "white"}
                 if approach == "approach_3"
                 else {"markerfacecolor": "0.75", "markeredgecolor": "black"})
        losses += list(rows["loss"])
        handles.append(Line2D([], [], marker=spec["marker"], ls="none",
                              markersize=spec["size"] * k * (0.7 if spec.get("ring") else 0.8),
                              label=spec["label"], **glyph))
    if any_unused:
        handles.append(Line2D([], [], marker="D", ls="none", alpha=0.35,
                              markersize=10 * k * 0.8, markerfacecolor="0.75",
                              markeredgecolor="black",
                              label="faded: optimum not used in the fit"))
    return losses


def _draw_excluded(ax, dropped: pd.DataFrame, top: float, colours: BudgetColours, k: float,
                   handles: list) -> None:
    """Runs analysis excluded, hollow; those above `top` as triangles on the top edge."""
    if dropped.empty:
        return
    k2 = k * k
    off_scale = dropped["final_loss"] > top
    on_scale = dropped[~off_scale]
    ax.scatter(on_scale["model_size"], on_scale["final_loss"], marker="o", s=42 * k2,
               facecolors="none", linewidths=1.3, zorder=4,
               edgecolors=[colours(b) for b in on_scale["budget"]])
    label = "run excluded from the fits"
    if off_scale.any():
        ax.scatter(dropped.loc[off_scale, "model_size"], [top] * int(off_scale.sum()),
                   marker="^", s=42 * k2, facecolors="none", zorder=4, clip_on=False,
                   linewidths=1.3,
                   edgecolors=[colours(b) for b in dropped.loc[off_scale, "budget"]])
        label += " (▲ at the top: off-scale)"
    handles.append(Line2D([], [], marker="o", ls="none", markerfacecolor="none",
                          markeredgecolor=GREY, label=label))


def _draw_failed(ax, failed: pd.DataFrame, colours: BudgetColours, k: float,
                 handles: list) -> None:
    """Failed runs have no loss: crosses along the bottom edge at their model size."""
    if failed.empty or not failed["model_size"].notna().any():
        return
    k2 = k * k
    ax.scatter(failed["model_size"], [_FAILED_Y] * len(failed), marker="x", s=40 * k2,
               c=[colours(b) for b in failed["budget"]], linewidths=1.6,
               transform=ax.get_xaxis_transform(), zorder=4, clip_on=False)
    handles.append(Line2D([], [], marker="x", ls="none", color=GREY, markeredgewidth=1.6,
                          label="failed run (no loss; along the bottom)"))
