from kedro.pipeline import Node, Pipeline

from flops_fit.pipelines.planning.nodes import (
    choose_compute_budgets,
    estimate_training_time,
    plan_isoflop_sweep,
    summarise_data,
    summarise_sweep_plan,
    tabulate_sweep_plan,
)

STUDY_PARAMS = ["params:planning", "params:training", "params:corpus", "params:torch_backend"]


def create_pipeline(**kwargs) -> Pipeline:
    return Pipeline(
        [
            Node(summarise_data, ["training_data", "params:corpus", "params:training",
                                  "params:planning", "params:torch_backend"],
                 "data_summary", name="summarise_data"),
            Node(choose_compute_budgets, "params:planning", "compute_budgets",
                 name="choose_compute_budgets"),
            Node(plan_isoflop_sweep,
                 ["compute_budgets", "data_summary", "training_data", *STUDY_PARAMS,
                  "round_plans"],
                 ["sweep_plan", "dropped_model_sizes"], name="plan_isoflop_sweep"),
            Node(tabulate_sweep_plan, "sweep_plan", "sweep_plan_table",
                 name="tabulate_sweep_plan"),
            Node(estimate_training_time, ["sweep_plan", "training_data", *STUDY_PARAMS],
                 "training_time_estimate", name="estimate_training_time"),
            Node(summarise_sweep_plan,
                 ["sweep_plan", "dropped_model_sizes", "training_time_estimate"],
                 "sweep_plan_summary", name="summarise_sweep_plan"),
        ],
        tags=["planning"],
    )
