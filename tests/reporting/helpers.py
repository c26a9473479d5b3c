"""Shared checks for the reporting tests: reading a Figure's artists, and the study's summary."""

from __future__ import annotations

import numpy as np
from matplotlib.figure import Figure

from flops_fit.reporting.summary import summarise_study
from tests.reporting import synthetic_study as truth

N_BUDGETS = len(truth.BUDGETS)


def legend_texts(fig: Figure) -> list[str]:
    return [t.get_text() for legend in fig.legends for t in legend.get_texts()]


def data_axes(fig: Figure) -> list:
    """The plotting axes, without colour bars."""
    return [ax for ax in fig.axes if ax.get_label() != "<colorbar>"]


def colorbar_labels(fig: Figure) -> list[str]:
    bars = [ax for ax in fig.axes if ax.get_label() == "<colorbar>"]
    assert len(bars) == 1
    return [t.get_text() for t in bars[0].get_yticklabels()]


def is_no_data(fig: Figure) -> str:
    """Asserts `fig` is the "No data" figure; returns its text."""
    (ax,) = fig.axes
    assert not ax.axison
    text = " ".join(t.get_text() for t in ax.texts)
    assert text.startswith("No data: ")
    return text


def summary_of(study, **kwargs):
    return summarise_study(study["analysis_runs"], study["scaling_laws"], study["optimal_points"],
                           study["predictions"], study["scaling_law_curves"], **kwargs)


def prediction(study, approach, budget):
    p = study["predictions"]
    return p[(p.approach == approach) & np.isclose(p.compute_budget, budget)].iloc[0]


def in_unit(study, unit: str = "examples"):
    """The study with D counted in `unit`: scaling_laws' data_unit and the runs' column."""
    study["scaling_laws"]["data_unit"] = unit
    study["analysis_runs"]["data_unit"] = unit
    return study


def with_loss_unit(study, unit: str | None):
    """The study whose loss measures `unit` (None: the loss declared none), in scaling_laws and
    in the runs' column, as analysis writes them."""
    study["scaling_laws"]["loss_unit"] = unit or "loss"
    study["analysis_runs"]["loss_unit"] = unit or "loss"
    return study


def all_texts(fig: Figure) -> list[str]:
    """Every non-empty text of the figure: titles, axis labels, legends, annotations."""
    from matplotlib.text import Text

    return [t.get_text() for t in fig.findobj(Text) if t.get_text()]
