"""The report summary shows every section, and says whatever is missing instead of failing."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from matplotlib.figure import Figure

from flops_fit.reporting import figures
from flops_fit.reporting.formatting import DataUnit
from flops_fit.reporting.render import render_html, render_markdown
from flops_fit.reporting.summary import summarise_study
from tests.reporting.helpers import in_unit, summary_of


def test_report_sections_show_laws_agreement_checks_warnings_and_inventory(study):
    summary = summary_of(study)
    md = render_markdown(summary)
    laws = study["scaling_laws"]
    assert f"| Approach 2 | N_opt | {laws['approach_2']['n_opt']['exponent']:.3f} |" in md
    assert "| exponent a | yes |" in md
    assert "the laws were refitted without the 1e21 FLOPs budget" in md
    assert "Only 6 budgets were fitted" in md
    assert ("63 runs recorded: 61 completed, 2 failed; of the completed, 1 excluded by "
            "analysis and 60 used by the fits.") in md
    assert "`c1e19-n4`" in md and "loss became NaN" in md
    assert "loss 1.6x the IsoFLOP parabola (outlier)" in md
    assert "![IsoFLOP profiles](isoflops_curves.png)" in md
    inventory = summary["inventory"]
    assert [b["runs"] for b in inventory["per_budget"]] == [9] * 7


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
    # a run the runs table does not hold is in no count, so in no table
    assert "ghost" not in [r["experiment_id"] for r in summary["inventory"]["excluded_runs"]]
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


def test_the_summary_words_the_unit_of_d(study):
    tokens = summary_of(study)
    assert tokens["unit"] == {"name": "tokens", "plural": "tokens", "singular": "token",
                              "per": "per token", "is_tokens": True}
    assert tokens["question"] == (
        "For a compute budget C, how many parameters N should the model have and on how many "
        "tokens D should it train to reach the lowest loss?")
    assert tokens["figures"] == [{"name": k, **v} for k, v in figures.FIGURES.items()
                                 if k != "loss_curves"]  # listed only when runs have curves
    examples = summary_of(in_unit(study, "examples"))
    assert examples["unit"]["plural"] == "examples" and not examples["unit"]["is_tokens"]
    assert examples["question"] == tokens["question"].replace("tokens D", "examples D")
    assert examples["figures"] == [{"name": k, **v} for k, v in figures.figure_specs(
        DataUnit.of("examples")).items() if k != "loss_curves"]
    # no scaling_laws: the run table's data_unit column says it
    del study["scaling_laws"]["data_unit"]
    assert summarise_study(study["analysis_runs"], None)["unit"]["plural"] == "examples"


def test_runs_trained_as_trunks_say_so_with_the_flops_of_the_design(study):
    from flops_fit.parameters.torch_backend import ScheduleParams
    from flops_fit.planning.trunks import assign_trunks, design_flops

    results = study["analysis_runs"].copy()
    results["num_steps"] = (results["num_tokens"] // 1000).clip(lower=10).astype(int)
    results["batch_size"] = 4
    results["model_factory"] = "m:f"
    results["model_kwargs"] = results["model_size"].map(lambda n: {"n": float(n)})
    results["planned_flops"] = results["compute_budget"]
    records = assign_trunks(results.to_dict("records"), ScheduleParams(kind="wsd"))
    expected = design_flops(records)
    results = pd.DataFrame.from_records(records)
    results.loc[results.index[0], ["trunk_id", "branch_step"]] = None  # one run of its own
    study["analysis_runs"] = results
    md = render_markdown(summary_of(study))
    design = summary_of(study)["inventory"]["design"]
    assert design["trunks"] == expected["trunks"] - 1  # the first run is on its own now
    assert design["trained_share"] < expected["trained_share"] + 1e-3
    assert f"Trained as {design['trunks']} trunks with a cooldown branch per budget" in md
    assert "Trained as" not in render_markdown(summary_of(make_points(study)))


def make_points(study):
    study["analysis_runs"] = study["analysis_runs"].drop(columns=["trunk_id", "branch_step"])
    return study


def test_the_laws_error_sentence_names_the_floor_where_it_is_what_widens():
    from flops_fit.reporting.summary import _law_error_text

    fold = {"budget": 1e21, "distance": 2.0, "loss_miss": 0.001, "loss_noise_sd": 0.002,
            "n_opt_miss": 0.1, "n_opt_noise_sd": 0.05}
    err = {"law": "chinchilla", "centre_budget": 1e19, "loss_error_per_ln_c": 0.001,
           "n_opt_error_per_ln_c": 0.03, "loss_error_floor_per_ln_c": 0.0025, "folds": [fold]}
    text = _law_error_text(err)
    assert "0.25% in L (analysis.law_error_floor; rollout measured 0.10%)" in text
    assert "3.0% in N_opt" in text
    assert "0.40% in L and" in _law_error_text({**err, "loss_error_per_ln_c": 0.004})
    assert "found no error" in _law_error_text({**err, "loss_error_per_ln_c": 0.0,
                                                "n_opt_error_per_ln_c": 0.0,
                                                "loss_error_floor_per_ln_c": 0.0})
    assert _law_error_text({**err, "folds": []}) is None  # the warning says it instead


@pytest.mark.parametrize("mode, held_out, chosen", [("auto", [1e20], True), ("auto", [], False),
                                                    ("pinned", [], False)])
def test_the_family_table_says_how_the_law_was_chosen(study, mode, held_out, chosen):
    laws = dict(study["scaling_laws"])
    laws["approach_3"] = {**laws["approach_3"], "law_choice": {
        "mode": mode, "chosen": "chinchilla", "reason": "the reason", "held_out_budgets": held_out,
        "draw_shares": {"chinchilla": 1.0},
        "families": {"chinchilla": {"formula": "L = E + A/N^α + B/D^β", "n_params": 5,
                                    "held_out_rms_log_error": 0.01 if held_out else None}}}}
    md = render_markdown(summarise_study(study["analysis_runs"], laws, study["optimal_points"],
                                         study["predictions"], study["scaling_law_curves"]))
    assert ("Each family was fitted to the smaller budgets" in md) is chosen
    assert ("Every family's fit to all runs, for comparison" in md) is not chosen
    lines = md.splitlines()
    # Markdown renders a table only when a blank line (or another table row) comes before it
    assert not [(above, row) for above, row in zip(lines, lines[1:], strict=False)
                if row.startswith("|") and above.strip() and not above.startswith("|")]


def test_without_the_bootstrap_the_report_claims_no_intervals(study):
    laws = json.loads(json.dumps(study["scaling_laws"]))
    laws["meta"]["bootstrap"] = {"draws": 0, "seed": 0, "resample": "residuals"}
    md = render_markdown(summarise_study(study["analysis_runs"], laws, study["optimal_points"],
                                         study["predictions"], study["scaling_law_curves"]))
    assert "no intervals: the bootstrap was off (analysis.bootstrap)" in md
    assert "bootstrap intervals" not in md
    assert "intervals are 95% bootstrap intervals" in render_markdown(summary_of(study))


def _study_rounds(assessed_last: bool) -> pd.DataFrame:
    """study_rounds as next_round writes it: round 1's N_opt(C*) is in round 2's file, written
    by the next_round run after round 1's fit (the manual workflow may stop before it)."""
    answer = {"approach": "approach_3", "n_opt": 1.6e10, "n_opt_lo": 1.3e10,
              "n_opt_hi": 2.0e10, "interval_ratio": 1.53}
    rows = [{"round": 0, "runs_added": 57, "flops_added": 1.1e22, "flops_so_far": 1.1e22,
             **answer, "stop_reason": None},
            {"round": 1, "runs_added": 26, "flops_added": 1e22, "flops_so_far": 2.1e22,
             **(answer if assessed_last else dict.fromkeys(answer)),
             "stop_reason": "study.max_rounds (1) rounds after the pilot are done"
             if assessed_last else None}]
    return pd.DataFrame(rows)


