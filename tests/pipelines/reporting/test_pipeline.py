"""The reporting pipeline on a memory catalog, and on the project's real catalog."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml
from kedro.io import DataCatalog, MemoryDataset
from kedro.runner import SequentialRunner
from matplotlib.figure import Figure

from flops_fit.pipelines.reporting import create_pipeline
from flops_fit.reporting.figures import FIGURES
from tests.reporting.helpers import all_texts, in_unit

PROJECT_ROOT = Path(__file__).resolve().parents[3]
INPUTS = ("analysis_runs", "scaling_laws", "optimal_points", "predictions", "scaling_law_curves")
PARAMS = {"style": "notebook", "headline_budget": 1e24, "headline_approach": "approach_3",
          "reference_tokens_per_param": 20.0, "embed_dpi": 40, "title": "Report"}


def _memory_catalog(inputs: dict) -> DataCatalog:
    datasets = {name: MemoryDataset(value) for name, value in inputs.items()}
    datasets["params:reporting"] = MemoryDataset(PARAMS)
    datasets["params:study"] = MemoryDataset({})
    # absent: they load as None
    for name in ("validation", "study_rounds", "settings_check", "loss_curves"):
        datasets.setdefault(name, MemoryDataset(None))
    return DataCatalog(datasets=datasets)


def test_pipeline_runs_on_memory_catalog(study):
    pipeline = create_pipeline()
    assert pipeline.inputs() == {*INPUTS, "params:reporting", "params:study", "validation",
                                 "study_rounds", "settings_check", "loss_curves"}
    outputs = SequentialRunner().run(pipeline, _memory_catalog({k: study[k] for k in INPUTS}))
    assert set(outputs) == {f"{name}_plot" for name in FIGURES} | {"report_html",
                                                                  "report_markdown"}
    for name in FIGURES:
        assert isinstance(outputs[f"{name}_plot"].load(), Figure)
    html = outputs["report_html"].load()
    assert html.count("data:image/png;base64,") == 4
    assert "At 1e24 FLOPs, train N ≈" in outputs["report_markdown"].load()


def test_runs_with_loss_curves_get_the_figure_in_the_report(study):
    from flops_fit.pipelines.reporting import nodes
    from flops_fit.reporting.figures import no_data_figure
    from tests.reporting.figures.test_loss_curves import curves_table

    ids = study["analysis_runs"]["experiment_id"].head(4)
    curves = curves_table(budgets=(1e20,), sizes=(1e6, 1e7, 1e8, 1e9))
    curves["experiment_id"] = curves["experiment_id"].map(dict(zip(
        curves["experiment_id"].unique(), ids, strict=True)))
    fig, _ = nodes.plot_loss_curves(curves, study["analysis_runs"], study["scaling_laws"], PARAMS)
    assert len(fig.axes[0].get_lines()) == 2 * 4
    summary = nodes.summarise_report(*(study[k] for k in INPUTS[:5]), PARAMS,
                                     loss_curves=curves)
    others = [no_data_figure(str(k), "test") for k in range(4)]
    html = nodes.render_html_report(summary, *others, PARAMS, loss_curves_figure=fig)
    assert html.count("data:image/png;base64,") == 5
    assert "](loss_curves.png)" in nodes.render_markdown_report(summary)


def test_pipeline_names_the_unit_of_d(study):
    """A classifier study (D in examples): no figure and no report line says tokens."""
    study = in_unit(study, "examples")
    outputs = SequentialRunner().run(create_pipeline(),
                                     _memory_catalog({k: study[k] for k in INPUTS}))
    md = outputs["report_markdown"].load()
    assert "examples (95% interval" in md and "| training examples D |" in md
    assert "token" not in md.replace("tokens_per_param.png", "")
    for name in FIGURES:
        texts = all_texts(outputs[f"{name}_plot"].load())
        assert not [t for t in texts if "token" in t.lower() or "Chinchilla" in t], name
    assert outputs["tokens_per_param_plot"].load().axes[0].get_ylabel() == (
        "examples per parameter D/N")


def test_pipeline_renders_with_nothing_to_report():
    empty = {"analysis_runs": None, "scaling_laws": {}, "optimal_points": None, "predictions": None,
             "scaling_law_curves": None}
    outputs = SequentialRunner().run(create_pipeline(), _memory_catalog(empty))
    assert "No answer yet for 1e24 FLOPs" in outputs["report_html"].load()
    assert "No data:" in " ".join(
        t.get_text() for t in outputs["isoflops_curves_plot"].load().axes[0].texts)


def test_catalog_declares_every_output_under_the_data_root():
    catalog = yaml.safe_load((PROJECT_ROOT / "conf/base/catalog_reporting.yml").read_text())
    outputs = create_pipeline().all_outputs()
    in_memory = {f"{name}_figure" for name in FIGURES}  # runner-chosen memory datasets
    assert outputs - in_memory <= set(catalog), "every file output is declared in the catalog"
    assert not in_memory & set(catalog), "left to the runner, so ParallelRunner can share them"
    for name, spec in FIGURES.items():
        entry = catalog[f"{name}_plot"]
        assert entry["type"] == "flops_fit.datasets.atomic.MatplotlibDataset"
        assert entry["filepath"] == f"${{runtime_params:data_root,data}}/08_reporting/{spec['file']}"
    for name in ("report_html", "report_markdown", "report_summary"):
        assert catalog[name]["filepath"].startswith("${runtime_params:data_root,data}/08_reporting/")
    assert catalog["report_html"]["filepath"].endswith("/report.html")
    assert catalog["report_markdown"]["filepath"].endswith("/report.md")


def test_session_run_writes_figures_and_reports(study, tmp_path):
    """The real catalog: seed the inputs through it, run the reporting pipeline in a session."""
    from kedro.framework.session import KedroSession
    from kedro.framework.startup import bootstrap_project

    bootstrap_project(PROJECT_ROOT)
    with KedroSession.create(project_path=PROJECT_ROOT, env="mock",
                             runtime_params={"data_root": str(tmp_path)}) as session:
        catalog = session.load_context().catalog
        undeclared = [name for name in INPUTS if name not in catalog]
        if undeclared:
            pytest.skip(f"the catalog does not declare {undeclared} yet (training / analysis)")
        for name in INPUTS:
            catalog.save(name, study[name])
        session.run(pipeline_names=["reporting"])

    out = tmp_path / "08_reporting"
    for spec in FIGURES.values():
        assert (out / spec["file"]).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    html = (out / "report.html").read_text()
    assert html.count("data:image/png;base64,") == 4
    assert "At 1e23 FLOPs, train N ≈" in (out / "report.md").read_text()
    summary = json.loads((out / "report_summary.json").read_text())
    assert summary["headline"]["available"]
