from __future__ import annotations

import pytest
from matplotlib.figure import Figure

from flops_fit.pipelines.reporting.nodes import (
    ReportingConfig,
    ReportingConfigError,
    plot_isoflop_curves,
    plot_parametric_fit,
    plot_scaling_laws,
    plot_tokens_per_param,
    render_html_report,
    render_markdown_report,
    summarise_report,
)

PARAMS = {"style": "paper", "headline_budget": 1e23, "headline_approach": "approach_2",
          "reference_tokens_per_param": 20.0, "embed_dpi": 50, "title": "Test study"}


@pytest.mark.parametrize("change, message", [
    ({"style": "poster"}, "params:reporting.style must be one of"),
    ({"headline_approach": "approach_4"}, "params:reporting.headline_approach"),
    ({"headline_budget": -1}, "params:reporting.headline_budget must be a positive number"),
    ({"embed_dpi": "high"}, "params:reporting.embed_dpi"),
    ({"colour": "red"}, r"unknown key\(s\) \['colour'\] in params:reporting"),
])
def test_config_errors_name_the_key(change, message):
    with pytest.raises(ReportingConfigError, match=message):
        ReportingConfig.from_params({**PARAMS, **change})


def test_figure_nodes_return_one_figure_for_the_file_and_the_report(study):
    outputs = [
        plot_isoflop_curves(study["analysis_runs"], study["optimal_points"], study["scaling_laws"],
                            PARAMS),
        plot_scaling_laws(study["optimal_points"], study["scaling_law_curves"],
                          study["scaling_laws"], PARAMS),
        plot_tokens_per_param(study["optimal_points"], study["scaling_law_curves"],
                              study["predictions"], PARAMS),
        plot_parametric_fit(study["analysis_runs"], study["scaling_laws"], PARAMS),
    ]
    for for_file, for_report in outputs:
        assert isinstance(for_file, Figure) and for_file is for_report
        assert for_file.dpi == 300  # the paper style was applied


def test_report_nodes_use_the_parameters(study):
    summary = summarise_report(study["analysis_runs"], study["scaling_laws"], study["optimal_points"],
                               study["predictions"], study["scaling_law_curves"], PARAMS)
    assert summary["title"] == "Test study"
    assert summary["headline"]["approach"] == "approach_2"
    assert summary["headline"]["text"].startswith("At 1e23 FLOPs")
    fig = plot_parametric_fit(None, None, PARAMS)[0]
    html = render_html_report(summary, fig, fig, fig, fig, PARAMS)
    assert html.count("data:image/png;base64,") == 4
    assert render_markdown_report(summary).startswith("# Test study")