@pytest.mark.parametrize("render", [render_markdown, render_html])
def test_a_last_round_no_next_round_assessed_says_how_to_fill_its_row(study, render, caplog):
    with caplog.at_level("WARNING", logger="flops_fit.reporting.study_summary"):
        summary = summary_of(study, study_rounds=_study_rounds(assessed_last=False))
    assert summary["study"]["unassessed"]["round"] == 1
    text = render(summary)
    assert "Round 1 has no N_opt(C*) yet: a round is assessed by the next_round run after" in text
    assert "--params study.max_rounds=1" in text
    assert any("Study round 1 has no N_opt(C*)" in r.getMessage() for r in caplog.records)

    done = summary_of(study, study_rounds=_study_rounds(assessed_last=True))
    assert done["study"]["unassessed"] is None
    assert "has no N_opt(C*) yet" not in render(done)


def test_an_agreement_too_wide_to_judge_reads_cannot_tell(study):
    from flops_fit.fitting.checks.agreement import MAX_AGREEMENT_SPAN, agreement

    ivs = {"approach_2": [3.52e12, 3.6e18], "approach_3": [1.64e10, 3.94e16]}
    study["scaling_laws"]["agreement"]["n_opt_at_largest_target"] = agreement(
        "N_opt at 1e+25 FLOPs", {"approach_2": 1.67e16, "approach_3": 4.5e13}, ivs, 0.95,
        max_span=MAX_AGREEMENT_SPAN)
    study["scaling_laws"]["agreement"]["exponent_b"] = agreement(
        "exponent_b", {}, {"approach_2": [0.4, 0.6], "approach_3": None}, 0.95)
    summary = summary_of(study)
    assert [(g["name"], g["verdict"]) for g in summary["agreement"]] == [
        ("exponent a", "yes"), ("exponent b", "n/a"), ("n opt at largest target", "cannot tell")]
    md = render_markdown(summary)
    assert "| exponent a | yes |" in md and "| exponent b | n/a |" in md
    assert "| n opt at largest target | cannot tell | Approach 2: 1.67e16, Approach 3: 4.5e13 |" \
        in md
    assert '<td class="text">cannot tell</td>' in render_html(summary)


