from kedro.pipeline import Node, Pipeline

from flops_fit.pipelines.next_round.pipeline import PLANNING_INPUTS
from flops_fit.pipelines.validation.nodes import (
    plan_validation_runs,
    score_validation_runs,
    train_validation_runs,
)


def create_pipeline(**kwargs) -> Pipeline:
    return Pipeline(
        [
            Node(plan_validation_runs,
                 ["sweep_plan", "round_plans", "scaling_laws", "bootstrap_draws",
                  "params:study", *PLANNING_INPUTS],
                 ["validation_plan", "validation_target"], name="plan_validation_runs"),
            # trained like any run, in a run folder of their own: they never enter the fit
            Node(train_validation_runs,
                 ["validation_plan", "existing_validation_runs", "training_data",
                  "params:training", "params:torch_backend", "params:corpus"],
                 "validation_runs", name="train_validation_runs"),
            Node(score_validation_runs,
                 ["validation_plan", "validation_target", "validation_runs", "scaling_laws",
                  "bootstrap_draws", "params:training"],
                 "validation", name="score_validation_runs"),
        ],
        tags=["validation"],
    )
