"""What every figure of `flops_fit.reporting.figures` promises: it draws degenerate and
header-only inputs without raising."""

from __future__ import annotations

import io

import pandas as pd
from matplotlib.figure import Figure

from flops_fit.reporting import figures
from tests.reporting import synthetic_study as truth


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


def test_the_package_keeps_the_names_the_notebook_and_readme_use():
    from flops_fit.reporting.figures import isoflop_curves

    assert isoflop_curves is figures.isoflop_curves
    for name in ("isoflop_curves", "scaling_laws", "tokens_per_param", "parametric_fit",
                 "loss_curves", "no_data_figure", "FIGURES"):
        assert name in figures.__all__
    assert list(figures.FIGURES) == ["isoflops_curves", "scaling_laws", "tokens_per_param",
                                     "parametric_fit", "loss_curves"]
