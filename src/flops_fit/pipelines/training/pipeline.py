from kedro.pipeline import Node, Pipeline

from flops_fit.pipelines.training.nodes import tabulate_results, train_pending_runs


def create_pipeline(**kwargs) -> Pipeline:
    return Pipeline(
        [
            Node(
                train_pending_runs,
                [
                    "sweep_plan",
                    "existing_runs",
                    "training_data",
                    "params:training",
                    "params:torch_backend",
                    "params:corpus",
                ],
                "runs",
                name="train_pending_runs",
            ),
            Node(
                tabulate_results,
                ["sweep_plan", "runs", "params:training"],
                ["results", "run_results"],
                name="tabulate_results",
            ),
        ],
        tags=["training"],
    )
