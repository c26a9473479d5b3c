"""The loss-curve figure: one panel per budget, a line per run, and what it says without curves."""

from __future__ import annotations

import io

import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from flops_fit.reporting import figures
from flops_fit.reporting.formatting import DataUnit, LossUnit
from flops_fit.reporting.inputs import analysed_curves
from flops_fit.schema import LOSS_CURVE_COLUMNS


def curves_table(budgets=(1e11, 1e12), sizes=(1e3, 1e4, 1e5), diverge: str | None = None):
    rows = []
    for c in budgets:
        for n in sizes:
            eid = f"C{c:g}-N{n:g}"
            steps = np.unique(np.geomspace(1, 500, 12).round().astype(int))
            loss = 5.5 - np.log(steps) * 0.5
            if eid == diverge:
                loss[6:] = loss[6:] + np.arange(1, len(loss) - 5)  # turns up
            for k, (s, v) in enumerate(zip(steps, loss, strict=True)):
                rows.append({"experiment_id": eid, "replica": 0, "round": 0,
                             "compute_budget": c, "model_size": n, "num_tokens": 1e6,
                             "status": "completed", "step": s, "units": s * 2048,
                             "heldout_loss": v, "train_loss": v + 0.02 if k else np.nan})
    return pd.DataFrame(rows, columns=list(LOSS_CURVE_COLUMNS))


def _lines(fig: Figure) -> list:
    return [line for ax in fig.axes for line in ax.get_lines()]


def test_one_panel_per_budget_and_a_solid_and_dashed_line_per_run():
    fig = figures.loss_curves(curves_table(diverge="C1e+12-N10000"), unit=DataUnit.of("tokens"),
                              loss=LossUnit.of("nats"))
    panels = [ax for ax in fig.axes if ax.get_title().startswith("C = ")]
    assert len(panels) == 2
    assert panels[0].get_ylabel() == "held-out loss (nats/token)"
    assert len(_lines(fig)) == 2 * 3 * 2  # held-out and train, 3 sizes, 2 budgets
    # the diverging run is drawn as it went: its last held-out point is far above its minimum
    diverged = [ln for ln in panels[1].get_lines() if ln.get_linestyle() == "-"]
    turned_up = [ln.get_ydata()[-1] > np.nanmin(ln.get_ydata()) + 3 for ln in diverged]
    assert sum(turned_up) == 1
    fig.savefig(io.BytesIO(), format="png", dpi=30)


def test_without_curves_the_figure_says_why():
    for empty in (None, curves_table().head(0)):
        fig = figures.loss_curves(empty)
        text = " ".join(t.get_text() for ax in fig.axes for t in ax.texts)
        assert "no run recorded a loss curve" in text


def test_only_the_analysed_runs_curves_are_shown():
    table = curves_table()
    runs = pd.DataFrame({"experiment_id": ["C1e+11-N1000", "C1e+11-N10000"]})
    kept = analysed_curves(table, runs)
    assert set(kept["experiment_id"]) == set(runs["experiment_id"])
    assert analysed_curves(table, pd.DataFrame({"experiment_id": ["other"]})) is None
    assert analysed_curves(None, runs) is None
