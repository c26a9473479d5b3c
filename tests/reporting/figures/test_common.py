"""The pieces every figure shares: the "No data" figure, one colour per budget, tick labels."""

from __future__ import annotations

import re

import matplotlib.pyplot as plt
import numpy as np
import pytest
from matplotlib.figure import Figure

from flops_fit.reporting.figures.common import (
    FIGURES,
    BudgetColours,
    count_tick,
    figure_specs,
    finite,
    flops_tick,
    no_data_figure,
    sig_tick,
    suptitle_within,
)
from flops_fit.reporting.formatting import DataUnit
from flops_fit.reporting.styles import styled_figure
from tests.reporting.helpers import is_no_data


def test_no_data_figure_says_why_and_is_not_registered_with_pyplot():
    before = plt.get_fignums()
    fig = no_data_figure("IsoFLOP profiles", "nothing was trained")
    assert isinstance(fig, Figure)
    assert is_no_data(fig) == "No data: nothing was trained"
    assert fig.axes[0].get_title(loc="left") == "IsoFLOP profiles"
    assert plt.get_fignums() == before


def test_budget_colours_are_log_scaled_and_ordered():
    colours = BudgetColours.for_budgets([1e19, 1e17, np.nan, -1.0, 1e21, 1e17])
    assert colours.budgets == (1e17, 1e19, 1e21)  # sorted, unique, finite and positive only
    assert colours.norm.vmin == 1e17 and colours.norm.vmax == 1e21
    assert np.isclose(colours.norm(1e19), 0.5)  # log scale: the middle decade is the middle
    assert colours(1e17) != colours(1e21)


@pytest.mark.parametrize("budgets", [[1e18], [], [np.nan]])
def test_budget_colours_widen_a_single_or_missing_budget(budgets):
    colours = BudgetColours.for_budgets(budgets)
    assert colours.norm.vmax / colours.norm.vmin == pytest.approx(1.5**2)


def test_tick_labels_read_like_people_write_them():
    assert flops_tick(1e21) == "1e21"
    assert count_tick(3.2e9) == "3.2B"
    assert sig_tick(0.3412) == "0.341"


def test_finite_is_true_where_every_array_is_finite():
    assert finite([1.0, np.nan, 3.0], [1.0, 2.0, np.inf]).tolist() == [True, False, False]


def test_every_figure_names_a_png_with_a_title_and_a_caption():
    for spec in FIGURES.values():
        assert spec["file"].endswith(".png") and spec["title"] and spec["caption"]


def test_figure_specs_name_the_unit_and_keep_chinchilla_for_tokens():
    assert figure_specs() == figure_specs(DataUnit.of("tokens")) == FIGURES
    assert FIGURES["tokens_per_param"]["title"] == "Tokens per parameter"
    assert "about 20 tokens per parameter" in FIGURES["tokens_per_param"]["caption"]
    specs = figure_specs(DataUnit.of("examples"))
    assert [s["file"] for s in specs.values()] == [s["file"] for s in FIGURES.values()]
    assert specs["tokens_per_param"]["title"] == "Examples per parameter"
    assert "Chinchilla" not in specs["tokens_per_param"]["caption"]
    assert "model size, examples and loss" in specs["scaling_laws"]["caption"]
    assert not any("token" in s["title"] + s["caption"] for s in specs.values())


def test_a_title_line_wider_than_the_figure_is_split_between_its_items():
    items = [f"p{i} = {1.234e-5 * i:.3g}" for i in range(1, 13)]
    with styled_figure("paper", width_scale=0.5) as fig:
        fig.add_subplot()
        suptitle_within(fig, ["Approach 3 (kaplan): L = (A/N^α + B/D)^q", ",  ".join(items)])
    (title,) = fig.texts
    lines = title.get_text().split("\n")
    assert lines[0] == "Approach 3 (kaplan): L = (A/N^α + B/D)^q" and len(lines) > 2
    assert re.split(r",\s+", " ".join(lines[1:])) == items  # split between items only
    box = title.get_window_extent(fig.canvas.get_renderer())
    assert box.x0 >= 0 and box.x1 <= fig.bbox.width
