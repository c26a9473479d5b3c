"""Figure 3, tokens per parameter: trend, optima, predictions and the Chinchilla line."""

from __future__ import annotations

import numpy as np
import pandas as pd
from matplotlib.collections import PathCollection

from flops_fit.reporting import figures
from tests.reporting.helpers import N_BUDGETS, data_axes, is_no_data, legend_texts


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
    assert sorted(len(c.get_offsets()) for c in scatter) == [N_BUDGETS] * 3
    legend = " | ".join(legend_texts(fig))
    assert "Chinchilla ≈ 20" in legend and "prediction at a target budget" in legend


def test_tokens_per_param_no_data():
    is_no_data(figures.tokens_per_param(pd.DataFrame(), pd.DataFrame(), None))
