"""The four figures of a study, as pure functions from tables to matplotlib Figures.

Nothing here saves or shows a figure: the catalog's MatplotlibDataset writes them, a notebook
displays them. Every function accepts missing or empty inputs and then returns a figure that says
"No data: <why>" instead of raising.
"""

from __future__ import annotations

import textwrap
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
from matplotlib import colormaps
from matplotlib.cm import ScalarMappable
from matplotlib.colors import ListedColormap, LogNorm
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.patches import Patch
from matplotlib.ticker import (
    FixedLocator,
    FuncFormatter,
    LogLocator,
    MaxNLocator,
    NullLocator,
)

from flops_fit.reporting import analysis_api
from flops_fit.reporting import inputs as inp
from flops_fit.reporting.formatting import format_count, format_flops, format_sig
from flops_fit.reporting.styles import get_style, styled_figure

#: Figure name -> (title, caption, file name under 08_reporting). The file names match
#: conf/base/catalog_reporting.yml (a test checks it); report.md links to them.
FIGURES: dict[str, dict[str, str]] = {
    "isoflops_curves": {
        "title": "IsoFLOP profiles",
        "file": "isoflops_curves.png",
        "caption": "Final held-out loss against model size for every compute budget (colour), "
                   "with the Approach 2 parabolas and each approach's optimum per budget.",
    },
    "scaling_laws": {
        "title": "Scaling laws",
        "file": "scaling_laws.png",
        "caption": "Compute-optimal model size, tokens and loss against compute per approach, "
                   "with the fitted power laws and their bootstrap 95% bands, extrapolated to "
                   "the largest target budget.",
    },
    "tokens_per_param": {
        "title": "Tokens per parameter",
        "file": "tokens_per_param.png",
        "caption": "D/N at the optimum against compute per approach, with the fitted trend "
                   "and the Chinchilla rule of thumb of about 20 tokens per parameter.",
    },
    "parametric_fit": {
        "title": "Approach 3: the fitted loss surface",
        "file": "parametric_fit.png",
        "caption": "Iso-loss contours of the fitted L(N, D) with the runs and the "
                   "compute-optimal frontier, and the residuals of every run by budget.",
    },
}

_GREY = "0.45"
_FAILED_Y = 0.04  # failed runs are drawn at this height (axes fraction): they have no loss


# --------------------------------------------------------------------------------------------
# shared pieces
# --------------------------------------------------------------------------------------------


def no_data_figure(title: str, reason: str, style: str = "notebook") -> Figure:
    """A small figure that says what is missing and why, in place of a plot."""
    with styled_figure(style, height_ratio=0.22) as fig:
        ax = fig.add_subplot()
        ax.set_axis_off()
        ax.set_title(title, loc="left", fontweight="bold")
        ax.text(0.5, 0.45, textwrap.fill(f"No data: {reason}", 90), ha="center", va="center",
                transform=ax.transAxes, color="0.25")
    return fig


