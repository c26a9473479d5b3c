"""The optimal_points table: per budget per approach, the optimum and whether the laws used it."""

from __future__ import annotations

import numpy as np

from flops_fit.fitting.outputs.optimal_points import optimal_points_table
from flops_fit.fitting.surface.compute_model import ComputeModel
from flops_fit.fitting.surface.law import optimal_allocation_6nd
from flops_fit.schema import OPTIMAL_POINT_COLUMNS


def test_table(small_study):
    table = optimal_points_table(small_study.isoflop, small_study.surface, small_study.runs,
                                 ComputeModel.six_nd())
    assert list(table.columns) == list(OPTIMAL_POINT_COLUMNS)
    assert table.groupby("approach").size().to_dict() == {
        "approach_1": 5, "approach_2": 5, "approach_3": 5,
    }
    assert table["used_in_fit"].dtype == bool and (table["reason"] == "").all()
    a2 = table[table["approach"] == "approach_2"]
    assert a2["parabola_c2"].gt(0).all()
    assert table.loc[table["approach"] != "approach_2", "parabola_c2"].isna().all()
    a3 = table[table["approach"] == "approach_3"]
    n, _ = optimal_allocation_6nd(a3["compute_budget"].to_numpy(), small_study.surface.fit)
    np.testing.assert_allclose(a3["model_size"], n, rtol=1e-15)
    np.testing.assert_allclose(table["tokens_per_param"], table["num_tokens"] / table["model_size"])
