"""Figure 4, Approach 3: iso-loss contours of the fitted L(N, D) with the runs, the IsoFLOP
lines and the compute-optimal frontier; beside it the residual of every run by budget."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.ticker import MaxNLocator

from flops_fit.fitting.laws.bounded import named_text
from flops_fit.fitting.laws.families import DEFAULT_LAW, FAMILIES
from flops_fit.fitting.surface.compute_model import ComputeModel, optimal_allocation
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
    suptitle_within,
)
from flops_fit.reporting.formatting import DataUnit, format_flops, format_sig
from flops_fit.reporting.styles import get_style, styled_figure

_FRONTIER_COLOUR = inp.APPROACH_COLOURS["approach_3"]


@dataclass(frozen=True)
class _Surface:
    """What both panels draw: the fitted parameters, the runs, the budgets and the frontier."""

    params: dict[str, Any]
    completed: pd.DataFrame  # completed runs with finite N and D
    is_excluded: pd.Series  # over `completed`: analysis left the run out of the fits
    budgets: list[float]
    targets: list[float]
    unit: DataUnit  # what D counts
    compute: ComputeModel  # C = f(N) D: the IsoFLOP lines and the frontier
    colours: BudgetColours
    frontier_n: np.ndarray
    frontier_d: np.ndarray
    n_lim: tuple[float, float]
    d_lim: tuple[float, float]


def parametric_fit(
    runs: Any,
    scaling_laws: Any,
    style: str = "notebook",
) -> Figure:
    """Iso-loss contours of the fitted L(N, D) with runs and frontier; residuals by budget."""
    title = FIGURES["parametric_fit"]["title"]
    k = get_style(style).marker_scale
    laws = inp.laws_dict(scaling_laws)
    params = inp.surface(laws)
    if params is None:
        why = "; ".join(inp.approach_warnings(laws, "approach_3")) or (
            "scaling_laws is empty or missing" if not laws else "its parameters are null")
        return no_data_figure(title, f"Approach 3 was not fitted: {why}", style)
    runs = inp.runs_frame(runs)
    budgets = sorted(set(runs["budget"].dropna()) | set(inp.section(laws, "meta").get("budgets")
                                                        or []))
    targets = inp.target_budgets(laws)
    if not budgets and not targets:
        return no_data_figure(title, "there are no runs and no budgets to draw the surface "
                              "over.", style)
    s = _surface(params, runs, laws, budgets, targets)

    with styled_figure(style, height_ratio=0.46) as fig:
        ax, res_ax = fig.subplots(1, 2, width_ratios=[1.15, 1])
        _draw_surface(ax, s, k)
        _draw_residuals(res_ax, s, k)
        s.colours.colorbar(fig, res_ax)
        suptitle_within(fig, _title(params))
        legend_below(fig, _legend_handles(s, k), ncols=3)
    return fig


def _title(params: dict[str, Any]) -> list[str]:
    """The answering family's law, and its fitted parameters (Chinchilla's unless another
    answered; one on its bound said so), as the title's two lines."""
    law = str(params.get("law") or DEFAULT_LAW)
    values = params.get("law_params") if law != DEFAULT_LAW else None
    bounded = params.get("law_at_bound" if isinstance(values, dict) else "at_bound")
    if not isinstance(values, dict):
        values = {k: params.get(k) for k in ("E", "A", "B", "alpha", "beta")}  # the order shown
    bounded = bounded if isinstance(bounded, dict) else {}
    symbols = {"alpha": r"$\alpha$", "beta": r"$\beta$", "L_max": r"$L_{max}$"}
    fit = ",  ".join(named_text(symbols.get(k, k), format_sig(v), bounded.get(k))
                     for k, v in values.items())
    formula = str(params.get("law_formula") or FAMILIES[DEFAULT_LAW].formula)
    return [f"Approach 3 ({law}): {formula}", f"fitted: {fit}"]


def _surface(params: dict[str, Any], runs: pd.DataFrame, laws: dict[str, Any],
             budgets: list[float], targets: list[float]) -> _Surface:
    completed = runs[runs["completed"] & finite(runs["model_size"], runs["num_tokens"])]
    excluded = inp.excluded_runs(laws, runs)
    frontier_c = np.geomspace(min(budgets or targets), max(budgets + targets), 80)
    compute = inp.compute_model(laws)
    frontier_n, frontier_d = optimal_allocation(frontier_c, params, compute)
    # the axes reach 2.5x beyond every run and the whole frontier
    n_all = np.concatenate([completed["model_size"].to_numpy(float), frontier_n])
    d_all = np.concatenate([completed["num_tokens"].to_numpy(float), frontier_d])
    return _Surface(
        params=params,
        completed=completed,
        is_excluded=completed["experiment_id"].isin(excluded),
        budgets=budgets,
        targets=targets,
        unit=inp.data_unit(laws, runs),
        compute=compute,
        colours=BudgetColours.for_budgets(budgets or targets),
        frontier_n=frontier_n,
        frontier_d=frontier_d,
        n_lim=(np.nanmin(n_all) / 2.5, np.nanmax(n_all) * 2.5),
        d_lim=(np.nanmin(d_all) / 2.5, np.nanmax(d_all) * 2.5),
    )


