"""The steered study's rounds: N_opt(C*) and the interval ratio against the compute so far,
with plain tick labels on axes that span less than a decade."""

from __future__ import annotations

from flops_fit.reporting.figures.study_rounds import study_rounds_figure
from tests.reporting.helpers import data_axes
from tests.reporting.test_summary import _study_rounds


def test_every_axis_reads_plain_numbers():
    rounds = _study_rounds(assessed_last=True)
    rounds.loc[1, ["n_opt_lo", "n_opt_hi", "interval_ratio"]] = [1.4e10, 1.9e10, 1.36]
    fig = study_rounds_figure(rounds, 1e23, 1.2)
    fig.canvas.draw()
    left, right = data_axes(fig)
    for axis in (left.xaxis, left.yaxis, right.xaxis, right.yaxis):
        labels = [t.get_text() for t in axis.get_majorticklabels()
                  + axis.get_minorticklabels() if t.get_text()]
        assert labels and not [text for text in labels if "10^" in text or "times" in text
                               or "\\" in text or "×" in text]


def test_an_axis_over_decades_labels_its_decades_only():
    rounds = _study_rounds(assessed_last=True)
    rounds.loc[1, ["flops_so_far", "n_opt_hi"]] = [1e25, 9e11]
    fig = study_rounds_figure(rounds, 1e23, 1.2)
    fig.canvas.draw()
    left, _ = data_axes(fig)
    assert not [t.get_text() for t in left.xaxis.get_minorticklabels() if t.get_text()]
    assert [t.get_text() for t in left.xaxis.get_majorticklabels() if t.get_text()]
