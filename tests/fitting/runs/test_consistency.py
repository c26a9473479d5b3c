"""A run whose D contradicts its compute is named once, with the quantity that disagrees, and
left out; the stored studies have none."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from flops_fit import analyse
from flops_fit.fitting.runs.consistency import contradictions
from flops_fit.fitting.runs.prepare import prepare_runs
from flops_fit.fitting.runs.table import normalise_runs
from flops_fit.parameters.analysis import AnalysisConfig

STUDIES = Path(__file__).parents[1] / "studies"
MOCK = STUDIES / "mock_6nd_results.csv"
VICTIM = 10  # C4.64e17-d464-L7-d3c602bb: budget 4.64e17, N 1.82e7


def _mock(column: str = "num_tokens", factor: float = 1.0) -> pd.DataFrame:
    df = pd.read_csv(MOCK)
    df[column] = df[column].astype(float)
    df.loc[VICTIM, column] *= factor
    return df


@pytest.mark.parametrize("name", sorted(p.name for p in STUDIES.glob("*_results.csv")))
def test_the_stored_studies_agree_with_themselves(name):
    assert contradictions(normalise_runs(pd.read_csv(STUDIES / name))) == {}


@pytest.mark.parametrize("factor", [1e-300, 1e-3, 1e3])
def test_a_run_whose_d_is_off_is_named_once_and_left_out(factor, caplog):
    with caplog.at_level(logging.WARNING):
        runs, summary = prepare_runs(_mock(factor=factor), AnalysisConfig(source="mock.csv"))
    warned = [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]
    assert len(warned) == 1
    assert warned[0].startswith("mock.csv: 1 of 57 runs left out, their D contradicts their "
                                "compute: C4.64e17-d464-L7-d3c602bb (budget "
                                "4.64e+17, N 1.82e+07): its D disagrees with its C and budget")
    assert f"is {factor:.3g} x its C = 4.64e+17 ('planned_flops')" in warned[0]
    assert summary["n_runs_used"] == 56
    assert runs["reason"].ne("").tolist() == [i == VICTIM for i in range(57)]


def test_the_analysis_fits_as_if_the_run_were_not_there(caplog):
    """No cascade: the study's warnings are the clean study's plus one run left out."""
    params = {"compute_model": "6nd", "bootstrap": {"enabled": False}}
    broken = analyse(_mock(factor=1e-300), params)
    without = analyse(pd.read_csv(MOCK).drop(index=VICTIM), params)
    assert broken.scaling_laws["approach_3"] == without.scaling_laws["approach_3"]
    assert broken.warnings == ["1 of 57 runs left out of every fit (see excluded_runs)",
                               *without.warnings]
    [excluded] = broken.scaling_laws["excluded_runs"]
    assert excluded["experiment_id"] == "C4.64e17-d464-L7-d3c602bb"


def test_a_wrong_c_is_named_as_c():
    why = contradictions(normalise_runs(_mock("planned_flops", 1e-3)))
    assert list(why) == [VICTIM]
    assert why[VICTIM].startswith("its C disagrees with its budget and D by more than a "
                                  "factor 10")


def test_an_imported_table_names_the_row_and_the_pair(caplog):
    """Without ids the run is its row; with two statements of C, the pair is named."""
    df = _mock().loc[:, ["model_size", "num_tokens", "planned_flops", "final_loss"]]
    df.loc[VICTIM, "num_tokens"] *= 1e-3
    with caplog.at_level(logging.WARNING):
        runs, _ = prepare_runs(df, AnalysisConfig(), source="imported.csv")
    [warned] = [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]
    assert ("row 11 (budget 4.64e+17, N 1.82e+07): its C and D disagree by more than a factor "
            "10") in warned
    assert "its C = 4.64e+17 ('planned_flops') is 1e+03 x its f(N)·D = 4.64e+14 (D from " \
           "'num_tokens', f(N) from 6 N)" in warned
    assert not runs.loc[VICTIM, "used_in_fit"]


def test_derived_values_and_a_uniform_offset_are_not_contradictions():
    """A C that counts more than 6 N D in every run agrees with itself; a D derived from C (or
    a C from the budget) cannot disagree with it."""
    df = _mock().loc[:, ["compute_budget", "model_size", "num_tokens", "final_loss"]]
    full = df.assign(C=df["compute_budget"] * 3.0)
    assert contradictions(normalise_runs(full, {"compute": "C"})) == {}
    only_budget = df.drop(columns="num_tokens")
    only_budget.loc[VICTIM, "compute_budget"] *= 1e3
    assert contradictions(normalise_runs(only_budget)) == {}
    assert np.isfinite(normalise_runs(only_budget)["num_tokens"]).all()


def test_a_compute_that_counts_embeddings_n_leaves_out_is_not_a_contradiction():
    """Kaplan's convention: N without the embedding table, C the full training FLOPs, so C / 6 N D
    runs from ~130 at the smallest model to ~1 at the largest; only a run off its neighbours
    is named."""
    import itertools

    rows = []
    for budget, d_model in itertools.product((1e17, 1e18, 1e19), (32, 64, 128, 256, 512, 1024,
                                                                   2048)):
        n = 12 * 4 * d_model**2
        tokens = budget / (6 * (n + 50257 * d_model))
        rows.append({"model_size": n, "num_tokens": tokens, "compute": budget, "final_loss": 3.0})
    table = pd.DataFrame(rows)
    assert contradictions(normalise_runs(table)) == {}
    table.loc[10, "num_tokens"] *= 1e-3
    found = contradictions(normalise_runs(table))
    assert list(found) == [10] and "runs of its size" in found[10]
