"""Each figure: the right axes, scales, labels and number of series for a known study, a clear
"No data" figure for missing input, and styles that never touch the global rcParams."""

from __future__ import annotations

import io
import pickle

import matplotlib as mpl
import numpy as np
import pandas as pd
import pytest
from matplotlib.collections import PathCollection, PolyCollection
from matplotlib.contour import ContourSet
from matplotlib.figure import Figure

from flops_fit.reporting import figures
from flops_fit.reporting.report import render_html, render_markdown, summarise_study
from tests.reporting import synthetic_study as truth

N_BUDGETS = len(truth.BUDGETS)


def _legend_texts(fig: Figure) -> list[str]:
    return [t.get_text() for legend in fig.legends for t in legend.get_texts()]


def _data_axes(fig: Figure) -> list:
    """The plotting axes, without colour bars."""
    return [ax for ax in fig.axes if ax.get_label() != "<colorbar>"]


def _colorbar_labels(fig: Figure) -> list[str]:
    bars = [ax for ax in fig.axes if ax.get_label() == "<colorbar>"]
    assert len(bars) == 1
    return [t.get_text() for t in bars[0].get_yticklabels()]


def _is_no_data(fig: Figure) -> str:
    (ax,) = fig.axes
    assert not ax.axison
    text = " ".join(t.get_text() for t in ax.texts)
    assert text.startswith("No data: ")
    return text


# ---- 1. IsoFLOP profiles -------------------------------------------------------------------


def test_isoflop_curves_draws_runs_parabolas_optima_and_failures(study):
    fig = figures.isoflop_curves(study["analysis_runs"], study["optimal_points"],
                                 study["scaling_laws"])
    assert isinstance(fig, Figure)
    (ax,) = _data_axes(fig)
    assert ax.get_xscale() == "log" and ax.get_yscale() == "linear"
    assert "model size N" in ax.get_xlabel()
    assert "loss" in ax.get_ylabel()

    markers = [ln for ln in ax.lines if ln.get_linestyle() == "None"]
    parabolas = [ln for ln in ax.lines if ln.get_linestyle() != "None"]
    assert len(markers) == N_BUDGETS  # one run series per budget
    assert len(parabolas) == N_BUDGETS
    assert sum(ln.get_linestyle() == "--" for ln in parabolas) == 1  # the held-out budget
    # completed runs that analysis used: 63 planned - 2 failed - 1 excluded
    assert sum(len(ln.get_xdata()) for ln in markers) == len(study["analysis_runs"]) - 3

    point_counts = sorted(len(c.get_offsets()) for c in ax.collections
                          if isinstance(c, PathCollection))
    # per approach: the 6 fitted optima and, faded, the held-out budget's; 2 failed runs; the
    # off-scale excluded outlier (a triangle only) and an empty scatter of on-scale exclusions
    assert point_counts == [0, 1, 1, 1, 1, 2, N_BUDGETS - 1, N_BUDGETS - 1, N_BUDGETS - 1]

    legend = " | ".join(_legend_texts(fig))
    for phrase in ("Approach 1 optimum", "Approach 2 optimum", "Approach 3 optimum",
                   "Approach 2 parabola", "excluded", "failed run", "faded: optimum not used"):
        assert phrase in legend
    labels = _colorbar_labels(fig)
    assert labels[0] == "1e17" and labels[-1] == "1e21" and len(labels) == N_BUDGETS


def test_isoflop_curves_from_a_results_table_without_optima(study):
    fig = figures.isoflop_curves(study["results"])  # no budget / used_in_fit columns
    (ax,) = _data_axes(fig)
    assert len([ln for ln in ax.lines if ln.get_linestyle() == "None"]) == N_BUDGETS
    assert not [ln for ln in ax.lines if ln.get_linestyle() != "None"]


@pytest.mark.parametrize("results, why", [
    (None, "run table is empty"),
    (pd.DataFrame(), "run table is empty"),
    (pd.DataFrame({"experiment_id": ["a"], "status": ["failed"], "final_loss": [np.nan],
                   "compute_budget": [1e18], "model_size": [1e6]}), "none of the 1 recorded"),
])
def test_isoflop_curves_no_data(results, why):
    assert why in _is_no_data(figures.isoflop_curves(results, None, None))


# ---- 2. scaling laws -------------------------------------------------------------------------


def test_scaling_laws_three_log_panels_with_bands(study):
    fig = figures.scaling_laws(study["optimal_points"], study["scaling_law_curves"],
                               study["scaling_laws"])
    axes = _data_axes(fig)
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
    legend = " | ".join(_legend_texts(fig))
    n1 = study["scaling_laws"]["approach_1"]["n_opt"]["exponent"]
    assert f"{n1:.3f}" in legend
    assert "bootstrap 95%" in legend


def test_scaling_laws_points_only_when_no_curves(study):
    fig = figures.scaling_laws(study["optimal_points"], None, None)
    for ax in _data_axes(fig):
        assert not [ln for ln in ax.lines if len(ln.get_xdata()) > 2]
        assert sum(len(c.get_offsets()) for c in ax.collections
                   if isinstance(c, PathCollection)) == 3 * N_BUDGETS


def test_scaling_laws_no_data():
    assert "run the analysis pipeline" in _is_no_data(figures.scaling_laws(None, None, None))


def test_scaling_laws_with_curves_but_a_header_only_optimal_points_csv(study, tmp_path):
    """optimal_points.csv with its header and no rows (read back by the catalog) still draws."""
    path = tmp_path / "optimal_points.csv"
    study["optimal_points"].head(0).to_csv(path, index=False)
    empty = pd.read_csv(path)
    for fig in (
        figures.scaling_laws(empty, study["scaling_law_curves"], study["scaling_laws"]),
        figures.tokens_per_param(empty, study["scaling_law_curves"], None),
        figures.isoflop_curves(study["analysis_runs"], empty, study["scaling_laws"]),
    ):
        assert isinstance(fig, Figure)
        fig.savefig(io.BytesIO(), format="png", dpi=30)


