"""The HTML report is self-contained and escapes text from the data; Markdown links figures;
both name the unit of D."""

from __future__ import annotations

import base64
import re

import pandas as pd
import pytest
from markupsafe import escape

from flops_fit.fitting.laws.bounded import NOTE
from flops_fit.fitting.laws.families import FAMILIES
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


def test_a_parameter_on_its_bound_reads_as_such_in_both_reports(study):
    """MNIST-1D's E = 1.364e-157, on its bound 0: the report says E ≈ 0, never the number; the
    saturating law's L_max near its ceiling with its interval's upper end among draws on their
    own ceilings: that end is the bound, not a number just short of the fit's."""
    a3 = study["scaling_laws"]["approach_3"]
    assert NOTE not in render_markdown(summary_of(study))  # nothing on a bound: no note
    a3["E"], a3["intervals"]["E"] = 1.364e-157, [1.364e-157, 1.364e-157]
    a3["at_bound"] = {"E": {"side": "lower", "bound": 0.0, "fit": True,
                            "interval": [True, True]}}
    summary = summary_of(study)
    markdown, html = render_markdown(summary), render_html(summary)
    assert "| E | ≈ 0 (at its bound) | ≈ 0 |" in markdown
    assert "<td>≈ 0 (at its bound)</td><td>≈ 0</td>" in html
    assert "e-157" not in markdown and "e-157" not in html
    assert NOTE in markdown and escape(NOTE) in html

    sat = {"A": 6.675e-5, "B": 8.103e-5, "alpha": 0.35, "beta": 0.3004, "L_max": 4910.54,
           "k": 0.4745}
    a3.update({"law": "saturating", "law_formula": FAMILIES["saturating"].formula,
               "law_params": sat, "law_intervals": {k: [0.9 * v, 1.1 * v] for k, v in sat.items()},
               **{f"saturating.{k}": v for k, v in sat.items()}})
    a3["law_intervals"]["L_max"] = [8.063, 4898.1]
    a3["law_at_bound"] = {"L_max": {"side": "upper", "bound": 4911.1, "fit": False,
                                    "interval": [False, True]}}
    markdown = render_markdown(summary_of(study))
    assert "| L_max | 4911 | 8.06 – its bound |" in markdown
    assert "| k | 0.4745 | 0.427 – 0.522 |" in markdown


def test_a_and_b_are_said_to_be_the_6nd_exponents_under_another_compute_model(study):
    """Under a compute model other than 6 N D the surface's a and b are not N_opt's and D_opt's
    exponents at the study's budgets (the fitted laws are): the Markdown report says so."""
    said = "are N_opt's and D_opt's exponents only where C = 6·N·D"
    assert said not in render_markdown(summary_of(study))
    study["scaling_laws"]["compute_model"] = {
        "kind": "interpolated", "source": "the plan's flops_per_token",
        "model_size": [1e6, 1e9], "ratio_to_6n": [1.6, 1.1]}
    md = render_markdown(summary_of(study))
    assert said in md and "under this study's compute, C = f(N)·D with f = 1.1–1.6 × 6N" in md


def test_approaches_1_and_2_losses_beyond_the_fit_are_said_to_be_optimistic(study):
    """The predictions table reaches past the fitted budgets: under it, both reports say that
    Approaches 1-2's loss has no floor there (Approach 3's does)."""
    summary = summary_of(study)
    said = ("The losses of Approach 1 and Approach 2 are power laws in C with no irreducible "
            "term: beyond the fit it falls as if the loss could reach 0")
    assert summary["predictions_note"].startswith(said)
    assert said in render_markdown(summary) and said in render_html(summary)
    study["predictions"] = study["predictions"][study["predictions"]["approach"] == "approach_3"]
    assert summary_of(study)["predictions_note"] is None
