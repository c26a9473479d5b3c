"""Every run's loss curve: held-out loss against units of D trained, one panel per compute
budget, one line per run coloured by model size; the smoothed training loss dashed.

A diverging run shows as a curve that turns up, a too-short warm-up as an early bump, a run too
short to leave its plateau as a flat curve.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
from matplotlib import colormaps
from matplotlib.cm import ScalarMappable
from matplotlib.colors import LogNorm
from matplotlib.figure import Figure

from flops_fit.reporting.figures.common import no_data_figure
from flops_fit.reporting.formatting import DataUnit, LossUnit, format_flops
from flops_fit.reporting.styles import styled_figure

TITLE = "Loss curves"
#: panels per row
COLUMNS = 3


def loss_curves(curves: pd.DataFrame | None, style: str = "notebook",
                unit: DataUnit | None = None, loss: LossUnit | None = None) -> Figure:
    """One panel per budget (the `loss_curves` table: experiment_id, replica, compute_budget,
    model_size, step, units, heldout_loss, train_loss)."""
    u = unit or DataUnit.of()
    ylabel = (loss or LossUnit.of()).label("held-out loss", u)
    if curves is None or len(curves) == 0:
        return no_data_figure(TITLE, "no run recorded a loss curve (the torch backend records "
                              "them; synthetic and imported runs have none).", style)
    table = curves.copy()
    for col in ("compute_budget", "model_size", "units", "heldout_loss", "train_loss"):
        table[col] = pd.to_numeric(table[col], errors="coerce")
    table = table[np.isfinite(table["units"]) & (table["units"] > 0)]
    if table.empty:
        return no_data_figure(TITLE, "the loss curves hold no finite point.", style)
    budgets = sorted(table["compute_budget"].dropna().unique())
    rows = math.ceil(len(budgets) / COLUMNS)
    cols = min(COLUMNS, len(budgets))
    sizes = table["model_size"].to_numpy(float)
    lo, hi = np.nanmin(sizes), np.nanmax(sizes)
    norm = LogNorm(vmin=lo / 1.5, vmax=hi * 1.5) if hi / lo < 1.5 else LogNorm(vmin=lo, vmax=hi)
    cmap = colormaps["plasma"]
    with styled_figure(style, height_ratio=0.32 * rows + 0.05) as fig:
        axes = np.atleast_1d(fig.subplots(rows, cols, squeeze=False)).ravel()
        for ax, budget in zip(axes, budgets, strict=False):
            part = table[table["compute_budget"] == budget]
            for (_, _), run in part.groupby(["experiment_id", "replica"], sort=False):
                run = run.sort_values("units")
                colour = cmap(norm(float(run["model_size"].iloc[0])))
                ax.plot(run["units"], run["heldout_loss"], "o-", color=colour, ms=2.5, lw=1.2)
                if run["train_loss"].notna().any():
                    ax.plot(run["units"], run["train_loss"], "--", color=colour, lw=0.8,
                            alpha=0.7)
            ax.set(xscale="log", title=f"C = {format_flops(budget)}",
                   xlabel=f"{u.plural} trained")
            ax.set_ylabel(ylabel)
        for ax in axes[len(budgets):]:
            ax.set_visible(False)
        fig.colorbar(ScalarMappable(norm=norm, cmap=cmap), ax=list(axes[: len(budgets)]),
                     label="model size N (parameters)")
        fig.suptitle(f"{TITLE}: {table['experiment_id'].nunique()} runs "
                     "(solid: held-out loss; dashed: smoothed training loss)")
    return fig
