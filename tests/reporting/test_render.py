"""The HTML report is self-contained and escapes text from the data; Markdown links figures;
both name the unit of D."""

from __future__ import annotations

import base64
import re

import pandas as pd
import pytest

from flops_fit.reporting import figures
from flops_fit.reporting.render import (
    figure_to_data_uri,
    render_html,
    render_markdown,
    template_environment,
)
from tests.reporting.helpers import in_unit, summary_of


def test_html_is_self_contained_with_embedded_figures(study):
    summary = summary_of(study)
    figs = {name: figures.no_data_figure(name, "test figure") for name in figures.FIGURES}
    html = render_html(summary, figs, embed_dpi=40)
    assert html.count('src="data:image/png;base64,') == 4
    assert "<style>" in html
    # nothing is fetched from elsewhere: no external scripts, stylesheets or images
    assert not re.search(r'(src|href)="(?!data:|#)', html)
    assert "<script" not in html


def test_html_escapes_text_from_the_data(study):
    laws = study["scaling_laws"]
    laws["warnings"] = ["<script>alert(1)</script> & more"]
    html = render_html(summary_of(study))
    assert "<script>alert" not in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt; &amp; more" in html


def test_figures_embed_as_png_data_uris_and_markdown_links_the_files(study):
    fig = figures.no_data_figure("t", "why")
    uri = figure_to_data_uri(fig, dpi=30)
    assert uri.startswith("data:image/png;base64,")
    assert base64.b64decode(uri.split(",", 1)[1])[:8] == b"\x89PNG\r\n\x1a\n"
    md = render_markdown(summary_of(study))
    for name, spec in figures.FIGURES.items():
        assert (f"]({spec['file']})" in md) == (name != "loss_curves")  # no run has a curve
    runs = study["analysis_runs"]
    curves = pd.DataFrame({"experiment_id": runs["experiment_id"], "step": 1, "units": 1,
                           "heldout_loss": 2.0, "train_loss": 2.0})
    md = render_markdown(summary_of(study, loss_curves=curves))
    assert "](loss_curves.png)" in md


def test_markdown_cells_escape_pipes_and_newlines():
    env = template_environment()
    assert env.filters["md"]("a | b\nc") == "a \\| b c"
    assert env.filters["interval"]([1.2e9, 3.4e9], "count") == "1.2B – 3.4B"


#: Every place the report names the unit of D, for tokens (as before units were named).
TOKEN_WORDING = (
    "on how many tokens D should it train", "tokens (95% interval", "| training tokens D |",
    "| tokens per parameter D/N |", "| expected loss (nats/token) |", "| D (tokens) |",
    "_Tokens per parameter._", "rule of thumb of about 20 tokens per parameter.",
)


def test_the_report_names_tokens_as_before(study):
    md = render_markdown(summary_of(study))
    for text in TOKEN_WORDING:
        assert text in md
    html = render_html(summary_of(study))
    for text in ("training tokens D", "tokens per parameter D/N", "expected loss (nats/token)",
                 "D_opt (tokens)", "<th>D (tokens)</th>", "; Chinchilla: about 20</div>"):
        assert text in html


def test_the_report_in_examples_never_says_tokens(study):
    summary = summary_of(in_unit(study, "examples"))
    md = render_markdown(summary)
    for text in TOKEN_WORDING[:5]:
        assert text.replace("tokens", "examples").replace("token", "example") in md
    assert "| D (examples) |" in md and "_Examples per parameter._" in md
    html = render_html(summary, {"tokens_per_param": figures.no_data_figure("t", "why")},
                       embed_dpi=20)
    for text in ("training examples D", "examples per parameter D/N",
                 "expected loss (nats/example)", "D_opt (examples)", "<th>D (examples)</th>"):
        assert text in html
    # only the figure's file name and anchor keep "tokens"; the Chinchilla rule is for tokens
    for text in (md.replace("tokens_per_param.png", ""),
                 re.sub(r'(data:image/png;base64,[^"]*|figure-tokens_per_param)', "", html)):
        assert "token" not in text.lower() and "chinchilla" not in text.lower()


@pytest.mark.parametrize("render", [render_markdown, render_html])
def test_a_summary_from_before_units_renders_as_tokens(study, render):
    summary = summary_of(study)
    del summary["unit"]
    assert render(summary) == render(summary_of(study))


@pytest.mark.parametrize("render", [render_html, render_markdown])
def test_both_reports_carry_the_notes_and_the_choice_of_approach(study, render):
    """The Markdown report says all the HTML one does: how the approach was chosen (with the
    caveat when none passed every check), the compute model and analysis's notes."""
    laws = study["scaling_laws"]
    laws["meta"] = {**laws.get("meta", {}),
                    "notes": ["the budget column 'compute_budget' is read as C"]}
    laws["recommended_approach"] = {
        "approach": "approach_3", "passed_every_check": False, "reason": "first with an answer",
        "passed_over": {"approach_3": ["alpha and beta are not identified"]}}
    summary = summary_of(study, headline_approach="auto")
    text = render(summary)
    assert "Note: the budget column &#39;compute_budget&#39; is read as C." in text \
        or "Note: the budget column 'compute_budget' is read as C." in text
    assert "no approach passed every check of analysis" in text
    assert "alpha and beta are not identified" in text
    assert f"Compute counted as {summary['headline']['compute_model']}" in text
