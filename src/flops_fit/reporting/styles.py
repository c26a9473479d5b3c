"""Figure styles, applied to one figure at a time and never to matplotlib's global rcParams.

`paper`: serif type, compact sizes for a two-column page, 300 dpi, TrueType fonts embedded
(vector exports stay editable). `notebook`: sans-serif, larger type, screen resolution.

A figure is built inside `styled_figure(...)`, which wraps `matplotlib.rc_context` and draws the
figure once before leaving the context so that everything matplotlib creates lazily (tick labels,
the constrained layout) is created under the style. The figure's own dpi carries the resolution,
so a later `savefig` (by the catalog's MatplotlibDataset) needs no global state.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import matplotlib as mpl
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure


@dataclass(frozen=True)
class FigureStyle:
    name: str
    dpi: int
    width: float  # inches for a full-width figure
    marker_scale: float  # scatter markers and thick lines, relative to the notebook style
    rc: dict[str, Any] = field(default_factory=dict)


_COMMON_RC: dict[str, Any] = {
    "axes.grid": True,
    "grid.alpha": 0.25,
    "grid.linewidth": 0.6,
    "axes.spines.top": False,
    "axes.spines.right": False,
    "legend.frameon": True,
    "legend.framealpha": 0.9,
    "legend.edgecolor": "0.8",
    "image.cmap": "viridis",
}

STYLES: dict[str, FigureStyle] = {
    "notebook": FigureStyle(
        name="notebook",
        dpi=110,
        width=12.0,
        marker_scale=1.0,
        rc={
            **_COMMON_RC,
            "font.family": "sans-serif",
            "font.size": 11,
            "axes.titlesize": 12,
            "axes.labelsize": 11,
            "legend.fontsize": 9.5,
            "xtick.labelsize": 10,
            "ytick.labelsize": 10,
            "lines.linewidth": 1.8,
            "lines.markersize": 6,
        },
    ),
    "paper": FigureStyle(
        name="paper",
        dpi=300,
        width=7.0,
        marker_scale=0.62,
        rc={
            **_COMMON_RC,
            "font.family": "serif",
            "font.serif": ["DejaVu Serif", "Times New Roman", "Times", "serif"],
            "mathtext.fontset": "dejavuserif",
            "font.size": 8,
            "axes.titlesize": 8.5,
            "axes.labelsize": 8,
            "legend.fontsize": 6.5,
            "xtick.labelsize": 7,
            "ytick.labelsize": 7,
            "lines.linewidth": 1.1,
            "lines.markersize": 4,
            "axes.linewidth": 0.6,
            "pdf.fonttype": 42,
            "ps.fonttype": 42,
            "svg.fonttype": "none",
        },
    ),
}


def get_style(name: str) -> FigureStyle:
    try:
        return STYLES[name]
    except KeyError:
        raise ValueError(
            f"unknown figure style {name!r}; choose one of {sorted(STYLES)} (params:reporting.style)"
        ) from None


@contextmanager
def styled_figure(style: str, height_ratio: float = 0.45, width_scale: float = 1.0,
                  ) -> Iterator[Figure]:
    """A constrained-layout Figure whose fonts, sizes and dpi follow `style`.

    The figure is `height_ratio` times as tall as it is wide. It is not registered with pyplot
    (nothing to close, nothing leaks between nodes) and has an Agg canvas of its own.
    """
    spec = get_style(style)
    width = spec.width * width_scale
    with mpl.rc_context(spec.rc):
        fig = Figure(figsize=(width, width * height_ratio), dpi=spec.dpi, layout="constrained")
        FigureCanvasAgg(fig)
        yield fig
        # Realise tick labels, legends and the layout while the style is still in force.
        fig.draw_without_rendering()
