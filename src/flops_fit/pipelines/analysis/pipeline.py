from kedro.pipeline import Node, Pipeline

from flops_fit.pipelines.analysis.nodes import (
    check_extrapolation_to_largest_budget,
    describe_compute_model,
    fit_isoflop_power_laws,
    fit_parametric_loss_surface,
    predict_target_budgets,
    prepare_analysis_runs,
    summarise_scaling_laws,
    tabulate_bootstrap_draws,
    tabulate_optimal_points,
)


def create_pipeline(**kwargs) -> Pipeline:
    return Pipeline(
        [
            Node(
                prepare_analysis_runs,
                ["results", "params:analysis"],
                ["analysis_runs", "analysis_runs_summary"],
                name="prepare_analysis_runs",
            ),
            Node(
                describe_compute_model,
                ["analysis_runs", "params:analysis"],
                "compute_model",
                name="describe_compute_model",
            ),
            Node(
                fit_isoflop_power_laws,
                ["analysis_runs", "params:analysis"],
                "isoflop_fits",
                name="fit_isoflop_power_laws",
            ),
            Node(
                fit_parametric_loss_surface,
                ["analysis_runs", "compute_model", "params:analysis"],
                "parametric_surface",
                name="fit_parametric_loss_surface",
            ),
            Node(
                check_extrapolation_to_largest_budget,
                ["analysis_runs", "compute_model", "parametric_surface", "params:analysis"],
                "extrapolation_check",
                name="check_extrapolation_to_largest_budget",
            ),
            Node(
                tabulate_bootstrap_draws,
                ["isoflop_fits", "parametric_surface"],
                "bootstrap_draws",
                name="tabulate_bootstrap_draws",
            ),
            Node(
                tabulate_optimal_points,
                ["analysis_runs", "isoflop_fits", "parametric_surface", "compute_model"],
                "optimal_points",
                name="tabulate_optimal_points",
            ),
            Node(
                predict_target_budgets,
                [
                    "isoflop_fits",
                    "parametric_surface",
                    "analysis_runs",
                    "compute_model",
                    "params:analysis",
                ],
                ["predictions", "scaling_law_curves"],
                name="predict_target_budgets",
            ),
            Node(
                summarise_scaling_laws,
                [
                    "analysis_runs_summary",
                    "analysis_runs",
                    "isoflop_fits",
                    "parametric_surface",
                    "extrapolation_check",
                    "predictions",
                    "compute_model",
                    "params:analysis",
                ],
                "scaling_laws",
                name="summarise_scaling_laws",
            ),
        ],
        tags=["analysis"],
    )
