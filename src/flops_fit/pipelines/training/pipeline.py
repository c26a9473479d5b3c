from kedro.pipeline import Node, Pipeline

from flops_fit.pipelines.training.nodes import (
    assemble_study_plan,
    tabulate_results,
    train_pending_runs,
)


def create_pipeline(**kwargs) -> Pipeline:
    return Pipeline(
        [
            Node(
                assemble_study_plan,
                ["sweep_plan", "round_plans"],
                "study_plan",
                name="assemble_study_plan",
            ),
            Node(
                train_pending_runs,
                [
                    "study_plan",
                    "existing_runs",
                    "training_data",
                    "params:training",
                    "params:torch_backend",
                    "params:corpus",
                ],
                # settings_check first: Kedro saves outputs in order, and saving `runs` trains
                ["settings_check", "runs"],
                name="train_pending_runs",
            ),
            Node(
                tabulate_results,
                ["study_plan", "runs", "params:training"],
                ["results", "run_results", "loss_curves"],
                name="tabulate_results",
            ),
        ],
        tags=["training"],
    )
