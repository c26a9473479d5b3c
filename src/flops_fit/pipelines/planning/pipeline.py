from kedro.pipeline import Node, Pipeline

from flops_fit.pipelines.planning.nodes import (
    choose_compute_budgets,
    plan_isoflop_sweep,
    summarise_corpus,
    summarise_sweep_plan,
    tabulate_sweep_plan,
)


def create_pipeline(**kwargs) -> Pipeline:
    return Pipeline(
        [
            Node(summarise_corpus, ["corpus", "params:corpus"], "corpus_summary",
                 name="summarise_corpus"),
            Node(choose_compute_budgets, "params:planning", "compute_budgets",
                 name="choose_compute_budgets"),
            Node(plan_isoflop_sweep, ["compute_budgets", "corpus_summary", "params:planning"],
                 ["sweep_plan", "dropped_model_sizes"], name="plan_isoflop_sweep"),
            Node(tabulate_sweep_plan, "sweep_plan", "sweep_plan_table",
                 name="tabulate_sweep_plan"),
            Node(summarise_sweep_plan, ["sweep_plan", "dropped_model_sizes", "params:planning"],
                 "sweep_plan_summary", name="summarise_sweep_plan"),
        ],
        tags=["planning"],
    )
