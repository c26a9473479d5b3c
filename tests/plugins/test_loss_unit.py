"""What the loss measures: the `unit` a loss callable declares is read and checked by the plugin
layer, recorded in the plan, and carried through the results and scaling_laws into every label
of the report, so a mean squared error is never called nats."""

from __future__ import annotations

import json
import re

import pytest
from kedro.io import DataCatalog, MemoryDataset
from kedro.pipeline import Pipeline
from kedro.runner import SequentialRunner

from flops_fit.nn.losses import classification_cross_entropy, next_token_cross_entropy
from flops_fit.parameters.planning import PlanningConfig
from flops_fit.pipelines import analysis, planning, reporting, training
from flops_fit.pipelines.planning.nodes import plan_isoflop_sweep, summarise_data
from flops_fit.planning.sweep import plan_sweep, summarise_plan
from flops_fit.plugins import PluginError
from flops_fit.plugins.contracts import check_study
from tests.reporting.helpers import all_texts

from .toy_plugins import HERE, make_study, training_params

PLANNING = {"compute_budgets": {"values": [1.0e9]}, "batch_size": 8, "flops_formula": "6nd",
            "model_sizes": {"num": 3, "centre": "fixed_range",
                            "fixed_range": {"min": 300.0, "max": 3000.0}}}


def _plan_node(planning_params: dict, training_params_: dict):
    summary = summarise_data(None, {}, training_params_, planning_params, {})
    return plan_isoflop_sweep(planning_params["compute_budgets"]["values"], summary, None,
                              planning_params, training_params_, {}, {})


def test_the_built_in_losses_measure_nats():
    assert next_token_cross_entropy.unit == classification_cross_entropy.unit == "nats"
    assert make_study().loss_unit() == "nats"  # the data source's default loss


@pytest.mark.parametrize("loss, unit", [("mse_loss", "mse"), ("unitless_loss", "loss")])
def test_a_declared_unit_is_read_and_none_reads_loss(loss, unit):
    assert make_study(loss=loss).loss_unit() == unit


@pytest.mark.parametrize("loss, shown", [("numeric_unit_loss", "2"),
                                         ("blank_unit_loss", "'  '")])
def test_a_unit_that_is_not_a_word_is_a_plugin_error(loss, shown):
    study = make_study(loss=loss)
    checks = (study.loss_unit, lambda: check_study(study, [{"width": 4}], 4),
              lambda: _plan_node(PLANNING, training_params(loss=loss)))
    for check in checks:
        with pytest.raises(PluginError) as err:
            check()
        assert str(err.value).startswith(
            f"params:training.loss ({HERE}{loss}): the loss declares unit {shown}; it must be "
            "a non-empty string")


@pytest.mark.parametrize("training_params_, unit", [
    (training_params(loss="mse_loss"), "mse"),
    (training_params(loss="unitless_loss"), "loss"),
    (training_params(), "nats"),  # the data's default loss, classification cross entropy
    # the synthetic backend makes its own losses (a Chinchilla surface): nats, whatever the loss
    (training_params(loss="mse_loss", backend="synthetic"), "nats"),
])
def test_the_plan_records_the_unit(training_params_, unit):
    records, _ = _plan_node(PLANNING, training_params_)
    assert records and {r["loss_unit"] for r in records} == {unit}
    assert summarise_plan(records, [], {"estimated_wall_seconds": 0})["loss_unit"] == unit


def test_the_built_in_gpt_plan_measures_nats():
    """The mock study's plan: the built-in GPT by its analytic count, no loss resolved."""
    records, _ = plan_sweep(PlanningConfig.from_params({"compute_budgets": {"values": [1e12]}}))
    assert records and {r["loss_unit"] for r in records} == {"nats"}


# ---- a whole study in process: plan, train, fit, report ------------------------------------

TINY_PLANNING = {"compute_budgets": {"values": [3e5, 1e6, 3e6]}, "batch_size": 16,
                 "flops_formula": "6nd", "min_tokens_per_param": 0.1, "timing_probe_steps": 0,
                 "model_sizes": {"num": 4, "centre": "fixed_range",
                                 "fixed_range": {"min": 30.0, "max": 300.0}}}