# ---- 3. tokens per parameter -----------------------------------------------------------------


def test_tokens_per_param_trend_points_predictions_and_chinchilla_line(study):
    fig = figures.tokens_per_param(study["optimal_points"], study["scaling_law_curves"],
                                   study["predictions"])
    (ax,) = _data_axes(fig)
    assert ax.get_xscale() == "log" and ax.get_yscale() == "log"
    assert "D/N" in ax.get_ylabel() and "FLOPs" in ax.get_xlabel()
    reference = [ln for ln in ax.lines if list(ln.get_ydata()) == [20.0, 20.0]]
    assert len(reference) == 1
    trends = [ln for ln in ax.lines if len(ln.get_xdata()) > 3]
    assert len(trends) == 3
    # the trend is D/N of the curves
    a3 = study["scaling_law_curves"].query("approach == 'approach_3'")
    assert any(np.allclose(ln.get_ydata(), a3.num_tokens / a3.model_size) for ln in trends)
    scatter = [c for c in ax.collections if isinstance(c, PathCollection)]
    assert sorted(len(c.get_offsets()) for c in scatter) == [N_BUDGETS] * 3
    legend = " | ".join(_legend_texts(fig))
    assert "Chinchilla ≈ 20" in legend and "prediction at a target budget" in legend


def test_tokens_per_param_no_data():
    _is_no_data(figures.tokens_per_param(pd.DataFrame(), pd.DataFrame(), None))


# ---- 4. Approach 3 surface -------------------------------------------------------------------


def test_parametric_fit_contours_runs_frontier_and_residuals(study):
    fig = figures.parametric_fit(study["analysis_runs"], study["scaling_laws"])
    surface_ax, residual_ax = _data_axes(fig)
    assert surface_ax.get_xscale() == "log" and surface_ax.get_yscale() == "log"
    assert "model size N" in surface_ax.get_xlabel()
    assert "tokens D" in surface_ax.get_ylabel()
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
    assert len(_colorbar_labels(fig)) == N_BUDGETS


def test_parametric_fit_not_fitted_says_why(study):
    laws = study["scaling_laws"]
    laws["approach_3"] = {k: None for k in ("E", "A", "B", "alpha", "beta")}
    laws["approach_3"]["warnings"] = ["optimiser did not converge from any start"]
    text = _is_no_data(figures.parametric_fit(study["analysis_runs"], laws))
    assert "optimiser did not converge" in text
    assert "scaling_laws is empty" in _is_no_data(figures.parametric_fit(None, {}))


# ---- styles ------------------------------------------------------------------------------------


def _all_figures(study, style):
    return [
        figures.isoflop_curves(study["analysis_runs"], study["optimal_points"], study["scaling_laws"],
                               style),
        figures.scaling_laws(study["optimal_points"], study["scaling_law_curves"],
                             study["scaling_laws"], style),
        figures.tokens_per_param(study["optimal_points"], study["scaling_law_curves"],
                                 study["predictions"], style),
        figures.parametric_fit(study["analysis_runs"], study["scaling_laws"], style),
        figures.no_data_figure("t", "why", style),
    ]


def test_styles_are_local_to_each_figure(study):
    before = dict(mpl.rcParams)
    paper = _all_figures(study, "paper")
    notebook = _all_figures(study, "notebook")
    summary = summarise_study(study["analysis_runs"], study["scaling_laws"], study["optimal_points"],
                              study["predictions"], study["scaling_law_curves"])
    render_html(summary, dict(zip(figures.FIGURES, paper, strict=False)))
    render_markdown(summary)
    assert dict(mpl.rcParams) == before

    for fig in paper + notebook:  # ParallelRunner ships figures between processes
        assert pickle.loads(pickle.dumps(fig)).dpi == fig.dpi
    for fig in paper:
        assert fig.dpi == 300
    for fig in notebook:
        assert fig.dpi == 110
    # the style survives a save made later, outside any style context (as the catalog does)
    for fig, family in ((paper[0], "serif"), (notebook[0], "sans-serif")):
        fig.savefig(io.BytesIO(), format="png")
        ax = _data_axes(fig)[0]
        assert ax.get_xticklabels()[0].get_fontfamily() == [family]
        assert ax.xaxis.label.get_fontfamily() == [family]


def test_unknown_style_is_rejected(study):
    with pytest.raises(ValueError, match="unknown figure style 'poster'"):
        figures.no_data_figure("t", "why", "poster")


def test_degenerate_studies_still_draw(study):
    """One budget, one run, an approach with no rows, a law without intervals: no crash."""
    one_budget = study["analysis_runs"][study["analysis_runs"].compute_budget == truth.BUDGETS[2]]
    one_run = one_budget.head(1)
    optima = study["optimal_points"]
    only_a2 = optima[optima.approach == "approach_2"].head(1)
    laws = study["scaling_laws"]
    laws["approach_1"]["n_opt"] = {"coefficient": 1.0, "exponent": 0.5, "r2": None}
    curves = study["scaling_law_curves"].query("approach == 'approach_2'")
    for results in (one_budget, one_run):
        for fig in (
            figures.isoflop_curves(results, only_a2, laws),
            figures.scaling_laws(only_a2, curves, laws),
            figures.tokens_per_param(only_a2, None, None),
            figures.parametric_fit(results, laws),
        ):
            assert isinstance(fig, Figure)
            fig.savefig(io.BytesIO(), format="png", dpi=30)
