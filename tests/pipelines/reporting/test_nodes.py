from __future__ import annotations

from typing import get_type_hints

import pytest
from kedro.validation.exceptions import ParameterValidationError
from kedro.validation.parameter_validator import ParameterValidator
from matplotlib.figure import Figure

from flops_fit.parameters.base import ParameterError
from flops_fit.parameters.reporting import ReportingConfig
from flops_fit.pipelines.reporting import create_pipeline
from flops_fit.pipelines.reporting.nodes import (
    plot_isoflop_curves,
    plot_parametric_fit,
    plot_scaling_laws,
    plot_tokens_per_param,
    render_html_report,
    render_markdown_report,
    summarise_report,
)
from tests.reporting.helpers import in_unit, legend_texts

PARAMS = {"style": "paper", "headline_budget": 1e23, "headline_approach": "approach_2",
          "reference_tokens_per_param": 20.0, "embed_dpi": 50, "title": "Test study"}


@pytest.mark.parametrize("change, message", [
    ({"style": "poster"}, "params:reporting.style: Input should be 'notebook' or 'paper'"),
    ({"headline_approach": "approach_4"}, "params:reporting.headline_approach"),
    ({"headline_budget": -1}, "params:reporting.headline_budget: Input should be greater than 0"),
    ({"embed_dpi": "high"}, "params:reporting.embed_dpi"),
    ({"colour": "red"}, r"unknown parameter 'reporting.colour'"),
    ({"stlye": "paper"}, r"unknown parameter 'reporting.stlye' \(did you mean 'reporting.style'"),
    ({"embed_dpi": float("nan")}, "params:reporting.embed_dpi: Input should be a finite number"),
    ({"reference_tokens_per_param": True}, "params:reporting.reference_tokens_per_param"),
])
def test_config_errors_name_the_key(change, message):
    with pytest.raises(ParameterError, match=message):
        ReportingConfig.from_params({**PARAMS, **change})


@pytest.mark.parametrize("node", create_pipeline().nodes, ids=lambda n: n.name)
def test_nodes_declare_the_typed_parameters(node):
    """Kedro validates `params:reporting` against the annotation before any node runs."""
    if "params:reporting" in node.inputs:
        assert ReportingConfig in get_type_hints(node.func).values()


def test_kedro_refuses_bad_parameters_before_the_run():
    validator = ParameterValidator({"reporting": create_pipeline()})
    cfg = validator.validate_raw_params({"reporting": PARAMS})["reporting"]
    assert cfg == ReportingConfig.from_params(PARAMS)
    with pytest.raises(ParameterValidationError, match="(?s)reporting.*style"):
        validator.validate_raw_params({"reporting": {**PARAMS, "style": "poster"}})


def test_nodes_take_the_model_or_a_mapping(study):
    args = (study["analysis_runs"], study["scaling_laws"])
    for params in (PARAMS, ReportingConfig.from_params(PARAMS)):
        assert plot_parametric_fit(*args, params)[0].dpi == 300
    with pytest.raises(ParameterError, match="params:reporting.style"):
        plot_parametric_fit(*args, {**PARAMS, "style": "poster"})


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


def test_the_tokens_per_param_node_takes_the_unit_from_scaling_laws(study):
    study = in_unit(study, "examples")
    args = (study["optimal_points"], study["scaling_law_curves"], study["predictions"], PARAMS)
    fig, _ = plot_tokens_per_param(*args, study["scaling_laws"])
    assert fig.axes[0].get_ylabel() == "examples per parameter D/N"
    assert not any("Chinchilla" in t for t in legend_texts(fig))
    fig, _ = plot_tokens_per_param(*args)  # without scaling_laws: tokens, as before
    assert fig.axes[0].get_ylabel() == "tokens per parameter D/N"
    assert any("Chinchilla ≈ 20" in t for t in legend_texts(fig))


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


def test_runs_reused_under_other_settings_are_said_at_the_top(study):
    args = (study["analysis_runs"], study["scaling_laws"], study["optimal_points"],
            study["predictions"], study["scaling_law_curves"], PARAMS)
    check = {"on_changed_settings": "reuse", "completed_runs": 12, "reused": True,
             "changed_runs": ["a", "b"], "differences": ["torch_backend.optimizer.lr: 0.01 → "
                                                         "0.5 (2 runs)"]}
    summary = summarise_report(*args, settings_check=check)
    text = ("2 of 12 completed runs were trained under other settings than the configuration "
            "gives now and were kept (params:training.on_changed_settings: reuse): "
            "torch_backend.optimizer.lr: 0.01 → 0.5 (2 runs)")
    assert summary["settings_reused"]["text"] == text and text in summary["warnings"]
    markdown = render_markdown_report(summary)
    top = markdown.split("## ")[0]  # before the first section: beside the headline
    assert "**Runs reused under other settings:**" in top and "0.01 → 0.5" in top
    fig = plot_parametric_fit(None, None, PARAMS)[0]
    html = render_html_report(summary, fig, fig, fig, fig, PARAMS)
    assert html.index('id="settings-reused"') < html.index('id="answer"')
    # nothing changed, or changed and trained again: the report says nothing of it
    for quiet in (None, {**check, "reused": False, "on_changed_settings": "retrain"}):
        summary = summarise_report(*args, settings_check=quiet)
        assert summary["settings_reused"] is None
        assert "reused under other settings" not in render_markdown_report(summary)


def test_the_html_report_embeds_a_steered_studys_rounds(study):
    """The HTML report is one self-contained file: a steered study's rounds figure is in it
    (the Markdown report links study_rounds.png, which next_round writes)."""
    from tests.reporting.test_summary import _study_rounds

    rounds = _study_rounds(assessed_last=True)
    args = (study["analysis_runs"], study["scaling_laws"], study["optimal_points"],
            study["predictions"], study["scaling_law_curves"], PARAMS)
    fig = plot_parametric_fit(None, None, PARAMS)[0]
    summary = summarise_report(*args, study_rounds=rounds)
    html = render_html_report(summary, fig, fig, fig, fig, PARAMS, None, rounds,
                              {"target_budget": 1e23})
    assert html.count("data:image/png;base64,") == 5 and 'alt="study rounds"' in html
    plain = render_html_report(summarise_report(*args), fig, fig, fig, fig, PARAMS, None, None)
    assert plain.count("data:image/png;base64,") == 4 and "study rounds" not in plain