REPORTING = {"style": "notebook", "headline_budget": 1e9, "headline_approach": "approach_3",
             "reference_tokens_per_param": 20.0, "embed_dpi": 20, "title": "Report"}
#: Datasets read back after the run (the runner returns only the pipeline's free outputs).
KEPT = ("sweep_plan", "results", "scaling_laws", "report_summary")


class _Kept(MemoryDataset):
    """Keeps its data when the runner releases the datasets no node needs any more."""

    def _release(self) -> None:
        pass


def _run_study(loss: str) -> tuple[dict, dict]:
    datasets = {
        "params:training": training_params(loss=loss, show_progress=False),
        "params:planning": TINY_PLANNING, "params:torch_backend": {}, "params:corpus": {},
        "params:analysis": {"bootstrap": {"draws": 20}}, "params:reporting": REPORTING,
        "training_data": None, "existing_runs": {}, "round_plans": [],
        "validation": None, "study_rounds": None,
    }
    catalog = DataCatalog(datasets={
        **{name: MemoryDataset(value) for name, value in datasets.items()},
        **{name: _Kept() for name in KEPT}})
    pipeline = sum((p.create_pipeline() for p in (planning, training, analysis, reporting)),
                   start=Pipeline([]))
    outputs = SequentialRunner().run(pipeline, catalog)
    return ({name: ds.load() for name, ds in outputs.items()},
            {name: catalog.load(name) for name in KEPT})


# ~15 s each: four pipelines with torch training; each step of the unit's path is tested in
# process above (the plugin reads it, the plan records it) and in tests/reporting (the labels)
@pytest.mark.slow
@pytest.mark.parametrize("loss, unit", [("mse_loss", "mse"), ("unitless_loss", "loss")])
def test_a_study_whose_loss_is_not_nats_never_says_nats(loss, unit):
    outputs, kept = _run_study(loss)
    assert {r["loss_unit"] for r in kept["sweep_plan"]} == {unit}
    results = kept["results"]
    assert (results["status"] == "completed").all() and (results["loss_unit"] == unit).all()
    assert not {"final_loss_bits", "train_loss_bits"} & set(results.columns)  # bits = nats / ln 2
    laws = kept["scaling_laws"]
    assert laws["loss_unit"] == unit
    assert list(laws)[:2] == ["data_unit", "loss_unit"]
    assert kept["report_summary"]["loss_unit"]["name"] == unit

    said = {"scaling_laws.json": json.dumps(laws, allow_nan=True),
            "report.md": outputs["report_markdown"],
            # its figures' base64 can spell "nats" by chance; their texts are checked below
            "report.html": re.sub(r"data:image/png;base64,[A-Za-z0-9+/=]+", "",
                                  outputs["report_html"])}
    figures = {name: outputs[name] for name in outputs if name.endswith("_plot")}
    from flops_fit.pipelines.reporting.pipeline import create_pipeline

    assert set(figures) == {o for o in create_pipeline().all_outputs() if o.endswith("_plot")}
    said.update({name: "\n".join(all_texts(fig)) for name, fig in figures.items()})
    assert not [name for name, text in said.items() if "nats" in text.lower()]

    (ax,) = [a for a in figures["isoflops_curves_plot"].axes if a.get_label() != "<colorbar>"]
    expected = {"mse": "final held-out loss (mse)", "loss": "final held-out loss"}[unit]
    assert ax.get_ylabel() == expected
    panel_labels = [a.get_ylabel() for a in figures["scaling_laws_plot"].axes]
    assert f"L_opt ({unit})" in panel_labels
    if kept["report_summary"]["headline"]["available"]:
        label = {"mse": "expected loss (mse)", "loss": "expected loss"}[unit]
        assert f"| {label} |" in outputs["report_markdown"]
        assert f'<div class="label">{label}</div>' in outputs["report_html"]
