"""The run inventory counts every run once, and its counts agree with its tables."""

from __future__ import annotations

import numpy as np

from flops_fit.reporting.render import render_html, render_markdown
from tests.reporting import synthetic_study as truth
from tests.reporting.helpers import summary_of

BLANK, NEGATIVE = "c1e17-n3", "c1e17-n5"


def with_bad_losses(study):
    """Two runs of an imported table (status completed, no error message): one with a blank
    loss, one with a loss of -1, left out by analysis as it does (reason, and listed in
    scaling_laws' excluded_runs with the status-failed runs)."""
    runs = study["analysis_runs"]
    bad = runs["experiment_id"].isin([BLANK, NEGATIVE])
    runs.loc[runs["experiment_id"] == BLANK, "final_loss"] = np.nan
    runs.loc[runs["experiment_id"] == NEGATIVE, "final_loss"] = -1.0
    runs.loc[bad, "reason"] = "no finite positive loss (final_loss is not a positive finite number)"
    runs.loc[bad, "used_in_fit"] = False
    study["scaling_laws"]["excluded_runs"] = [
        {"experiment_id": eid, "reason": why}
        for eid, why in zip(runs.loc[~runs["used_in_fit"], "experiment_id"],
                            runs.loc[~runs["used_in_fit"], "reason"], strict=True)]
    return study


def test_a_negative_loss_is_no_budgets_best_loss_and_counts_match_the_tables(study):
    runs = with_bad_losses(study)["analysis_runs"]
    # scaling_laws may name a run the runs table does not hold: counted nowhere, listed nowhere
    study["scaling_laws"]["excluded_runs"].append({"experiment_id": "zz", "reason": "outlier"})
    inv = summary_of(study)["inventory"]
    row = next(b for b in inv["per_budget"] if np.isclose(b["compute_budget"], 1e17))
    used = runs[np.isclose(runs["budget"], 1e17) & runs["used_in_fit"]]
    assert row["best_loss"] == used["final_loss"].min() > 0
    assert (row["runs"], row["completed"], row["failed"], row["excluded"], row["used"]) == (
        9, 7, 2, 0, 7)
    # a run is failed, excluded or used: once, and in the table of its count
    assert inv["completed"] + inv["failed"] == inv["total"] == len(runs)
    assert inv["excluded"] + inv["used"] == inv["completed"]
    assert len(inv["failed_runs"]) == inv["failed"] == len(truth.FAILED_IDS) + 2
    assert [r["experiment_id"] for r in inv["excluded_runs"]] == [truth.OUTLIER_ID]
    assert inv["excluded"] == 1
    for key in ("runs", "completed", "failed", "excluded", "used"):
        assert sum(b[key] for b in inv["per_budget"]) == inv[key if key != "runs" else "total"]
    failed = {r["experiment_id"]: r["error"] for r in inv["failed_runs"]}
    assert failed[NEGATIVE].startswith("no finite positive loss")
    assert failed["c1e19-n4"] == "RuntimeError: loss became NaN at step 812"


def test_the_rendered_inventory_says_what_each_column_counts(study):
    summary = summary_of(with_bad_losses(study))
    md = render_markdown(summary)
    assert "63 runs recorded: 59 completed, 4 failed; of the completed, 1 excluded by analysis " \
           "and 58 used by the fits." in md
    assert "| excluded | used | best loss of the used runs |" in md
    assert "| 1e17 | 9 | 7 | 2 | 0 | 7 |" in md and "| -1 |" not in md
    assert "_Failed_: did not finish with a finite positive loss" in md
    html = render_html(summary)
    assert "<th>used</th><th>best loss of the used runs</th>" in html
    assert "<i>Excluded</i>: completed, but left out of the fits by analysis." in html
