"""The scaling_laws document: plain JSON with every section, from the typed fit results."""

from __future__ import annotations

import json
from dataclasses import replace

import pytest

from flops_fit.fitting.outputs.scaling_laws import summarise, surface_section
from flops_fit.fitting.runs.table import RunsTableError
from flops_fit.fitting.surface.compute_model import ComputeModel
from flops_fit.fitting.surface.study import SurfaceFit
from flops_fit.schema import SURFACE_KEYS


def _doc(study):
    return summarise(
        study.summary, study.runs, study.isoflop, study.surface, study.check, study.predictions,
        study.cfg, ComputeModel.six_nd(),
    )


def test_document_is_plain_json(small_study):
    doc = _doc(small_study)
    assert json.loads(json.dumps(doc, allow_nan=False)) == doc
    assert list(doc) == [
        "data_unit", "loss_unit", "compute_model", "meta", "excluded_runs", "approach_1",
        "approach_2", "approach_3", "extrapolation_check", "diagnostics", "agreement",
        "warnings", "recommended_approach",
    ]
    assert doc["meta"]["bootstrap"] == {"draws": 200, "seed": 0, "resample": "residuals"}
    assert doc["meta"]["budget_grouping"] == {"gap_dex": 0.05, "max_width_dex": 0.2}
    assert list(doc["approach_1"]) == [
        "n_opt", "d_opt", "l_opt", "bootstrap", "interval_note", "warnings", "excluded_budgets"
    ]
    a1 = doc["approach_1"]
    assert a1["bootstrap"] is None and a1["interval_note"].startswith("no interval:")
    assert a1["n_opt"]["interval"] == {"coefficient": [None, None], "exponent": [None, None]}
    assert a1["n_opt"]["interval_note"] == a1["interval_note"]
    for approach in ("approach_2", "approach_3"):
        boot = doc[approach]["bootstrap"]
        assert boot["scheme"] == "residuals" and boot["draws"] == 200
        assert boot["failed_draws"] == 0 and boot["failed_draw_share"] == 0.0
        assert boot["unreliable"] is False and doc[approach]["interval_note"] is None
    assert doc["approach_2"]["bootstrap"]["failed_budget_draws"] == 0
    assert doc["approach_2"]["bootstrap"]["failed_budget_draw_share"] == 0.0
    assert doc["approach_3"]["bootstrap"]["failed_budget_draws"] is None
    fit = small_study.surface.fit
    for key in SURFACE_KEYS:
        assert doc["approach_3"][key] == getattr(fit, key)
    law = doc["approach_3"]["n_opt"]
    assert law["exponent"] == fit.a
    assert law["coefficient"] == pytest.approx(fit.G * 6.0 ** -fit.a, rel=1e-15)
    lo, hi = law["interval"]["coefficient"]
    assert lo < law["coefficient"] < hi
    assert doc["extrapolation_check"] == small_study.check.to_dict()
    assert set(doc["agreement"]) == {"exponent_a", "exponent_b", "n_opt_at_largest_target"}
    # 1e25 is 1e4 x the largest budget measured
    assert any("target budgets reach 1e+25 FLOPs" in w for w in doc["warnings"])


def test_the_unit_of_d_lands_in_scaling_laws(small_study, tmp_path):
    assert _doc(small_study)["data_unit"] == "tokens"  # synthetic results carry no data_unit
    study = replace(small_study, runs=small_study.runs.assign(data_unit="examples"))
    path = tmp_path / "scaling_laws.json"
    path.write_text(json.dumps(_doc(study), allow_nan=False))
    assert json.loads(path.read_text())["data_unit"] == "examples"
    mixed = study.runs.assign(data_unit=["examples"] * (len(study.runs) - 1) + ["tokens"])
    with pytest.raises(RunsTableError, match="column 'data_unit' .* more than one unit"):
        _doc(replace(study, runs=mixed))


def test_the_loss_unit_lands_in_scaling_laws(small_study):
    assert _doc(small_study)["loss_unit"] == "loss"  # a table without the column claims none
    study = replace(small_study, runs=small_study.runs.assign(loss_unit="mse"))
    assert _doc(study)["loss_unit"] == "mse"
    mixed = study.runs.assign(loss_unit=["mse"] * (len(study.runs) - 1) + ["nats"])
    with pytest.raises(RunsTableError, match="column 'loss_unit' .* more than one unit"):
        _doc(replace(study, runs=mixed))


def test_unfitted_surface_section_keeps_the_schema():
    section = surface_section(
        SurfaceFit(fit=None, draws=None, warnings=["w"], n_runs=4),
        0.95,
    )
    assert {k: section[k] for k in SURFACE_KEYS} == dict.fromkeys(SURFACE_KEYS)
    assert section["n_runs"] == 4 and section["warnings"] == ["w"]
    assert section["n_opt"]["interval"] == {"coefficient": [None, None], "exponent": [None, None]}
    assert section["bootstrap"] is None and section["interval_note"] is None


def test_unreliable_intervals_say_so(small_study):
    report = replace(small_study.surface.bootstrap, failed_draws=60)
    section = surface_section(replace(small_study.surface, bootstrap=report), 0.95)
    assert section["bootstrap"]["unreliable"] is True
    assert section["bootstrap"]["failed_draw_share"] == pytest.approx(0.3)
    assert section["interval_note"].startswith("unreliable: 60 of 200 bootstrap draws (30%)")
    assert section["n_opt"]["interval_note"] == section["interval_note"]
