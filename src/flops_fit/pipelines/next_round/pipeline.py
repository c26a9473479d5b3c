from kedro.pipeline import Node, Pipeline

from flops_fit.pipelines.next_round.nodes import (
    plan_next_round,
    plot_study_rounds,
    tabulate_study_rounds,
)

#: what planning a run needs, for a round as for the pilot and the validation run
PLANNING_INPUTS = ["data_summary", "training_data", "params:planning", "params:training",
                   "params:corpus", "params:torch_backend"]


def create_pipeline(**kwargs) -> Pipeline:
    return Pipeline(
        [
            Node(plan_next_round,
                 ["sweep_plan", "round_plans", "analysis_runs", "scaling_laws",
                  "bootstrap_draws", "params:study", *PLANNING_INPUTS],
                 "next_round", name="plan_next_round"),
            Node(tabulate_study_rounds, ["sweep_plan", "round_plans", "next_round"],
                 "study_rounds", name="tabulate_study_rounds"),
            Node(plot_study_rounds, ["study_rounds", "params:study", "params:reporting"],
                 "study_rounds_plot", name="plot_study_rounds"),
        ],
        tags=["next_round"],
    )
