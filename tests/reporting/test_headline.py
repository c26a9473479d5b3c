"""The report states the known answer first: N and D at the headline budget, with intervals,
its source, the fallback when the preferred approach was not fitted, and the extrapolation."""

from __future__ import annotations

import json

import numpy as np
import pytest

from flops_fit.fitting.surface.compute_model import ComputeModel, optimal_allocation
from flops_fit.reporting.formatting import format_count, format_interval
from flops_fit.reporting.render import render_html, render_markdown
from flops_fit.reporting.summary import summarise_study
from tests.reporting.helpers import in_unit, prediction, summary_of


def test_headline_states_the_known_prediction_first(study):
    summary = summary_of(study)
    json.dumps(summary, allow_nan=False)  # strict JSON for the catalog
    head = summary["headline"]
    row = prediction(study, "approach_3", 1e24)
    assert head["approach"] == "approach_3" and head["source"] == "predictions"
    assert head["model_size"] == pytest.approx(row.model_size)
    assert head["num_tokens_interval"] == pytest.approx([row.num_tokens_lo, row.num_tokens_hi])
    n, d = format_count(row.model_size), format_count(row.num_tokens)
    assert head["text"].startswith(f"At 1e24 FLOPs, train N ≈ {n} parameters on D ≈ {d} tokens")
    assert (f"95% interval: N {format_count(row.model_size_lo)} – "
            f"{format_count(row.model_size_hi)}") in head["text"]
    # 1e24 against the largest fitted budget, 10**20.33
    assert "an extrapolation over 3.7 orders of magnitude" in head["extrapolation_note"]

    html = render_html(summary)
    md = render_markdown(summary)
    for text in (html, md):
        assert head["text"] in text
        # the answer comes before the fitted laws, predictions and run inventory
        positions = [text.index(s) for s in (head["text"], "Fitted scaling laws", "Predictions",
                                             "Extrapolation check", "Warnings", "Run inventory")]
        assert positions == sorted(positions)


def test_headline_budget_and_approach_are_parameters(study):
    head = summary_of(study, headline_budget=1e22, headline_approach="approach_2")["headline"]
    row = prediction(study, "approach_2", 1e22)
    assert head["text"].startswith(
        f"At 1e22 FLOPs, train N ≈ {format_count(row.model_size)} parameters")
    # a budget between the targets is read off the fitted curves, with its band
    head = summary_of(study, headline_budget=3e23)["headline"]
    assert head["source"] == "scaling_law_curves"
    lo, hi = head["model_size_interval"]
    assert lo < head["model_size"] < hi
    # beyond the curves: the law alone, and the report says there is no interval (and does
    # not describe one)
    head = summary_of(study, headline_budget=1e26, max_headline_extrapolation=1e6)["headline"]
    assert head["source"] == "law" and "no interval available" in head["text"]
    assert "The interval covers" not in head["extrapolation_note"]
    # below the budgets of the fit, said so
    head = summary_of(study, headline_budget=1e15)["headline"]
    assert head["extrapolation_note"] == ("1e15 FLOPs lies below the budgets of the fit "
                                          "(smallest 1e17 FLOPs): an extrapolation downwards.")


def test_a_headline_far_beyond_the_runs_gives_no_numbers(study):
    head = summary_of(study, headline_budget=1e26)["headline"]  # 4.7e5 x the largest budget
    assert not head["available"] and "model_size" not in head
    assert head["text"].startswith("No answer for 1e26 FLOPs. 1e26 FLOPs is 4.6e5× the largest "
                                   "fitted budget (2.2e20 FLOPs), beyond "
                                   "reporting.max_headline_extrapolation (1e4×)")
    assert "Set reporting.headline_budget nearer the runs (e.g. 6.5e20)" in head["text"]
    md = render_markdown(summary_of(study, headline_budget=1e26))
    assert "**No answer yet for 1e26 FLOPs.** 1e26 FLOPs is 4.6e5×" in md


def test_values_that_may_not_be_a_loss_give_no_answer(study):
    warning = "the analysed values (column 'acc') may not be a loss: 7 of 7 budgets' ..."
    study["scaling_laws"].setdefault("diagnostics", {})["not_a_loss_warning"] = warning
    summary = summary_of(study, headline_budget=1e21)
    head = summary["headline"]
    assert not head["available"] and "model_size" not in head
    assert head["text"] == f"No answer for 1e21 FLOPs. Analysis warns that {warning}."
    assert f"**No answer yet for 1e21 FLOPs.** Analysis warns that {warning}" in \
        render_markdown(summary)


