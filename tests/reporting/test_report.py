"""The report states the known answer first, shows every section, and renders whatever is
missing."""

from __future__ import annotations

import json
import re

import numpy as np
import pandas as pd
import pytest
from matplotlib.figure import Figure

from flops_fit.reporting import figures
from flops_fit.reporting.formatting import format_count, format_interval
from flops_fit.reporting.report import render_html, render_markdown, summarise_study


def _summary(study, **kwargs):
    return summarise_study(study["analysis_runs"], study["scaling_laws"], study["optimal_points"],
                           study["predictions"], study["scaling_law_curves"], **kwargs)


def _prediction(study, approach, budget):
    p = study["predictions"]
    return p[(p.approach == approach) & np.isclose(p.compute_budget, budget)].iloc[0]


def test_headline_states_the_known_prediction_first(study):
    summary = _summary(study)
    json.dumps(summary, allow_nan=False)  # strict JSON for the catalog
    head = summary["headline"]
    row = _prediction(study, "approach_3", 1e24)
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
    head = _summary(study, headline_budget=1e22, headline_approach="approach_2")["headline"]
    row = _prediction(study, "approach_2", 1e22)
    assert head["text"].startswith(
        f"At 1e22 FLOPs, train N ≈ {format_count(row.model_size)} parameters")
    # a budget between the targets is read off the fitted curves, with its band
    head = _summary(study, headline_budget=3e23)["headline"]
    assert head["source"] == "scaling_law_curves"
    lo, hi = head["model_size_interval"]
    assert lo < head["model_size"] < hi
    # beyond the curves: the law alone, and the report says there is no interval
    head = _summary(study, headline_budget=1e26)["headline"]
    assert head["source"] == "law" and "no interval available" in head["text"]


def test_headline_falls_back_when_approach_3_was_not_fitted(study):
    laws = study["scaling_laws"]
    laws["approach_3"] = {"n_opt": None, "d_opt": None,
                          "warnings": ["Huber fit did not converge from any of 64 starts"]}
    summary = summarise_study(study["analysis_runs"], laws, study["optimal_points"],
                              study["predictions"], study["scaling_law_curves"])
    head = summary["headline"]
    assert head["approach"] == "approach_2"
    assert "Approach 3 was not fitted (Huber fit did not converge" in head["fallback_note"]
    assert head["model_size"] == pytest.approx(_prediction(study, "approach_2", 1e24).model_size)
    html = render_html(summary)
    assert "Huber fit did not converge" in html and "not fitted" in html


def test_report_sections_show_laws_agreement_checks_warnings_and_inventory(study):
    summary = _summary(study)
    md = render_markdown(summary)
    laws = study["scaling_laws"]
    assert f"| Approach 2 | N_opt | {laws['approach_2']['n_opt']['exponent']:.3f} |" in md
    assert "| exponent a | yes |" in md
    assert "the laws were refitted without the 1e21 FLOPs budget" in md
    assert "Only 6 budgets were fitted" in md
    assert "63 runs recorded: 61 completed, 2 failed, 1 excluded by analysis" in md
    assert "`c1e19-n4`" in md and "loss became NaN" in md
    assert "loss 1.6x the IsoFLOP parabola (outlier)" in md
    assert "![IsoFLOP profiles](isoflops_curves.png)" in md
    inventory = summary["inventory"]
    assert [b["runs"] for b in inventory["per_budget"]] == [9] * 7


def test_html_is_self_contained_with_embedded_figures(study):
    summary = _summary(study)
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
    html = render_html(_summary(study))
    assert "<script>alert" not in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt; &amp; more" in html


@pytest.mark.parametrize("results", [None, pd.DataFrame()])
@pytest.mark.parametrize("laws", [None, {}])
def test_missing_runs_and_laws_still_render(results, laws):
    summary = summarise_study(results, laws, None, None, None)
    json.dumps(summary, allow_nan=False)
    assert not summary["headline"]["available"]
    missing = {m["input"]: m["why"] for m in summary["missing"]}
    assert set(missing) == {"analysis_runs", "scaling_laws", "optimal_points", "predictions",
                            "scaling_law_curves"}
    assert "analysis pipeline has not run" in missing["scaling_laws"]
    html = render_html(summary, {"isoflops_curves": figures.isoflop_curves(results)})
    md = render_markdown(summary)
    for text in (html, md):
        assert "No answer yet for 1e24 FLOPs" in text
        assert "What is missing" in text
        assert "No runs recorded" in text
    expected = "no run table was given" if results is None else "the run table is empty"
    assert expected in missing["analysis_runs"]


def test_all_runs_failed_is_reported(study):
    results = study["results"].assign(status="failed", final_loss=np.nan,
                                      error_message="CUDA out of memory")
    summary = summarise_study(results, {}, None, None, None)
    assert any("none of the 63 recorded runs completed" in m["why"] for m in summary["missing"])
    assert summary["inventory"]["failed"] == 63
    assert "CUDA out of memory" in render_markdown(summary)


def test_malformed_values_do_not_crash(study):
    laws = study["scaling_laws"]
    laws["approach_1"]["n_opt"] = {"coefficient": "nan", "exponent": None}
    laws["agreement"] = {"exponent_a": "not a mapping"}
    laws["excluded_runs"] = [{"experiment_id": "ghost", "reason": None}, "junk"]
    optima = study["optimal_points"].assign(used_in_fit=["True", "false", "1"] * 7)
    summary = summarise_study(study["analysis_runs"], laws, optima, study["predictions"], None)
    assert not summary["laws"][0]["fitted"]
    assert {"experiment_id": "ghost", "reason": "no reason given", "compute_budget": None,
            "model_size": None, "final_loss": None} in summary["inventory"]["excluded_runs"]
    render_html(summary)
    render_markdown(summary)
    assert isinstance(figures.isoflop_curves(study["analysis_runs"], optima, laws), Figure)


def test_runs_left_out_by_analysis_come_from_the_run_table(study):
    laws = study["scaling_laws"]
    laws["excluded_runs"] = []  # only analysis_runs.used_in_fit / reason say it
    summary = summarise_study(study["analysis_runs"], laws, study["optimal_points"], None, None)
    (excluded,) = summary["inventory"]["excluded_runs"]
    assert excluded["experiment_id"] == "c2.2e18-n6"
    assert excluded["reason"] == "loss 1.6x the IsoFLOP parabola (outlier)"
    assert summary["inventory"]["failed"] == 2 and summary["inventory"]["excluded"] == 1


def test_tokens_per_param_interval_is_reported(study):
    """The headline and both predictions tables show D/N with its bootstrap interval."""
    summary = _summary(study)
    row = _prediction(study, "approach_3", 1e24)
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
    curve_summary = _summary(study, headline_budget=3e23)
    assert curve_summary["headline"]["tokens_per_param_interval"] is None
    render_html(curve_summary), render_markdown(curve_summary)
