"""The report quotes a validation only when it scored the fit the report is about: real
sessions on the project's catalog in a temporary data root (the mock study, a refit with
another law family, an imported runs file analysed in the same data root)."""

from __future__ import annotations

import json
import shutil

import pytest

from tests.conftest import PROJECT_ROOT
from tests.pipelines.planning.test_pipeline import PILOT, QUICK

RUNS_FILE = PROJECT_ROOT / "tests" / "fitting" / "studies" / "default_gpt_full_results.csv"


def _session_run(data_root, pipelines: list[str], env: str = "mock", **params) -> None:
    from kedro.framework.session import KedroSession
    from kedro.framework.startup import bootstrap_project

    bootstrap_project(PROJECT_ROOT)
    analysis = {**QUICK["analysis"], **params.pop("analysis", {})}
    runtime = {"data_root": str(data_root), **QUICK, "analysis": analysis, **params}
    if env == "mock":
        runtime["planning"] = PILOT
    with KedroSession.create(project_path=PROJECT_ROOT, env=env,
                             runtime_params=runtime) as session:
        session.run(pipeline_names=pipelines)


def _report(data_root) -> tuple[dict, str]:
    out = data_root / "08_reporting"
    return (json.loads((out / "report_summary.json").read_text()),
            (out / "report.md").read_text())


@pytest.fixture(scope="module")
def validated(tmp_path_factory):
    """The mock study's one round, its validation and its report (kedro run --env mock)."""
    root = tmp_path_factory.mktemp("validated")
    _session_run(root, ["planning", "training", "analysis", "validation", "reporting"])
    return root


@pytest.fixture
def study(validated, tmp_path):
    shutil.copytree(validated, tmp_path, dirs_exist_ok=True)
    return tmp_path


def test_the_validation_of_the_reported_fit_opens_the_report(validated):
    stored = json.loads((validated / "07_model_output" / "validation.json").read_text())
    summary, md = _report(validated)
    assert stored["fit"]["approach"] == "approach_3" and stored["fit"]["law"] == "chinchilla"
    assert summary["validation"]["verdict"] == stored["verdict"]
    assert summary["earlier_validation"] is None
    assert md.split("\n")[4].startswith(("**Validation passed:**", "> **Validation FAILED:**"))
    assert "earlier fit" not in md


def test_a_refit_with_another_law_does_not_quote_the_earlier_validation(study):
    _session_run(study, ["analysis", "reporting"], analysis={"law": "kaplan"})
    stored = json.loads((study / "07_model_output" / "validation.json").read_text())
    summary, md = _report(study)
    assert summary["validation"] is None
    earlier = summary["earlier_validation"]
    assert earlier["fit"] == stored["fit"]
    assert "checked an earlier fit, not this one: Approach 3 (chinchilla law) fitted to" in (
        earlier["text"])
    assert "kedro run --pipelines validation,reporting" in earlier["text"]
    assert stored["verdict"] not in md and "Validation passed" not in md
    assert "**Validation of an earlier fit:**" in md


@pytest.mark.slow  # two more sessions (~15 s); the note above is what the fast suite checks
def test_the_validation_pipeline_run_as_the_note_says_scores_the_refit(study):
    _session_run(study, ["analysis", "reporting"], analysis={"law": "kaplan"})
    _session_run(study, ["validation", "reporting"], analysis={"law": "kaplan"})
    summary, md = _report(study)
    rescored = json.loads((study / "07_model_output" / "validation.json").read_text())
    assert summary["validation"]["verdict"] == rescored["verdict"]
    assert summary["earlier_validation"] is None and "earlier fit" not in md


def test_an_imported_study_reports_no_validation(study):
    """Runs trained elsewhere have none, whatever validation.json the data root holds; nor
    the data root's study rounds, loss curves or settings check."""
    assert (study / "07_model_output" / "validation.json").exists()
    assert (study / "03_primary" / "settings_check.json").exists()
    (study / "08_reporting" / "study_rounds.csv").write_text(
        "round,runs_added,flops_added,flops_so_far,approach,n_opt,n_opt_lo,n_opt_hi,"
        "interval_ratio,stop_reason\n0,57,1e22,1e22,approach_3,1.6e10,1.3e10,2e10,1.5,\n")
    _session_run(study, ["analysis", "reporting"], env="imported", runs_path=str(RUNS_FILE),
                 reporting={"headline_budget": 3e12})
    summary, md = _report(study)
    assert summary["validation"] is None and summary["earlier_validation"] is None
    assert "alidation" not in md
    assert summary["study"] is None and not summary["settings_reused"]
    assert "loss_curves" not in [f["name"] for f in summary["figures"]]
    assert summary["headline"]["budget"] == 3e12
