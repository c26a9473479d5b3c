from kedro.pipeline import Node, Pipeline

from flops_fit.pipelines.reporting.nodes import (
    plot_isoflop_curves,
    plot_loss_curves,
    plot_parametric_fit,
    plot_scaling_laws,
    plot_tokens_per_param,
    render_html_report,
    render_markdown_report,
    summarise_report,
)


def create_pipeline(**kwargs) -> Pipeline:
    return Pipeline(
        [
            Node(plot_isoflop_curves,
                 ["analysis_runs", "optimal_points", "scaling_laws", "params:reporting"],
                 ["isoflops_curves_plot", "isoflops_curves_figure"],
                 name="plot_isoflop_curves"),
            Node(plot_scaling_laws,
                 ["optimal_points", "scaling_law_curves", "scaling_laws", "params:reporting"],
                 ["scaling_laws_plot", "scaling_laws_figure"],
                 name="plot_scaling_laws"),
            Node(plot_tokens_per_param,
                 ["optimal_points", "scaling_law_curves", "predictions", "params:reporting",
                  "scaling_laws"],
                 ["tokens_per_param_plot", "tokens_per_param_figure"],
                 name="plot_tokens_per_param"),
            Node(plot_parametric_fit,
                 ["analysis_runs", "scaling_laws", "params:reporting"],
                 ["parametric_fit_plot", "parametric_fit_figure"],
                 name="plot_parametric_fit"),
            Node(plot_loss_curves,
                 ["loss_curves", "analysis_runs", "scaling_laws", "params:reporting"],
                 ["loss_curves_plot", "loss_curves_figure"],
                 name="plot_loss_curves"),
            Node(summarise_report,
                 ["analysis_runs", "scaling_laws", "optimal_points", "predictions",
                  "scaling_law_curves", "params:reporting", "validation", "study_rounds",
                  "settings_check", "loss_curves"],
                 "report_summary",
                 name="summarise_report"),
            # a steered study's rounds are drawn again there for the HTML report, which embeds
            # every figure (next_round writes study_rounds.png for the Markdown report)
            Node(render_html_report,
                 ["report_summary", "isoflops_curves_figure", "scaling_laws_figure",
                  "tokens_per_param_figure", "parametric_fit_figure", "params:reporting",
                  "loss_curves_figure", "study_rounds", "params:study"],
                 "report_html",
                 name="render_html_report"),
            Node(render_markdown_report, "report_summary", "report_markdown",
                 name="render_markdown_report"),
        ],
        tags=["reporting"],
    )
