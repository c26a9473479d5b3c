"""Figure styles apply to one figure at a time and never to matplotlib's global rcParams."""

from __future__ import annotations

import io
import pickle

import matplotlib as mpl
import matplotlib.pyplot as plt
import pytest

from flops_fit.reporting import figures
from flops_fit.reporting.render import render_html, render_markdown
from flops_fit.reporting.styles import STYLES, get_style, styled_figure
from flops_fit.reporting.summary import summarise_study
from tests.reporting.helpers import data_axes


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
    # embedded small: the check is on rcParams, not on the pixels of 300-dpi figures
    render_html(summary, dict(zip(figures.FIGURES, paper, strict=False)), embed_dpi=30)
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
        ax = data_axes(fig)[0]
        assert ax.get_xticklabels()[0].get_fontfamily() == [family]
        assert ax.xaxis.label.get_fontfamily() == [family]


def test_unknown_style_is_rejected(study):
    with pytest.raises(ValueError, match="unknown figure style 'poster'"):
        figures.no_data_figure("t", "why", "poster")



def test_get_style_names_the_parameter_key():
    assert get_style("paper") is STYLES["paper"]
    with pytest.raises(ValueError, match=r"choose one of \['notebook', 'paper'\] "
                                         r"\(params:reporting.style\)"):
        get_style("poster")


@pytest.mark.parametrize("style, dpi, width, family", [
    ("notebook", 110, 12.0, "sans-serif"), ("paper", 300, 7.0, "serif"),
])
def test_styled_figure_sizes_and_fonts(style, dpi, width, family):
    before = dict(mpl.rcParams)
    figures_before = plt.get_fignums()
    with styled_figure(style, height_ratio=0.5, width_scale=0.5) as fig:
        assert mpl.rcParams["font.family"] == [family]  # in force inside the context
        ax = fig.add_subplot()
        ax.set_xlabel("x")
    assert dict(mpl.rcParams) == before  # and only there
    assert plt.get_fignums() == figures_before  # not registered with pyplot
    assert fig.dpi == dpi
    assert tuple(fig.get_size_inches()) == pytest.approx((width * 0.5, width * 0.25))
    assert fig.get_layout_engine() is not None  # constrained layout
    assert ax.xaxis.label.get_fontfamily() == [family]


def test_paper_style_embeds_truetype_fonts():
    assert STYLES["paper"].rc["pdf.fonttype"] == 42
    assert STYLES["paper"].marker_scale < STYLES["notebook"].marker_scale