def test_headline_beyond_the_curves_is_approach_3s_own_optimum(study):
    """Under a compute model other than 6N, Approach 3's stored laws are fitted through the
    study's budgets; far beyond them the headline is the surface's argmin, on its IsoFLOP line."""
    laws = study["scaling_laws"]
    model = ComputeModel("interpolated", "a test model", (np.log(1e6), np.log(1e9)),
                         (np.log(3.4), np.log(1.2)))
    laws["compute_model"] = model.to_dict()
    summary = summarise_study(study["analysis_runs"], laws, study["optimal_points"],
                              study["predictions"], study["scaling_law_curves"],
                              headline_budget=1e27, headline_approach="approach_3",
                              max_headline_extrapolation=1e8)
    head = summary["headline"]
    assert head["source"] == "law" and head["approach"] == "approach_3"
    n, d = optimal_allocation(1e27, laws["approach_3"], model)
    assert head["model_size"] == pytest.approx(float(n), rel=1e-12)
    assert float(model.flops_per_unit(head["model_size"])) * head["num_tokens"] == \
        pytest.approx(1e27, rel=1e-9)
    assert "compute counted as C = f(N)·D with f = 1.2–3.4 × 6N" in head["text"]


def test_headline_falls_back_when_approach_3_was_not_fitted(study):
    laws = study["scaling_laws"]
    laws["approach_3"] = {"n_opt": None, "d_opt": None,
                          "warnings": ["Huber fit did not converge from any of 64 starts"]}
    summary = summarise_study(study["analysis_runs"], laws, study["optimal_points"],
                              study["predictions"], study["scaling_law_curves"])
    head = summary["headline"]
    assert head["approach"] == "approach_2"
    assert "Approach 3 was not fitted (Huber fit did not converge" in head["fallback_note"]
    assert head["model_size"] == pytest.approx(prediction(study, "approach_2", 1e24).model_size)
    html = render_html(summary)
    assert "Huber fit did not converge" in html and "not fitted" in html


def test_tokens_per_param_interval_is_reported(study):
    """The headline and both predictions tables show D/N with its bootstrap interval."""
    summary = summary_of(study)
    row = prediction(study, "approach_3", 1e24)
    head = summary["headline"]
    assert head["tokens_per_param_interval"] == pytest.approx(
        [row.tokens_per_param_lo, row.tokens_per_param_hi])
    shown = format_interval([row.tokens_per_param_lo, row.tokens_per_param_hi])
    md = render_markdown(summary)
    headline_row = next(line for line in md.splitlines() if line.startswith("| tokens per param"))
    assert shown in headline_row
    assert "| D/N | 95% interval |" in md
    assert shown in render_html(summary).split('id="laws"')[0]
    # a headline read off the curves has no D/N interval, and still renders
    curve_summary = summary_of(study, headline_budget=3e23)
    assert curve_summary["headline"]["tokens_per_param_interval"] is None
    render_html(curve_summary), render_markdown(curve_summary)


@pytest.mark.parametrize("budget", [1e24, 3e23, 1e26])  # predictions, curves, bare law
def test_headline_names_the_unit_of_d(study, budget):
    far = {"max_headline_extrapolation": 1e6}
    tokens = summary_of(study, headline_budget=budget, **far)["headline"]["text"]
    examples = summary_of(in_unit(study, "examples"), headline_budget=budget,
                          **far)["headline"]["text"]
    assert " tokens" in tokens and "token" not in examples
    assert examples == tokens.replace(" tokens", " examples")
    d = format_count(prediction(study, "approach_3", 1e24).num_tokens)
    if budget == 1e24:
        assert f"parameters on D ≈ {d} examples (95% interval" in examples


def test_a_pinned_headline_approach_keeps_analysiss_caveat(study):
    laws = dict(study["scaling_laws"])
    laws["recommended_approach"] = {
        "approach": "approach_2", "passed_every_check": True,
        "passed_over": {"approach_3": ["missed the held-out budget's N_opt by +68%"]}}
    summary = summarise_study(study["analysis_runs"], laws, study["optimal_points"],
                              study["predictions"], study["scaling_law_curves"],
                              headline_approach="approach_3")
    assert summary["headline"]["choice_note"] == (
        "set by reporting.headline_approach, though analysis passed over it (missed the "
        "held-out budget's N_opt by +68%) and recommends Approach 2; read it with care")
    assert "though analysis passed over it" in render_markdown(summary)
    assert summary_of(study, headline_approach="approach_2")["headline"]["choice_note"] is None


def test_an_isoflop_approachs_loss_beyond_the_fit_is_said_to_be_optimistic(study):
    note = summary_of(study, headline_approach="approach_2")["headline"]["extrapolation_note"]
    assert note.endswith("Approach 2's loss is a power law in C with no irreducible term: beyond "
                         "the fit it falls as if the loss could reach 0, so it is optimistic "
                         "there, by more than its interval says (Approach 3's surface keeps its "
                         "floor).")
    assert "irreducible" not in summary_of(study)["headline"]["extrapolation_note"]
