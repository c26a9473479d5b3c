"""The steered study's progress: N_opt(C*) with its interval after each round, against the
training compute spent so far, with the precision the study stops at."""

from __future__ import annotations

import numpy as np
import pandas as pd
from matplotlib.figure import Figure
from matplotlib.ticker import FuncFormatter, NullFormatter

from flops_fit.reporting.figures.common import (
    count_tick,
    flops_tick,
    no_data_figure,
    sig_tick,
)
from flops_fit.reporting.formatting import format_count, format_flops
from flops_fit.reporting.styles import styled_figure

TITLE = "Study rounds"


def study_rounds_figure(rounds: pd.DataFrame, target: float, precision: float,
                        style: str = "notebook") -> Figure:
    """Left: N_opt(C*) and its interval per round; right: the interval ratio hi/lo, both
    against cumulative training FLOPs, each point labelled with its round."""
    table = rounds.copy()
    for col in ("flops_so_far", "n_opt", "n_opt_lo", "n_opt_hi", "interval_ratio"):
        table[col] = pd.to_numeric(table[col], errors="coerce")
    table = table[np.isfinite(table["n_opt"]) & np.isfinite(table["flops_so_far"])]
    if table.empty:
        return no_data_figure(TITLE, "no round has been fitted yet: run `kedro study`, or the "
                              "next_round pipeline after analysis.", style)
    with styled_figure(style, height_ratio=0.4) as fig:
        left, right = fig.subplots(1, 2)
        x = table["flops_so_far"].to_numpy(float)
        n = table["n_opt"].to_numpy(float)
        lo = table["n_opt_lo"].to_numpy(float)
        hi = table["n_opt_hi"].to_numpy(float)
        has = np.isfinite(lo) & np.isfinite(hi)
        left.plot(x, n, "o-", color="C0", label="N_opt(C*)")
        if has.any():
            left.fill_between(x[has], lo[has], hi[has], color="C0", alpha=0.2,
                              label="interval")
        for xi, ni, k in zip(x, n, table["round"], strict=True):
            left.annotate(f"{int(k)}", (xi, ni), textcoords="offset points", xytext=(4, 4))
        left.set(xscale="log", yscale="log", xlabel="training FLOPs so far",
                 ylabel="parameters",
                 title=f"N_opt at C* = {format_flops(target)}")
        left.legend(loc="best")
        ratio = table["interval_ratio"].to_numpy(float)
        ok = np.isfinite(ratio)
        right.plot(x[ok], ratio[ok], "o-", color="C1")
        right.axhline(precision, color="grey", linestyle="--",
                      label=f"study.precision ({precision:g})")
        right.set(xscale="log", yscale="log", xlabel="training FLOPs so far",
                  ylabel="interval hi / lo", title="Interval ratio of N_opt(C*)")
        # these axes often span less than a decade, where matplotlib labels the minor ticks
        # 1.5x10^0: every tick reads as the report's numbers do
        for ax, axis, tick in ((right, "y", sig_tick), (left, "y", count_tick),
                               (left, "x", flops_tick), (right, "x", flops_tick)):
            lo, hi = ax.get_ylim() if axis == "y" else ax.get_xlim()
            ticks = ax.yaxis if axis == "y" else ax.xaxis
            ticks.set_major_formatter(FuncFormatter(tick))
            # minor ticks are labelled only within a decade, where they are the only ones
            ticks.set_minor_formatter(FuncFormatter(tick) if hi < 10 * lo else NullFormatter())
        right.legend(loc="best")
        last = table.iloc[-1]
        fig.suptitle(f"{TITLE}: {len(table)} fitted, N_opt(C*) = {format_count(last['n_opt'])}")
    return fig
