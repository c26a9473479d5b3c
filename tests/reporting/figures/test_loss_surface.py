"""Figure 4, Approach 3: contours, runs, frontier, IsoFLOP lines and residuals."""

from __future__ import annotations

import numpy as np
import pytest
from matplotlib.contour import ContourSet

from flops_fit.fitting.laws.families import FAMILIES, LAW_NAMES
from flops_fit.fitting.runs.simulated import FAMILY_TRUTHS
from flops_fit.reporting import figures
from flops_fit.reporting.styles import STYLES
from tests.reporting import synthetic_study as truth
from tests.reporting.helpers import N_BUDGETS, colorbar_labels, data_axes, in_unit, is_no_data


def test_parametric_fit_contours_runs_frontier_and_residuals(study):
    fig = figures.parametric_fit(study["analysis_runs"], study["scaling_laws"])
    surface_ax, residual_ax = data_axes(fig)
    assert surface_ax.get_xscale() == "log" and surface_ax.get_yscale() == "log"
    assert "model size N" in surface_ax.get_xlabel()
    assert surface_ax.get_ylabel() == "training tokens D"
    assert any(isinstance(c, ContourSet) for c in surface_ax.collections)
    frontier = [ln for ln in surface_ax.lines if len(ln.get_xdata()) == 80]
    assert len(frontier) == 1
    n_opt, d_opt = truth.chinchilla_allocation(truth.BUDGETS[0])
    assert np.isclose(frontier[0].get_xdata()[0], n_opt)
    assert np.isclose(frontier[0].get_ydata()[0], d_opt)
    iso_flop_lines = [ln for ln in surface_ax.lines if ln.get_linestyle() == ":"]
    assert len(iso_flop_lines) == N_BUDGETS

    assert residual_ax.get_title() == "Residuals by budget"
    assert residual_ax.get_xscale() == "log"
    per_budget = [ln for ln in residual_ax.lines if len(ln.get_xdata()) > 2]
    assert len(per_budget) == N_BUDGETS
    # residuals of the synthetic runs are the 0.4% noise: all well inside 2%
    assert max(np.max(np.abs(ln.get_ydata())) for ln in per_budget) < 2.0
    assert len(colorbar_labels(fig)) == N_BUDGETS


def test_parametric_fit_in_examples_names_them(study):
    study = in_unit(study, "examples")
    surface_ax, _ = data_axes(figures.parametric_fit(study["analysis_runs"],
                                                     study["scaling_laws"]))
    assert surface_ax.get_ylabel() == "training examples D"


def test_parametric_fit_not_fitted_says_why(study):
    laws = study["scaling_laws"]
    laws["approach_3"] = {k: None for k in ("E", "A", "B", "alpha", "beta")}
    laws["approach_3"]["warnings"] = ["optimiser did not converge from any start"]
    text = is_no_data(figures.parametric_fit(study["analysis_runs"], laws))
    assert "optimiser did not converge" in text
    assert "scaling_laws is empty" in is_no_data(figures.parametric_fit(None, {}))


@pytest.mark.parametrize("style", sorted(STYLES))
@pytest.mark.parametrize("law", LAW_NAMES)
def test_the_whole_title_shows_for_every_family(study, law, style):
    """The title names the answering family's law and its parameters; the longest laws
    (interaction's, the saturating one) with an E on its bound must not run off the page."""
    a3 = study["scaling_laws"]["approach_3"]
    values = dict(FAMILY_TRUTHS[law])
    if "E" in values:  # as MNIST-1D's fits: E on its bound 0
        values["E"] = 1.364e-157
        a3["at_bound"] = a3["law_at_bound"] = {"E": {"side": "lower", "bound": 0.0,
                                                     "fit": True, "interval": [True, True]}}
    a3.update({"law": law, "law_formula": FAMILIES[law].formula, "law_params": values,
               **{FAMILIES[law].key(k): v for k, v in values.items()}})
    fig = figures.parametric_fit(study["analysis_runs"], study["scaling_laws"], style=style)
    (title,) = [t for t in fig.texts if t.get_text().startswith("Approach 3")]
    text = title.get_text()
    assert f"Approach 3 ({law}): {FAMILIES[law].formula}" in text
    assert ("E ≈ 0 (at its bound)" in text) == ("E" in values)
    box = title.get_window_extent(fig.canvas.get_renderer())
    assert box.x0 >= 0 and box.x1 <= fig.bbox.width and box.y1 <= fig.bbox.height, text
