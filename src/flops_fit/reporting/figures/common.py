"""What every figure shares: the figure registry (worded for the unit of D), the "No data"
figure, one colour per compute budget, and the axis formatters.

Tick formatters are module-level functions, not lambdas, so that a Figure pickles (the
ParallelRunner ships figures between processes).
"""

from __future__ import annotations

import textwrap
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from matplotlib import colormaps
from matplotlib.cm import ScalarMappable
from matplotlib.colors import ListedColormap, LogNorm
from matplotlib.figure import Figure
from matplotlib.ticker import FixedLocator, FuncFormatter, LogLocator, NullLocator

from flops_fit.reporting.formatting import DataUnit, format_count, format_flops, format_sig
from flops_fit.reporting.styles import styled_figure

#: an optimum the fit left out, more than this factor outside the used ones' range, is not
#: drawn (a parabola with no minimum leaves an infinite N, which would set the scale)
OFF_CHART = 10.0


def figure_specs(unit: DataUnit | None = None) -> dict[str, dict[str, str]]:
    """Figure name -> (title, caption, file name under 08_reporting), worded for the unit of D.

    The file names match conf/base/catalog_reporting.yml (a test checks it); report.md links to
    them. The Chinchilla rule of thumb is for tokens: other units' captions leave it out.
    """
    u = unit or DataUnit.of()
    ratio_caption = "D/N at the optimum against compute per approach, with the fitted trend"
    ratio_caption += (" and the Chinchilla rule of thumb of about 20 tokens per parameter."
                      if u.is_tokens else ".")
    return {
        "isoflops_curves": {
            "title": "IsoFLOP profiles",
            "file": "isoflops_curves.png",
            "caption": "Final held-out loss against model size for every compute budget "
                       "(colour), with the Approach 2 parabolas and each approach's optimum per "
                       "budget.",
        },
        "scaling_laws": {
            "title": "Scaling laws",
            "file": "scaling_laws.png",
            "caption": f"Compute-optimal model size, {u.plural} and loss against compute per "
                       "approach, with the fitted power laws and their bootstrap 95% bands, "
                       "extrapolated to the largest target budget.",
        },
        "tokens_per_param": {
            "title": f"{u.capitalised} per parameter",
            "file": "tokens_per_param.png",
            "caption": ratio_caption,
        },
        "parametric_fit": {
            "title": "Approach 3: the fitted loss surface",
            "file": "parametric_fit.png",
            "caption": "Iso-loss contours of the fitted L(N, D) with the runs and the "
                       "compute-optimal frontier, and the residuals of every run by budget.",
        },
        "loss_curves": {
            "title": "Loss curves",
            "file": "loss_curves.png",
            "caption": f"Every run's held-out loss during training against the {u.plural} "
                       "trained (log-spaced evaluations on a sixteenth of the held-out set), "
                       "one panel per budget, coloured by model size; dashed: the smoothed "
                       "training loss.",
        },
    }


#: The registry for tokens (the default unit of D).
FIGURES: dict[str, dict[str, str]] = figure_specs()

#: The neutral grey of legend entries that stand for every budget at once.
GREY = "0.45"


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
        cbar.ax.yaxis.set_major_formatter(FuncFormatter(flops_tick))
        cbar.ax.yaxis.set_minor_locator(NullLocator())
        return cbar


def flops_tick(value: float, _pos=None) -> str:
    return format_flops(value)


def count_tick(value: float, _pos=None) -> str:
    return format_count(value, 2)


def sig_tick(value: float, _pos=None) -> str:
    return format_sig(value)


def sig2_tick(value: float, _pos=None) -> str:
    return format_sig(value, 2)


def count_axis(ax, which: str = "x") -> None:
    """Log axis whose labels read 1M, 100M, 10B rather than 10^6 ..."""
    axis = ax.xaxis if which == "x" else ax.yaxis
    axis.set_major_formatter(FuncFormatter(count_tick))


def flops_axis(ax) -> None:
    ax.xaxis.set_major_formatter(FuncFormatter(flops_tick))


def decade_locator(ax):
    """Decades on a compute axis, thinned to every other decade when the axis is narrow."""
    width_in = ax.get_position().width * ax.figure.get_figwidth()
    return LogLocator(base=10, numticks=8 if width_in > 3.2 else 5)


def legend_below(fig: Figure, handles: list, ncols: int = 3) -> None:
    if handles:
        fig.legend(handles=handles, loc="outside lower center", ncols=min(ncols, len(handles)))


def suptitle_within(fig: Figure, lines: Sequence[str], sep: str = ",  ") -> None:
    """The figure's title, one line per item of `lines`, each line wider than the figure split
    at `sep` (a long law and its parameters are clipped at both sides otherwise, since a
    title is centred and the constrained layout never narrows it)."""
    title = fig.suptitle("\n".join(lines))
    width = fig.bbox.width
    renderer = fig.canvas.get_renderer()
    out = []
    for line in lines:
        parts, current = line.split(sep), ""
        for part in parts:
            trial = f"{current}{sep}{part}" if current else part
            title.set_text(trial)
            if current and title.get_window_extent(renderer).width > width:
                out.append(current + sep.rstrip())
                trial = part
            current = trial
        out.append(current)
    title.set_text("\n".join(out))


def finite(*arrays) -> np.ndarray:
    """True where every one of `arrays` is finite."""
    mask = np.ones(len(arrays[0]), dtype=bool)
    for a in arrays:
        mask &= np.isfinite(np.asarray(a, dtype=float))
    return mask
