"""Figure 1, IsoFLOP profiles: runs, parabolas, optima, exclusions and failures."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from matplotlib.collections import PathCollection
from matplotlib.figure import Figure

from flops_fit.reporting import figures
from tests.reporting.helpers import (
    N_BUDGETS,
    colorbar_labels,
    data_axes,
    in_unit,
    is_no_data,
    legend_texts,
)


def test_isoflop_curves_draws_runs_parabolas_optima_and_failures(study):
    fig = figures.isoflop_curves(study["analysis_runs"], study["optimal_points"],
                                 study["scaling_laws"])
    assert isinstance(fig, Figure)
    (ax,) = data_axes(fig)
    assert ax.get_xscale() == "log" and ax.get_yscale() == "linear"
    assert "model size N" in ax.get_xlabel()
    assert ax.get_ylabel() == "final held-out loss (nats/token)"

    markers = [ln for ln in ax.lines if ln.get_linestyle() == "None"]
    parabolas = [ln for ln in ax.lines if ln.get_linestyle() in ("-", "--")]
    profiles = [ln for ln in ax.lines if ln.get_linestyle() == "-."]
    assert len(markers) == N_BUDGETS  # one run series per budget
    assert len(parabolas) == N_BUDGETS
    assert len(profiles) == N_BUDGETS  # Approach 3's surface along every budget
    assert sum(ln.get_linestyle() == "--" for ln in parabolas) == 1  # the held-out budget
    # completed runs that analysis used: 63 planned - 2 failed - 1 excluded
    assert sum(len(ln.get_xdata()) for ln in markers) == len(study["analysis_runs"]) - 3

    point_counts = sorted(len(c.get_offsets()) for c in ax.collections
                          if isinstance(c, PathCollection))
    # per approach: the 6 fitted optima and, faded, the held-out budget's; 2 failed runs; the
    # off-scale excluded outlier (a triangle only) and an empty scatter of on-scale exclusions
    assert point_counts == [0, 1, 1, 1, 1, 2, N_BUDGETS - 1, N_BUDGETS - 1, N_BUDGETS - 1]

    legend = " | ".join(legend_texts(fig))
    for phrase in ("Approach 1 optimum", "Approach 2 optimum", "Approach 3 optimum",
                   "Approach 2 parabola", "Approach 3 surface along the budget", "excluded", "failed run", "faded: optimum not used"):
        assert phrase in legend
    labels = colorbar_labels(fig)
    assert labels[0] == "1e17" and labels[-1] == "1e21" and len(labels) == N_BUDGETS


def test_isoflop_curves_from_a_results_table_without_optima(study):
    fig = figures.isoflop_curves(study["results"])  # no budget / used_in_fit columns
    (ax,) = data_axes(fig)
    assert len([ln for ln in ax.lines if ln.get_linestyle() == "None"]) == N_BUDGETS
    assert not [ln for ln in ax.lines if ln.get_linestyle() != "None"]


def test_approach_3_optima_lie_on_their_surface_profiles(study):
    fig = figures.isoflop_curves(study["analysis_runs"], study["optimal_points"],
                                 study["scaling_laws"])
    (ax,) = data_axes(fig)
    profiles = [ln for ln in ax.lines if ln.get_linestyle() == "-."]
    optima = study["optimal_points"]
    a3 = optima[optima["approach"] == "approach_3"]
    for row in a3.itertuples():
        # the profile through this budget's optimum: its minimum is the optimum itself
        line = min(profiles, key=lambda ln: abs(np.interp(np.log(row.model_size),
                                                           np.log(ln.get_xdata()),
                                                           ln.get_ydata()) - row.loss))
        y = np.interp(np.log(row.model_size), np.log(line.get_xdata()), line.get_ydata())
        assert y == pytest.approx(row.loss, rel=1e-4)
        assert np.min(line.get_ydata()) >= row.loss - 1e-9


@pytest.mark.parametrize("results, why", [
    (None, "run table is empty"),
    (pd.DataFrame(), "run table is empty"),
    (pd.DataFrame({"experiment_id": ["a"], "status": ["failed"], "final_loss": [np.nan],
                   "compute_budget": [1e18], "model_size": [1e6]}), "none of the 1 recorded"),
])
def test_isoflop_curves_no_data(results, why):
    assert why in is_no_data(figures.isoflop_curves(results, None, None))


@pytest.mark.parametrize("laws_say", [True, False])
def test_isoflop_curves_in_examples_measure_the_loss_per_example(study, laws_say):
    study = in_unit(study, "examples")
    if not laws_say:  # scaling_laws from before units: the runs' data_unit column says it
        del study["scaling_laws"]["data_unit"]
    fig = figures.isoflop_curves(study["analysis_runs"], study["optimal_points"],
                                 study["scaling_laws"])
    (ax,) = data_axes(fig)
    assert ax.get_ylabel() == "final held-out loss (nats/example)"
