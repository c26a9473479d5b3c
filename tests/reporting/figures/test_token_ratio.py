"""Figure 3, tokens (or the study's unit) per parameter: trend, optima, predictions and, for
tokens, the Chinchilla line."""

from __future__ import annotations

import numpy as np
import pandas as pd
from matplotlib.collections import PathCollection

from flops_fit.reporting import figures
from tests.reporting.helpers import (
    N_BUDGETS,
    all_texts,
    data_axes,
    in_unit,
    is_no_data,
    legend_texts,
)


def test_tokens_per_param_trend_points_predictions_and_chinchilla_line(study):
    fig = figures.tokens_per_param(study["optimal_points"], study["scaling_law_curves"],
                                   study["predictions"])
    (ax,) = data_axes(fig)
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
    assert sum(len(c.get_offsets()) for c in scatter) == 3 * N_BUDGETS  # used and unused
    legend = " | ".join(legend_texts(fig))
    assert "Chinchilla ≈ 20" in legend and "prediction at a target budget" in legend
    assert ax.get_ylabel() == "tokens per parameter D/N"
    assert ax.get_title() == "How many tokens per parameter is compute-optimal?"


def test_tokens_per_param_in_examples_names_them_and_drops_the_chinchilla_line(study):
    study = in_unit(study, "examples")
    fig = figures.tokens_per_param(study["optimal_points"], study["scaling_law_curves"],
                                   study["predictions"], scaling_laws=study["scaling_laws"])
    (ax,) = data_axes(fig)
    assert ax.get_ylabel() == "examples per parameter D/N"
    assert ax.get_title() == "How many examples per parameter is compute-optimal?"
    assert not [ln for ln in ax.lines if list(ln.get_ydata()) == [20.0, 20.0]]
    assert not any("Chinchilla" in t or "token" in t for t in all_texts(fig))
    # the same tables with tokens (or no scaling_laws at all) keep the reference line
    study["scaling_laws"]["data_unit"] = "tokens"
    for laws in (study["scaling_laws"], None):
        fig = figures.tokens_per_param(study["optimal_points"], study["scaling_law_curves"],
                                       study["predictions"], scaling_laws=laws)
        assert "Chinchilla ≈ 20 tokens/parameter" in legend_texts(fig)


def test_tokens_per_param_no_data():
    is_no_data(figures.tokens_per_param(pd.DataFrame(), pd.DataFrame(), None))
    fig = figures.tokens_per_param(None, None, None, scaling_laws={"data_unit": "examples"})
    assert is_no_data(fig) and fig.axes[0].get_title(loc="left") == "Examples per parameter"


def test_an_optimum_the_fit_left_out_is_a_cross_not_a_point(study):
    """Drawn solid it would read as data; hollow means a prediction here: a cross, in the
    legend too, and only near the used optima."""
    optima = study["optimal_points"].assign(used_in_fit=True)
    a1 = optima.index[optima["approach"] == "approach_1"]
    optima.loc[a1[:2], "used_in_fit"] = False
    optima.loc[a1[1], "tokens_per_param"] = 1e6 * optima.loc[a1, "tokens_per_param"].max()
    fig = figures.tokens_per_param(optima, study["scaling_law_curves"], study["predictions"])
    (ax,) = data_axes(fig)
    scatter = [c for c in ax.collections if isinstance(c, PathCollection)]
    assert sorted(len(c.get_offsets()) for c in scatter) == [1, N_BUDGETS - 2] + [N_BUDGETS] * 2
    (cross,) = [c for c in scatter if len(c.get_offsets()) == 1]
    assert np.allclose(cross.get_offsets()[0], optima.loc[a1[0], ["compute_budget",
                                                                  "tokens_per_param"]])
    assert "optimum not used in the fit" in " | ".join(legend_texts(fig))