def test_a_validation_is_the_reports_only_when_it_scored_the_reported_fit(study):
    """A validation.json of this fit opens the report; one of an earlier fit, or one that does
    not say which fit it scored, is a note saying so, never the verdict."""
    from flops_fit.study.validation import checked_fit

    verdict = "At 2e+21 FLOPs the law (approach 3) predicted a loss of 2.256 nats"
    stored = {"verdict": verdict, "passed": True, "compute_budget": 2e21,
              "approach": "approach_3", "runs": [],
              "prediction": {"approach": "approach_3", "n_opt": 2.67e9, "loss": 2.256},
              "fit": checked_fit(study["scaling_laws"], "approach_3")}
    summary = summary_of(study, validation=stored)
    assert summary["validation"]["verdict"] == verdict
    assert summary["earlier_validation"] is None
    assert render_markdown(summary).split("\n")[4].startswith(f"**Validation passed:** {verdict}")

    study["scaling_laws"]["approach_3"]["E"] *= 1.01  # refitted: another surface
    for validation, which in ((stored, "checked an earlier fit, not this one"),
                              ({k: v for k, v in stored.items() if k != "fit"},
                               "does not record which fit it checked")):
        summary = summary_of(study, validation=validation)
        assert summary["validation"] is None
        text = summary["earlier_validation"]["text"]
        assert which in text and "predicted N_opt = 2.67B and a loss of 2.256 at 2e21" in text
        assert "kedro run --pipelines validation,reporting" in text
        md, html = render_markdown(summary), render_html(summary, {})
        assert verdict not in md and "Validation passed" not in md
        assert "**Validation of an earlier fit:**" in md
        assert 'id="earlier-validation"' in html and verdict not in html
