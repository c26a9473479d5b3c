"""Figure 2, scaling laws: three log panels with the laws, bands and the held-out check."""

from __future__ import annotations

import numpy as np
from matplotlib.collections import PathCollection, PolyCollection

from flops_fit.reporting import figures
from tests.reporting import synthetic_study as truth
from tests.reporting.helpers import N_BUDGETS, data_axes, in_unit, is_no_data, legend_texts


def test_scaling_laws_three_log_panels_with_bands(study):
    fig = figures.scaling_laws(study["optimal_points"], study["scaling_law_curves"],
                               study["scaling_laws"])
    axes = data_axes(fig)
    assert [ax.get_title() for ax in axes] == [
        "compute-optimal model size", "compute-optimal training tokens", "loss at the optimum"]
    for ax, ylabel in zip(axes, ("N_opt", "D_opt", "L_opt"), strict=True):
        assert ax.get_xscale() == "log" and ax.get_yscale() == "log"
        assert ax.get_xlabel() == "compute budget C (FLOPs)"
        assert ax.get_ylabel().startswith(ylabel)
        curves = [ln for ln in ax.lines if len(ln.get_xdata()) > 2]
        assert len(curves) == 3  # one fitted law per approach
        # every curve reaches the largest target budget
        assert all(np.isclose(max(ln.get_xdata()), max(truth.TARGETS)) for ln in curves)
        bands = [c for c in ax.collections if isinstance(c, PolyCollection)]
        assert len(bands) == 3  # the bootstrap band of each approach
        held_out = [ln for ln in ax.lines if list(ln.get_xdata()) == [truth.HELD_OUT] * 2]
        assert len(held_out) == 1
    legend = " | ".join(legend_texts(fig))
    n1 = study["scaling_laws"]["approach_1"]["n_opt"]["exponent"]
    assert f"{n1:.3f}" in legend
    assert "bootstrap 95%" in legend
    assert [ax.get_ylabel() for ax in axes] == [
        "N_opt (parameters)", "D_opt (tokens)", "L_opt (nats/token)"]


def test_scaling_laws_in_examples_names_them(study):
    study = in_unit(study, "examples")
    fig = figures.scaling_laws(study["optimal_points"], study["scaling_law_curves"],
                               study["scaling_laws"])
    axes = data_axes(fig)
    assert [ax.get_ylabel() for ax in axes] == [
        "N_opt (parameters)", "D_opt (examples)", "L_opt (nats/example)"]
    assert axes[1].get_title() == "compute-optimal training examples"


def test_scaling_laws_points_only_when_no_curves(study):
    fig = figures.scaling_laws(study["optimal_points"], None, None)
    for ax in data_axes(fig):
        assert not [ln for ln in ax.lines if len(ln.get_xdata()) > 2]
        assert sum(len(c.get_offsets()) for c in ax.collections
                   if isinstance(c, PathCollection)) == 3 * N_BUDGETS


def test_scaling_laws_no_data():
    assert "run the analysis pipeline" in is_no_data(figures.scaling_laws(None, None, None))


def test_an_optimum_without_a_minimum_is_not_drawn_and_does_not_set_the_scale(study):
    """A budget whose parabola opens downward leaves N = inf and a loss of ~1e8: the L_opt panel
    keeps the losses' own scale."""
    optima = study["optimal_points"].copy()
    bad = optima[optima["approach"] == "approach_2"].index[0]
    optima.loc[bad, ["model_size", "num_tokens", "loss", "used_in_fit"]] = [np.inf, 0.0, 8.7e7,
                                                                          False]
    fig = figures.scaling_laws(optima, study["scaling_law_curves"], study["scaling_laws"])
    l_opt = data_axes(fig)[2]
    assert l_opt.get_ylim()[1] < 100
    assert sum(len(c.get_offsets()) for c in l_opt.collections
               if isinstance(c, PathCollection)) == 3 * N_BUDGETS - 1


def test_the_held_out_label_sits_away_from_the_optima():
    """On the default GPT study (its optima climb to the held-out budget from the lower left
    of the N_opt and D_opt panels) the 'held-out check' label covers no optimum's marker."""
    import pandas as pd

    from flops_fit import analyse
    from tests.fitting.test_api import STUDIES, analysis_params

    result = analyse(pd.read_csv(STUDIES / "default_gpt_full_results.csv"),
                     {**analysis_params("imported"), "bootstrap": {"draws": 20}},
                     compute_model="auto")
    fig = figures.scaling_laws(result.optimal_points, result.curves, result.scaling_laws)
    renderer = fig.canvas.get_renderer()
    for ax in data_axes(fig):
        (label,) = [t for t in ax.texts if t.get_text() == "held-out check"]
        box = label.get_window_extent(renderer)
        points = np.vstack([c.get_offset_transform().transform(c.get_offsets())
                            for c in ax.collections if isinstance(c, PathCollection)])
        inside = ((points[:, 0] >= box.x0) & (points[:, 0] <= box.x1)
                  & (points[:, 1] >= box.y0) & (points[:, 1] <= box.y1))
        assert not inside.any(), ax.get_title()