def _draw_surface(ax, s: _Surface, k: float) -> None:
    """Iso-loss contours, an IsoFLOP line per budget, the runs, the frontier, the targets."""
    k2 = k * k
    grid_n, grid_d = np.meshgrid(np.geomspace(*s.n_lim, 220), np.geomspace(*s.d_lim, 220))
    grid_l = parametric_loss(grid_n, grid_d, s.params)
    ax.set_xscale("log")
    ax.set_yscale("log")
    on_frontier = parametric_loss(s.frontier_n, s.frontier_d, s.params)
    run_losses = s.completed["final_loss"].to_numpy(float)
    l_lo = float(np.nanmin(on_frontier))
    l_hi = float(np.nanmax(run_losses)) if run_losses.size else float(np.nanmax(on_frontier))
    l_hi = max(l_hi, l_lo * 1.05)
    levels = MaxNLocator(nbins=12).tick_values(l_lo, l_hi)
    contours = ax.contour(grid_n, grid_d, grid_l, levels=levels, colors="0.55",
                          linewidths=0.8, zorder=1)
    ax.clabel(contours, levels=contours.levels[::2], fmt=format_sig,
              fontsize="x-small", inline=True)
    n_line = np.geomspace(*s.n_lim, 50)
    for budget in s.budgets:
        ax.plot(n_line, s.compute.units(budget, n_line), color=s.colours(budget), lw=0.8, ls=":",
                alpha=0.8, zorder=2)
    used = s.completed[~s.is_excluded]
    ax.scatter(used["model_size"], used["num_tokens"],
               c=[s.colours(b) for b in used["budget"]], s=26 * k2, edgecolors="black",
               linewidths=0.5, zorder=4)
    dropped = s.completed[s.is_excluded]
    if not dropped.empty:
        ax.scatter(dropped["model_size"], dropped["num_tokens"], facecolors="none",
                   edgecolors=[s.colours(b) for b in dropped["budget"]], s=30 * k2,
                   linewidths=1.2, zorder=4)
    ax.plot(s.frontier_n, s.frontier_d, color=_FRONTIER_COLOUR, lw=2.2 * k, zorder=5)
    if s.targets:
        t_n, t_d = optimal_allocation(np.asarray(s.targets), s.params, s.compute)
        ax.scatter(t_n, t_d, marker="*", s=150 * k2, color=_FRONTIER_COLOUR,
                   edgecolors="black", linewidths=0.6, zorder=6)
        for c, n, d in zip(s.targets, t_n, t_d, strict=True):
            ax.annotate(f"{format_flops(c)}", (n, d), xytext=(-6, 4),
                        textcoords="offset points", ha="right", va="bottom",
                        fontsize="small", zorder=6)
    ax.set_xlim(s.n_lim)
    ax.set_ylim(s.d_lim)
    ax.set_xlabel("model size N (parameters)")
    ax.set_ylabel(f"training {s.unit.plural} D")
    ax.set_title("Iso-loss contours of the fitted L(N, D)")
    count_axis(ax, "x")
    count_axis(ax, "y")


def _draw_residuals(res_ax, s: _Surface, k: float) -> None:
    """Observed / fitted loss - 1 of every completed run, one line per budget."""
    k2 = k * k
    res_ax.set_xscale("log")
    res_ax.axhline(0, color="black", lw=0.9)
    completed, is_excl = s.completed, s.is_excluded
    if not completed.empty:
        predicted = parametric_loss(completed["model_size"], completed["num_tokens"], s.params)
        residual = 100 * (completed["final_loss"].to_numpy(float) / predicted - 1)
        frame = completed.assign(residual=residual)
        for budget, group in frame[~is_excl].sort_values("model_size").groupby("budget"):
            res_ax.plot(group["model_size"], group["residual"], "o-", color=s.colours(budget),
                        ms=4 * k, lw=1, alpha=0.9)
        if is_excl.any():
            ex = frame[is_excl]
            res_ax.scatter(ex["model_size"], ex["residual"], facecolors="none", s=30 * k2,
                           edgecolors=[s.colours(b) for b in ex["budget"]], linewidths=1.2)
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
    count_axis(res_ax, "x")


def _legend_handles(s: _Surface, k: float) -> list:
    handles = [
        Line2D([], [], marker="o", ls="none", markerfacecolor="0.75", markeredgecolor="black",
               label="run (colour: budget)"),
        Line2D([], [], color="0.55", lw=0.8, label="iso-loss contour of the fit"),
        Line2D([], [], color=GREY, ls=":",
               label="IsoFLOP line C = 6ND" if s.compute.is_6nd
               else "IsoFLOP line C = f(N)·D (the study's FLOPs)"),
        Line2D([], [], color=_FRONTIER_COLOUR, lw=2.2 * k, label="compute-optimal frontier"),
    ]
    if s.is_excluded.any():
        handles.insert(1, Line2D([], [], marker="o", ls="none", markerfacecolor="none",
                                 markeredgecolor=GREY, label="run excluded from the fits"))
    if s.targets:
        handles.append(Line2D([], [], marker="*", ls="none", markersize=11 * k,
                              markerfacecolor=_FRONTIER_COLOUR,
                              markeredgecolor="black", label="target budget optimum"))
    return handles
