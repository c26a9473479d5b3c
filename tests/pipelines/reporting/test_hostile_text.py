"""`kedro run --env imported` on a runs table whose ids (and the report's title) hold HTML or
spreadsheet formulas: escaped in report.md, neutralised in the CSVs, read back as they were."""

from __future__ import annotations

import pandas as pd
import pytest

from flops_fit.fitting.runs.simulated import synthetic_results
from flops_fit.pipelines.analysis.datasets import AnalysisRunsDataset

HOSTILE = {
    0: "<script>alert(1)</script>",
    1: '=HYPERLINK("http://evil.example","x")',
    2: "+cmd|' /C calc'!A0",
    3: "@SUM(1)",
}


@pytest.mark.slow  # ~40 s end to end; the escaping itself is tested in-process (test_markdown_escaping, test_csvsafe)
def test_hostile_ids_and_title_through_analysis_and_reporting(kedro_run, tmp_path):
    table = synthetic_results(sizes_per_budget=5, noise=0.005, seed=4)
    table["experiment_id"] = [f"run-{i}" for i in range(len(table))]
    for row, text in HOSTILE.items():
        table.loc[row, "experiment_id"] = text
    table.loc[0, "status"] = "failed"
    table.loc[0, "final_loss"] = float("nan")
    path = tmp_path / "runs.csv"
    table.to_csv(path, index=False)
    kedro_run("--pipelines", "analysis,reporting", env="imported",
              params={"runs_path": path, "analysis.bootstrap.draws": 20,
                      "reporting.title": "Study <b>bold</b> <script>alert(2)</script>"})
    data = kedro_run.data_root

    md = (data / "08_reporting" / "report.md").read_text()
    assert "<b>" not in md
    outside_code_spans = md.replace("`<script>alert(1)</script>`", "")
    assert "<script>" not in outside_code_spans
    assert "# Study &lt;b>bold&lt;/b> &lt;script>alert(2)&lt;/script>" in md
    assert "| `<script>alert(1)</script>` |" in md  # the failed run, in a code span

    csv = data / "03_primary" / "analysis_runs.csv"
    raw = pd.read_csv(csv)
    ids = set(raw["experiment_id"])
    assert {"'" + HOSTILE[1], "'" + HOSTILE[2], "'" + HOSTILE[3], HOSTILE[0]} <= ids
    assert not any(str(i).startswith(("=", "+", "-", "@")) for i in ids)
    back = AnalysisRunsDataset(filepath=str(csv)).load()
    assert set(HOSTILE.values()) <= set(back["experiment_id"])
