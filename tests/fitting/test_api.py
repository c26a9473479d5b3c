"""`flops_fit.analyse` is the analysis pipeline in one call: on stored results of real studies
(the default GPT study, whose FLOPs are counted `full`; MNIST-1D, `measured`; the mock study,
`6nd`) it writes the same scaling_laws.json, optimal points, predictions and curves as the
pipeline run by Kedro's runner, and it never assumes a compute model."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from kedro.config import OmegaConfigLoader
from kedro.io import DataCatalog, MemoryDataset
from kedro.runner import SequentialRunner

from flops_fit import Analysis, analyse
from flops_fit.fitting.api import AnalysisInputError
from flops_fit.fitting.surface.compute_model import ComputeModel
from flops_fit.jsonsafe import to_json_text
from flops_fit.pipelines.analysis.pipeline import create_pipeline
from tests.conftest import PROJECT_ROOT

STUDIES = Path(__file__).parent / "studies"
#: stored results table -> (conf environment it was run in, the FLOP count its plan used)
CASES = {
    "default_gpt_full_results.csv": ("local", "full"),
    "mnist1d_measured_results.csv": ("mnist1d", "measured"),
    "mock_6nd_results.csv": ("mock", "6nd"),
}
FAST = {"bootstrap": {"draws": 200}}  # the equality does not need the default 1,000 draws


def analysis_params(env: str) -> dict:
    loader = OmegaConfigLoader(str(PROJECT_ROOT / "conf"), base_env="base",
                               default_run_env="local", env=env,
                               merge_strategy={"parameters": "soft"})
    params = dict(loader["parameters"]["analysis"])
    params["bootstrap"] = {**params["bootstrap"], **FAST["bootstrap"]}
    return params


OUTPUTS = ("scaling_laws", "optimal_points", "predictions", "scaling_law_curves")


def run_pipeline(results: pd.DataFrame, params: dict) -> dict:
    """The analysis pipeline through Kedro's runner; each output copied out as it is saved."""
    saved: dict = {}

    class Keep(MemoryDataset):
        def __init__(self, name):
            super().__init__()
            self.name = name

        def save(self, data):
            saved[self.name] = data
            super().save(data)

    catalog = DataCatalog(datasets={"results": MemoryDataset(results),
                                    "params:analysis": MemoryDataset(params),
                                    **{name: Keep(name) for name in OUTPUTS}})
    SequentialRunner().run(create_pipeline(), catalog)
    return saved


@pytest.fixture(scope="module", params=sorted(CASES))
def study(request):
    env, formula = CASES[request.param]
    results = pd.read_csv(STUDIES / request.param)
    assert set(results["flops_formula"]) == {formula}
    params = analysis_params(env)
    return formula, params, run_pipeline(results, params), analyse(results, params)


def test_analyse_writes_what_the_pipeline_writes(study):
    formula, _, pipeline, got = study
    assert isinstance(got, Analysis)
    assert got.to_json() == to_json_text(pipeline["scaling_laws"])
    for name in ("optimal_points", "predictions", "scaling_law_curves"):
        mine = got.optimal_points if name == "optimal_points" else (
            got.predictions if name == "predictions" else got.curves)
        pd.testing.assert_frame_equal(mine.reset_index(drop=True),
                                      pipeline[name].reset_index(drop=True))
    assert got.compute_model.is_6nd == (formula == "6nd")


def test_predict_at_the_target_budgets_is_the_predictions_table(study):
    _, params, pipeline, got = study
    targets = sorted(params["target_budgets"])
    table = got.predict(targets, approach="all")
    pd.testing.assert_frame_equal(table, pipeline["predictions"].reset_index(drop=True))
    one = got.predict(targets[-1])
    assert list(one["approach"]) == [got.recommended]
    assert np.isfinite(one["model_size"].iloc[0])


def test_the_compute_model_is_never_a_silent_default():
    results = pd.read_csv(STUDIES / "default_gpt_full_results.csv")
    params = {**analysis_params("local"), "bootstrap": {"enabled": False}}
    del params["compute_model"]
    with pytest.raises(AnalysisInputError, match="compute_model: say how the study counts"):
        analyse(results, params)
    plan = analyse(results, params, compute_model="plan")
    six = analyse(results, params, compute_model="6nd")
    assert not plan.compute_model.is_6nd and six.compute_model.is_6nd
    # a full-FLOP study's optimum differs from the 6 N D answer: the choice matters
    n_plan = plan.predict(1e13, "approach_3")["model_size"].iloc[0]
    n_six = six.predict(1e13, "approach_3")["model_size"].iloc[0]
    assert abs(np.log(n_plan / n_six)) > 0.05
    explicit = analyse(results, params, compute_model=ComputeModel.six_nd())
    pd.testing.assert_frame_equal(explicit.predictions, six.predictions)
    assert explicit.scaling_laws["approach_3"] == six.scaling_laws["approach_3"]


@pytest.mark.parametrize("bad, match", [
    ({"compute_model": "flops"}, "compute_model: expected a ComputeModel or one of"),
])
def test_bad_compute_model_names_the_key(bad, match):
    results = pd.read_csv(STUDIES / "mock_6nd_results.csv")
    with pytest.raises(AnalysisInputError, match=match):
        analyse(results, analysis_params("mock"), **bad)


def test_predict_rejects_bad_budgets_and_approaches():
    params = {**analysis_params("mock"), "bootstrap": {"enabled": False}}
    got = analyse(pd.read_csv(STUDIES / "mock_6nd_results.csv"), params)
    for bad in (0, -1e20, float("nan"), [], "abc", [1e22, "x"]):
        with pytest.raises(AnalysisInputError, match="compute: expected positive"):
            got.predict(bad)
    with pytest.raises(AnalysisInputError, match="approach: expected one of"):
        got.predict(1e22, approach="approach_9")