@dataclass(frozen=True)
class BudgetColours:
    """One colour per compute budget, on a log scale, shared by every budget-coloured figure."""

    budgets: tuple[float, ...]
    norm: LogNorm
    cmap: ListedColormap

    @classmethod
    def for_budgets(cls, budgets: Sequence[float]) -> BudgetColours:
        values = tuple(sorted({float(b) for b in budgets if np.isfinite(b) and b > 0}))
        if not values:
            values = (1.0,)
        lo, hi = values[0], values[-1]
        if hi / lo < 1.5:  # a single budget (or nearly): give the scale some width
            lo, hi = lo / 1.5, hi * 1.5
        # viridis without its palest yellows, which vanish on white paper
        cmap = ListedColormap(colormaps["viridis"](np.linspace(0.0, 0.88, 256)), name="budgets")
        return cls(values, LogNorm(vmin=lo, vmax=hi), cmap)

    def __call__(self, budget: float):
        return self.cmap(self.norm(budget))

    def colorbar(self, fig: Figure, ax, **kwargs):
        cbar = fig.colorbar(ScalarMappable(norm=self.norm, cmap=self.cmap), ax=ax,
                            label="compute budget C (FLOPs)", **kwargs)
        ticks = self.budgets if len(self.budgets) <= 12 else self.budgets[:: len(self.budgets) // 8]
        cbar.ax.yaxis.set_major_locator(FixedLocator(list(ticks)))
        cbar.ax.yaxis.set_major_formatter(FuncFormatter(_flops_tick))
        cbar.ax.yaxis.set_minor_locator(NullLocator())
        return cbar


# Tick formatters are module-level functions, not lambdas, so that a Figure pickles (the
# ParallelRunner ships figures between processes).
def _flops_tick(value: float, _pos=None) -> str:
    return format_flops(value)


def _count_tick(value: float, _pos=None) -> str:
    return format_count(value, 2)


def _sig_tick(value: float, _pos=None) -> str:
    return format_sig(value)


def _sig2_tick(value: float, _pos=None) -> str:
    return format_sig(value, 2)


def _count_axis(ax, which: str = "x") -> None:
    """Log axis whose labels read 1M, 100M, 10B rather than 10^6 ..."""
    axis = ax.xaxis if which == "x" else ax.yaxis
    axis.set_major_formatter(FuncFormatter(_count_tick))


def _flops_axis(ax) -> None:
    ax.xaxis.set_major_formatter(FuncFormatter(_flops_tick))


def _legend_below(fig: Figure, handles: list, ncols: int = 3) -> None:
    if handles:
        fig.legend(handles=handles, loc="outside lower center", ncols=min(ncols, len(handles)))


def _finite(*arrays) -> np.ndarray:
    mask = np.ones(len(arrays[0]), dtype=bool)
    for a in arrays:
        mask &= np.isfinite(np.asarray(a, dtype=float))
    return mask


# --------------------------------------------------------------------------------------------
# 1. IsoFLOP profiles
# --------------------------------------------------------------------------------------------

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
    k2 = k * k
    runs = inp.runs_frame(runs)
    if runs.empty:
        return no_data_figure(title, "the run table is empty: no run has been recorded yet "
                              "(run the training and analysis pipelines first).", style)
    completed = runs[runs["completed"]]
    if completed.empty:
        return no_data_figure(title, f"none of the {len(runs)} recorded runs completed with a "
                              "finite loss; see the run inventory in the report.", style)
    laws = inp.laws_dict(scaling_laws)
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
        for budget, group in used.sort_values("model_size").groupby("budget"):
            ax.plot(group["model_size"], group["final_loss"], "o", color=colours(budget),
                    alpha=0.85, zorder=3)
        if not used.empty:
            handles.append(Line2D([], [], marker="o", ls="none", color=_GREY, label="run"))

        y_values = list(used["final_loss"]) if not used.empty else list(dropped["final_loss"])
        parabolas = optima[(optima["approach"] == "approach_2")
                           & _finite(optima["parabola_c2"], optima["parabola_c1"],
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
            handles.append(Line2D([], [], color=_GREY, label=label))

        any_unused = False
        for approach, spec in _OPTIMUM_MARKERS.items():
            rows = optima[(optima["approach"] == approach)
                          & _finite(optima["model_size"], optima["loss"])]
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
            y_values += list(rows["loss"])
            handles.append(Line2D([], [], marker=spec["marker"], ls="none",
                                  markersize=spec["size"] * k * (0.7 if spec.get("ring") else 0.8),
                                  label=spec["label"], **glyph))
        if any_unused:
            handles.append(Line2D([], [], marker="D", ls="none", alpha=0.35,
                                  markersize=10 * k * 0.8, markerfacecolor="0.75",
                                  markeredgecolor="black",
                                  label="faded: optimum not used in the fit"))

        lo, hi = float(np.nanmin(y_values)), float(np.nanmax(y_values))
        span = max(hi - lo, 0.05 * abs(hi) or 0.1)
        bottom = lo - (0.16 if not failed.empty else 0.06) * span
        top = hi + 0.08 * span

        if not dropped.empty:
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
                                  markeredgecolor=_GREY, label=label))
        if not failed.empty and failed["model_size"].notna().any():
            ax.scatter(failed["model_size"], [_FAILED_Y] * len(failed), marker="x", s=40 * k2,
                       c=[colours(b) for b in failed["budget"]], linewidths=1.6,
                       transform=ax.get_xaxis_transform(), zorder=4, clip_on=False)
            handles.append(Line2D([], [], marker="x", ls="none", color=_GREY, markeredgewidth=1.6,
                                  label="failed run (no loss; along the bottom)"))

        ax.set_ylim(bottom, top)
        ax.set_xlabel("model size N (non-embedding parameters)")
        ax.set_ylabel("final held-out loss (nats/token)")
        ax.set_title("IsoFLOP profiles: loss against model size at fixed compute")
        _count_axis(ax)
        colours.colorbar(fig, ax)
        _legend_below(fig, handles, ncols=2)
    return fig


# --------------------------------------------------------------------------------------------
# 2. Scaling laws N_opt, D_opt, L_opt against C
# --------------------------------------------------------------------------------------------

_PANELS = (
    ("n_opt", "model_size", "N_opt (parameters)", "compute-optimal model size"),
    ("d_opt", "num_tokens", "D_opt (tokens)", "compute-optimal training tokens"),
    ("l_opt", "loss", "L_opt (nats/token)", "loss at the optimum"),
)


_LAW_SYMBOLS = {"n_opt": "N", "d_opt": "D", "l_opt": "L"}


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


def scaling_laws(
    optimal_points: Any,
    scaling_law_curves: Any = None,
    scaling_laws: Any = None,
    style: str = "notebook",
) -> Figure:
    """N_opt, D_opt and L_opt against C on log axes, per approach, with bootstrap bands."""
    title = FIGURES["scaling_laws"]["title"]
    k = get_style(style).marker_scale
    k2 = k * k
    optima = inp.optimal_frame(optimal_points)
    optima = optima[optima["approach"].isin(inp.APPROACHES)]
    curves = inp.curves_frame(scaling_law_curves)
    curves = curves[curves["approach"].isin(inp.APPROACHES)]
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
        for ax, (key, column, ylabel, panel_title) in zip(axes, _PANELS, strict=True):
            ax.set_xscale("log")
            ax.set_yscale("log")
            for approach in inp.APPROACHES:
                colour = inp.APPROACH_COLOURS[approach]
                c = curves[curves["approach"] == approach]
                ok = _finite(c["compute_budget"], c[column])
                if ok.any():
                    ax.plot(c.loc[ok, "compute_budget"], c.loc[ok, column], color=colour, lw=1.6)
                    band = ok & _finite(c[f"{column}_lo"], c[f"{column}_hi"])
                    if band.any():
                        ax.fill_between(c.loc[band, "compute_budget"], c.loc[band, f"{column}_lo"],
                                        c.loc[band, f"{column}_hi"], color=colour, alpha=0.15,
                                        lw=0)
                p = optima[(optima["approach"] == approach)
                           & _finite(optima["compute_budget"], optima[column])]
                p = p[p[column] > 0]
                used = p[p["used_in_fit"]]
                ax.scatter(used["compute_budget"], used[column], color=colour, s=26 * k2, zorder=4,
                           edgecolors="white", linewidths=0.5)
                unused = p[~p["used_in_fit"]]
                ax.scatter(unused["compute_budget"], unused[column], facecolors="none",
                           edgecolors=colour, s=30 * k2, zorder=4, linewidths=1.2)
            if fitted_range and c_max > fitted_range[1]:
                ax.axvspan(fitted_range[1], c_max, color="0.5", alpha=0.08, lw=0)
                # rising laws leave the lower right empty, the falling loss the upper right
                start = max(fitted_range[1], held_out or 0.0) * 1.4
                _annotate_span(ax, start, "extrapolation", top=key == "l_opt", ha="left")
            if held_out:
                ax.axvline(held_out, color="0.25", ls=":", lw=1.2)
                _annotate_span(ax, held_out / 1.25, "held-out check", top=False, rotation=90,
                               ha="right")
            ax.set_title(panel_title)
            ax.set_xlabel("compute budget C (FLOPs)")
            ax.set_ylabel(ylabel)
            ax.xaxis.set_major_locator(_decade_locator(ax))
            _flops_axis(ax)
            if key != "l_opt":
                _count_axis(ax, "y")
            else:  # losses span less than a decade: label 1.5, 2, 3, ... rather than decades
                ax.yaxis.set_major_locator(LogLocator(base=10, subs=(1.0, 1.5, 2.0, 3.0, 4.0, 6.0),
                                                      numticks=12))
                ax.yaxis.set_minor_locator(NullLocator())
                ax.yaxis.set_major_formatter(FuncFormatter(_sig_tick))
        handles = [
            Line2D([], [], color=inp.APPROACH_COLOURS[a], marker="o", markersize=5 * k,
                   label=_law_label(laws, a))
            for a in inp.APPROACHES
            if (optima["approach"] == a).any() or (curves["approach"] == a).any()
        ]
        notes = ["shaded band: bootstrap 95% interval of the fit"]
        if (~optima["used_in_fit"]).any():
            notes.append("hollow marker: optimum not used in the fit")
        handles.append(Patch(facecolor="0.5", alpha=0.3, label=";  ".join(notes)))
        _legend_below(fig, handles, ncols=1)
    return fig


def _decade_locator(ax):
    """Decades on a compute axis, thinned to every other decade when the axis is narrow."""
    width_in = ax.get_position().width * ax.figure.get_figwidth()
    return LogLocator(base=10, numticks=8 if width_in > 3.2 else 5)


# --------------------------------------------------------------------------------------------
# 3. Tokens per parameter
# --------------------------------------------------------------------------------------------


def tokens_per_param(
    optimal_points: Any,
    scaling_law_curves: Any = None,
    predictions: Any = None,
    style: str = "notebook",
    reference: float = 20.0,
) -> Figure:
    """D/N at the optimum against C per approach, the fitted trend and the ≈20 reference."""
    title = FIGURES["tokens_per_param"]["title"]
    k = get_style(style).marker_scale
    k2 = k * k
    optima = inp.optimal_frame(optimal_points)
    optima = optima[optima["approach"].isin(inp.APPROACHES)
                    & _finite(optima["compute_budget"], optima["tokens_per_param"])]
    optima = optima[optima["tokens_per_param"] > 0]
    curves = inp.curves_frame(scaling_law_curves)
    curves = curves[curves["approach"].isin(inp.APPROACHES)]
    preds = inp.predictions_frame(predictions)
    preds = preds[preds["approach"].isin(inp.APPROACHES)]
    if optima.empty and curves.dropna(subset=["model_size", "num_tokens"]).empty:
        return no_data_figure(title, "there are no optimal points and no fitted curves to take "
                              "D/N from; run the analysis pipeline first.", style)

    with styled_figure(style, height_ratio=0.5, width_scale=0.75) as fig:
        ax = fig.add_subplot()
        ax.set_xscale("log")
        ax.set_yscale("log")
        handles: list = []
        offsets = dict(zip(inp.APPROACHES, (-0.03, 0.0, 0.03), strict=True))
        for approach in inp.APPROACHES:
            colour = inp.APPROACH_COLOURS[approach]
            drawn = False
            c = curves[(curves["approach"] == approach)
                       & _finite(curves["compute_budget"], curves["model_size"],
                                 curves["num_tokens"])]
            if not c.empty:
                ax.plot(c["compute_budget"], c["num_tokens"] / c["model_size"], color=colour,
                        lw=1.5)
                drawn = True
            p = optima[optima["approach"] == approach]
            if not p.empty:
                ax.scatter(p["compute_budget"], p["tokens_per_param"], color=colour, s=28 * k2,
                           zorder=4, edgecolors="white", linewidths=0.5)
                drawn = True
            q = preds[(preds["approach"] == approach)
                      & _finite(preds["compute_budget"], preds["tokens_per_param"])]
            if not q.empty:
                lo = (q["tokens_per_param"] - q["tokens_per_param_lo"]).clip(lower=0).fillna(0)
                hi = (q["tokens_per_param_hi"] - q["tokens_per_param"]).clip(lower=0).fillna(0)
                ax.errorbar(q["compute_budget"] * 10 ** offsets[approach], q["tokens_per_param"],
                            yerr=[lo, hi], fmt="o", mfc="white", mec=colour, ecolor=colour,
                            ms=5 * k, capsize=3 * k, zorder=4)
            if drawn:
                handles.append(Line2D([], [], color=colour, marker="o", markersize=5 * k,
                                      label=f"{inp.APPROACH_NAMES[approach]} "
                                            f"({inp.APPROACH_METHODS[approach]})"))
        if not preds.dropna(subset=["tokens_per_param"]).empty:
            handles.append(Line2D([], [], marker="o", ls="none", mfc="white", mec=_GREY,
                                  label="prediction at a target budget (95% interval)"))
        if reference:
            ax.axhline(reference, color="black", ls="--", lw=1.1, zorder=1)
            handles.append(Line2D([], [], color="black", ls="--",
                                  label=f"Chinchilla ≈ {format_sig(reference)} tokens/parameter"))
        ax.set_xlabel("compute budget C (FLOPs)")
        ax.set_ylabel("tokens per parameter D/N")
        ax.set_title("How many tokens per parameter is compute-optimal?")
        ax.xaxis.set_major_locator(_decade_locator(ax))
        _flops_axis(ax)
        ax.yaxis.set_major_formatter(FuncFormatter(_sig_tick))
        ax.yaxis.set_minor_formatter(FuncFormatter(_sig2_tick))
        ax.yaxis.set_minor_locator(_sparse_minor_locator(ax))
        _legend_below(fig, handles, ncols=2)
    return fig


def _sparse_minor_locator(ax):
    return LogLocator(base=10, subs=(2.0, 5.0), numticks=12)


# --------------------------------------------------------------------------------------------
# 4. Approach 3 surface and residuals
# --------------------------------------------------------------------------------------------


def parametric_fit(
    runs: Any,
    scaling_laws: Any,
    style: str = "notebook",
) -> Figure:
    """Iso-loss contours of the fitted L(N, D) with runs and frontier; residuals by budget."""
    title = FIGURES["parametric_fit"]["title"]
    k = get_style(style).marker_scale
    k2 = k * k
    laws = inp.laws_dict(scaling_laws)
    params = inp.surface(laws)
    if params is None:
        why = "; ".join(inp.approach_warnings(laws, "approach_3")) or (
            "scaling_laws is empty or missing" if not laws else "its parameters are null")
        return no_data_figure(title, f"Approach 3 was not fitted: {why}", style)
    try:
        analysis_api.parametric_loss(1e6, 1e7, params)
    except analysis_api.AnalysisUnavailable as exc:
        return no_data_figure(title, str(exc), style)

    runs = inp.runs_frame(runs)
    completed = runs[runs["completed"] & _finite(runs["model_size"], runs["num_tokens"])]
    excluded = inp.excluded_runs(laws, runs)
    budgets = sorted(set(runs["budget"].dropna()) | set(inp.section(laws, "meta").get("budgets")
                                                        or []))
    targets = inp.target_budgets(laws)
    if not budgets and not targets:
        return no_data_figure(title, "there are no runs and no budgets to draw the surface "
                              "over.", style)
    colours = BudgetColours.for_budgets(budgets or targets)
    c_lo = min(budgets or targets)
    c_hi = max(budgets + targets)
    frontier_c = np.geomspace(c_lo, c_hi, 80)
    frontier_n, frontier_d = analysis_api.optimal_allocation(frontier_c, params)

    n_all = np.concatenate([completed["model_size"].to_numpy(float), frontier_n])
    d_all = np.concatenate([completed["num_tokens"].to_numpy(float), frontier_d])
    n_lim = (np.nanmin(n_all) / 2.5, np.nanmax(n_all) * 2.5)
    d_lim = (np.nanmin(d_all) / 2.5, np.nanmax(d_all) * 2.5)
    grid_n, grid_d = np.meshgrid(np.geomspace(*n_lim, 220), np.geomspace(*d_lim, 220))
    grid_l = analysis_api.parametric_loss(grid_n, grid_d, params)

    with styled_figure(style, height_ratio=0.46) as fig:
        ax, res_ax = fig.subplots(1, 2, width_ratios=[1.15, 1])
        ax.set_xscale("log")
        ax.set_yscale("log")
        on_frontier = analysis_api.parametric_loss(frontier_n, frontier_d, params)
        run_losses = completed["final_loss"].to_numpy(float)
        l_lo = float(np.nanmin(on_frontier))
        l_hi = float(np.nanmax(run_losses)) if run_losses.size else float(np.nanmax(on_frontier))
        l_hi = max(l_hi, l_lo * 1.05)
        levels = MaxNLocator(nbins=12).tick_values(l_lo, l_hi)
        contours = ax.contour(grid_n, grid_d, grid_l, levels=levels, colors="0.55",
                              linewidths=0.8, zorder=1)
        ax.clabel(contours, levels=contours.levels[::2], fmt=format_sig,
                  fontsize="x-small", inline=True)
        n_line = np.geomspace(*n_lim, 50)
        for budget in budgets:
            ax.plot(n_line, budget / (6 * n_line), color=colours(budget), lw=0.8, ls=":",
                    alpha=0.8, zorder=2)
        is_excl = completed["experiment_id"].isin(excluded)
        used = completed[~is_excl]
        ax.scatter(used["model_size"], used["num_tokens"],
                   c=[colours(b) for b in used["budget"]], s=26 * k2, edgecolors="black",
                   linewidths=0.5, zorder=4)
        dropped = completed[is_excl]
        if not dropped.empty:
            ax.scatter(dropped["model_size"], dropped["num_tokens"], facecolors="none",
                       edgecolors=[colours(b) for b in dropped["budget"]], s=30 * k2,
                       linewidths=1.2, zorder=4)
        ax.plot(frontier_n, frontier_d, color=inp.APPROACH_COLOURS["approach_3"], lw=2.2 * k,
                zorder=5)
        if targets:
            t_n, t_d = analysis_api.optimal_allocation(np.asarray(targets), params)
            ax.scatter(t_n, t_d, marker="*", s=150 * k2, color=inp.APPROACH_COLOURS["approach_3"],
                       edgecolors="black", linewidths=0.6, zorder=6)
            for c, n, d in zip(targets, t_n, t_d, strict=True):
                ax.annotate(f"{format_flops(c)}", (n, d), xytext=(-6, 4),
                            textcoords="offset points", ha="right", va="bottom",
                            fontsize="small", zorder=6)
        ax.set_xlim(n_lim)
        ax.set_ylim(d_lim)
        ax.set_xlabel("model size N (parameters)")
        ax.set_ylabel("training tokens D")
        ax.set_title("Iso-loss contours of the fitted L(N, D)")
        _count_axis(ax, "x")
        _count_axis(ax, "y")

        # residuals by budget
        res_ax.set_xscale("log")
        res_ax.axhline(0, color="black", lw=0.9)
        if not completed.empty:
            predicted = analysis_api.parametric_loss(completed["model_size"],
                                                     completed["num_tokens"], params)
            residual = 100 * (completed["final_loss"].to_numpy(float) / predicted - 1)
            frame = completed.assign(residual=residual)
            for budget, group in frame[~is_excl].sort_values("model_size").groupby("budget"):
                res_ax.plot(group["model_size"], group["residual"], "o-", color=colours(budget),
                            ms=4 * k, lw=1, alpha=0.9)
            if is_excl.any():
                ex = frame[is_excl]
                res_ax.scatter(ex["model_size"], ex["residual"], facecolors="none", s=30 * k2,
                               edgecolors=[colours(b) for b in ex["budget"]], linewidths=1.2)
            rms = float(np.sqrt(np.nanmean(frame.loc[~is_excl, "residual"] ** 2)))
            res_ax.text(0.03, 0.96, f"RMS residual of fitted runs: {format_sig(rms, 2)}%",
                        transform=res_ax.transAxes, ha="left", va="top", fontsize="small",
                        bbox={"boxstyle": "round,pad=0.3", "fc": "white", "ec": "0.8"})
            ylim = max(np.nanmax(np.abs(frame.loc[~is_excl, "residual"])) * 1.35, 0.5)
            res_ax.set_ylim(-ylim, ylim)
        else:
            res_ax.text(0.5, 0.5, "No completed runs to compare with", ha="center",
                        transform=res_ax.transAxes, color="0.3")
        res_ax.set_xlabel("model size N (parameters)")
        res_ax.set_ylabel("residual: observed / fitted loss − 1 (%)")
        res_ax.set_title("Residuals by budget")
        _count_axis(res_ax, "x")
        colours.colorbar(fig, res_ax)

        fit = ",  ".join(f"{sym} = {format_sig(params[k])}" for sym, k in
                         (("E", "E"), ("A", "A"), ("B", "B"), (r"$\alpha$", "alpha"),
                          (r"$\beta$", "beta")))
        fig.suptitle(r"Approach 3: $L(N, D) = E + A/N^{\alpha} + B/D^{\beta}$"
                     f" with {fit}")
        handles = [
            Line2D([], [], marker="o", ls="none", markerfacecolor="0.75", markeredgecolor="black",
                   label="run (colour: budget)"),
            Line2D([], [], color="0.55", lw=0.8, label="iso-loss contour of the fit"),
            Line2D([], [], color=_GREY, ls=":", label="IsoFLOP line C = 6ND"),
            Line2D([], [], color=inp.APPROACH_COLOURS["approach_3"], lw=2.2 * k,
                   label="compute-optimal frontier"),
        ]
        if not dropped.empty:
            handles.insert(1, Line2D([], [], marker="o", ls="none", markerfacecolor="none",
                                     markeredgecolor=_GREY, label="run excluded from the fits"))
        if targets:
            handles.append(Line2D([], [], marker="*", ls="none", markersize=11 * k,
                                  markerfacecolor=inp.APPROACH_COLOURS["approach_3"],
                                  markeredgecolor="black", label="target budget optimum"))
        _legend_below(fig, handles, ncols=3)
    return fig
