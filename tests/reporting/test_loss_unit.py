"""The words for what the loss measures: nats as before, a declared word as it is, and "loss"
when the loss declared nothing; never nats for a loss that is not one."""

from __future__ import annotations

import re

import pandas as pd
import pytest

from flops_fit.reporting import figures
from flops_fit.reporting import inputs as inp
from flops_fit.reporting.formatting import DataUnit, LossUnit
from flops_fit.reporting.render import render_html, render_markdown
from tests.reporting.helpers import all_texts, in_unit, summary_of, with_loss_unit


@pytest.mark.parametrize("unit, data, expected, l_opt", [
    ("nats", "tokens", "expected loss (nats/token)", "L_opt (nats/token)"),
    ("nats", "examples", "expected loss (nats/example)", "L_opt (nats/example)"),
    ("mse", "examples", "expected loss (mse)", "L_opt (mse)"),
    (" mse ", "tokens", "expected loss (mse)", "L_opt (mse)"),
    (None, "tokens", "expected loss", "L_opt (loss)"),
    ("", "tokens", "expected loss", "L_opt (loss)"),
    ("loss", "tokens", "expected loss", "L_opt (loss)"),
])
def test_the_words_for_each_unit(unit, data, expected, l_opt):
    loss, d = LossUnit.of(unit), DataUnit.of(data)
    assert loss.label("expected loss", d) == loss.to_dict(d)["expected_loss"] == expected
    assert loss.label("L_opt", d) == l_opt


def test_the_unit_comes_from_scaling_laws_then_the_runs():
    runs = pd.DataFrame({"loss_unit": ["mse", None, "mse"]})
    assert inp.loss_unit({"loss_unit": "nats"}, runs).name == "nats"  # the laws win
    assert inp.loss_unit({}, runs).name == "mse"  # scaling_laws from before loss units
    assert inp.loss_unit({}).name == inp.loss_unit(None).name == "loss"
    assert inp.loss_unit({}, pd.DataFrame({"loss_unit": ["mse", "nats"]})).name == "loss"


def _said(study) -> dict[str, str]:
    """Every text a reader sees: both reports and the figures' labels."""
    summary = summary_of(study)
    laws, runs = study["scaling_laws"], study["analysis_runs"]
    drawn = {"isoflops_curves": figures.isoflop_curves(runs, study["optimal_points"], laws),
             "scaling_laws": figures.scaling_laws(study["optimal_points"],
                                                  study["scaling_law_curves"], laws),
             "parametric_fit": figures.parametric_fit(runs, laws)}
    html = render_html(summary, {"isoflops_curves": drawn["isoflops_curves"]}, embed_dpi=20)
    return {"report.md": render_markdown(summary),
            "report.html": re.sub(r"data:image/png;base64,[^\"]*", "", html),
            **{name: "\n".join(all_texts(fig)) for name, fig in drawn.items()}}


@pytest.mark.parametrize("unit, label", [("mse", "expected loss (mse)"),
                                         (None, "expected loss")])
def test_a_loss_that_is_not_nats_is_never_called_nats(study, unit, label):
    said = _said(in_unit(with_loss_unit(study, unit), "examples"))
    assert not [name for name, text in said.items() if "nats" in text]
    assert f"| {label} |" in said["report.md"]
    assert f'<div class="label">{label}</div>' in said["report.html"]
    assert f"L_opt ({unit or 'loss'})" in said["scaling_laws"]
    assert ("final held-out loss (mse)" if unit else "final held-out loss\n") in (
        said["isoflops_curves"] + "\n")


def test_nats_reads_as_before(study):
    said = _said(study)  # the synthetic study's Chinchilla losses are nats
    assert "| expected loss (nats/token) |" in said["report.md"]
    assert '<div class="label">expected loss (nats/token)</div>' in said["report.html"]
    assert "L_opt (nats/token)" in said["scaling_laws"]
    assert "final held-out loss (nats/token)" in said["isoflops_curves"]


@pytest.mark.parametrize("render", [render_markdown, render_html])
def test_a_summary_from_before_loss_units_claims_no_unit(study, render):
    summary = summary_of(study)
    del summary["loss_unit"]
    assert render(summary) == render(summary_of(with_loss_unit(study, None)))
