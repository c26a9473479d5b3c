"""The law's own error beyond the fit (fitting/laws/beyond.py): measured by rollout, carried by
the intervals above the centre of the fitted budgets, near 0 for a law that is right."""

from __future__ import annotations

import numpy as np
import pytest

from flops_fit import analyse
from flops_fit.fitting.laws.beyond import LawError
from flops_fit.fitting.surface.compute_model import ComputeModel
from tests.fitting.test_laws import study

BUDGETS = (1e17, 1e18, 1e19, 1e20, 1e21)
FAR = 1e24


def _analyse(law_of_runs: str, law: str, noise: float = 0.01, law_error: bool = True):
    runs = study(law_of_runs, budgets=BUDGETS, noise=noise, seed=4)
    params = {"law": law, "law_error": law_error, "bootstrap": {"draws": 200, "seed": 1},
              "target_budgets": [FAR]}
    return analyse(runs, params, compute_model="6nd")


def _width(result, column: str) -> float:
    row = result.predictions[result.predictions["approach"] == "approach_3"].iloc[0]
    return float(np.log(row[f"{column}_hi"] / row[f"{column}_lo"]))


def test_a_right_law_has_almost_no_error_of_its_own():
    err = _analyse("chinchilla", "chinchilla").surface.law_error
    assert err is not None and len(err.folds) == 2
    assert err.loss_per_ln_c < 0.002
    assert err.n_opt_per_ln_c < 0.02


def test_a_wrong_law_carries_its_error_into_the_intervals_beyond_the_fit():
    wrong = _analyse("saturating", "chinchilla", noise=0.002)
    err = wrong.surface.law_error
    assert err.loss_per_ln_c > 0.005, err.to_dict()
    without = _analyse("saturating", "chinchilla", noise=0.002, law_error=False)
    assert without.surface.law_error is None
    assert _width(wrong, "loss") > 2 * _width(without, "loss")
    # the point predictions do not move
    a3 = [r[r["approach"] == "approach_3"].iloc[0] for r in (wrong.predictions,
                                                             without.predictions)]
    assert a3[0]["loss"] == pytest.approx(a3[1]["loss"], rel=1e-12)
    assert wrong.to_json() and '"law_error"' in wrong.to_json()


def test_widening_is_zero_below_the_centre_and_grows_beyond_it():
    err = LawError("chinchilla", c_centre=1e19, loss_per_ln_c=0.02, n_opt_per_ln_c=0.05, seed=3)
    compute = np.array([1e17, 1e19, 1e21, 1e23])
    sig_l, sig_n = err.sigma(compute)
    np.testing.assert_allclose(sig_l, [0, 0, 0.02 * np.log(100), 0.02 * np.log(1e4)])
    np.testing.assert_allclose(sig_n, 2.5 * sig_l)
    n = np.full((4000, 4), 1e9)
    loss = np.full((4000, 4), 2.0)
    model = ComputeModel.six_nd()
    n2, d2, l2 = err.widen(compute, n, loss, model)
    np.testing.assert_array_equal(n2[:, :2], n[:, :2])
    np.testing.assert_allclose(n2 * d2 * 6, np.broadcast_to(compute, n2.shape), rtol=1e-12)
    assert np.std(np.log(l2[:, 3])) == pytest.approx(sig_l[3], rel=0.05)
    assert np.std(np.log(n2[:, 2])) == pytest.approx(sig_n[2], rel=0.05)
    again = err.widen(compute, n, loss, model)
    np.testing.assert_array_equal(again[2], l2)  # seeded


def test_without_budgets_to_hold_out_the_loss_carries_the_floor_and_a_warning_says_so():
    runs = study("chinchilla", budgets=(1e18, 1e19, 1e20), sizes=7, noise=0.01, seed=2)
    params = {"bootstrap": {"draws": 50}, "budgets": {"min_runs": 8}}  # no budget has 8 runs
    result = analyse(runs, params, compute_model="6nd")
    err = result.surface.law_error
    assert err is not None and err.folds == [] and err.loss_per_ln_c == 0.0
    assert err.floor == 0.0025 and err.loss_used_per_ln_c == 0.0025  # conf/base's floor
    assert any("law's own error beyond the fit is not measured" in w
               and "N_opt's and D_opt's intervals" in w
               and "analysis.law_error_floor's 0.25%" in w for w in result.surface.warnings)
    bare = analyse(runs, {**params, "law_error_floor": 0.0}, compute_model="6nd")
    assert bare.surface.law_error is None
    assert any("carry the parameters' noise only" in w for w in bare.surface.warnings)


def test_the_floor_widens_the_loss_only_where_rollout_measured_less():
    below = LawError("chinchilla", c_centre=1e19, loss_per_ln_c=0.001, n_opt_per_ln_c=0.05,
                     seed=3, floor=0.0025)
    above = LawError("chinchilla", c_centre=1e19, loss_per_ln_c=0.004, n_opt_per_ln_c=0.05,
                     seed=3, floor=0.0025)
    compute = np.array([1e19, 1e21])
    np.testing.assert_allclose(below.sigma(compute)[0], [0, 0.0025 * np.log(100)])
    np.testing.assert_allclose(above.sigma(compute)[0], [0, 0.004 * np.log(100)])
    np.testing.assert_allclose(below.sigma(compute)[1], above.sigma(compute)[1])  # N_opt: none
    assert below.to_dict()["loss_error_floor_per_ln_c"] == 0.0025


def test_no_fold_starts_from_a_fit_that_saw_its_held_out_budget(monkeypatch):
    from flops_fit.fitting.laws import choice as choice_module

    runs = study("saturating", budgets=BUDGETS, noise=0.01, seed=5)
    x, y, log_l = (np.log(runs[c].to_numpy(float))
                   for c in ("model_size", "num_tokens", "final_loss"))
    calls, real = [], choice_module.fit_family

    def recording(name, x_, y_, log_l_, **kw):
        fit = real(name, x_, y_, log_l_, **kw)
        calls.append((name, x_.size, kw.get("start"), fit))
        return fit

    monkeypatch.setattr(choice_module, "fit_family", recording)
    choice = choice_module.choose_law(x, y, log_l, runs["compute_budget"].to_numpy(), law="auto",
                                      held_out=2, tie=0.1, min_runs=3, delta=1e-3,
                                      objective="huber_log")
    assert [f.budget for f in choice.folds] == [1e20, 1e21]
    for name, n, start, _ in calls:
        if start is None:
            continue
        # a start is a fit of fewer runs of the same family (a smaller fold), never a larger one
        sources = [m for other, m, _, fit in calls
                   if other == name and np.array_equal(fit.theta, start)]
        assert sources and max(sources) < n, (name, n, sources)
    # three budgets below the smallest fold: the study without its largest budget holds out
    # only 1e20, a fold of this one, so no lead fold is fitted
    assert set(choice.below["saturating"]) == {1e20, 1e21}


def test_a_documents_law_error_reads_back_as_the_analysis_widened_with_it():
    err = LawError("kaplan", c_centre=1e19, loss_per_ln_c=0.001, n_opt_per_ln_c=0.05, seed=7,
                   floor=0.0025)
    doc = err.to_dict()
    back = LawError.from_dict(doc)
    assert (back.law, back.c_centre, back.loss_used_per_ln_c, back.n_opt_per_ln_c, back.seed) \
        == ("kaplan", 1e19, 0.0025, 0.05, 7)
    compute, n = np.array([1e21]), np.full((50, 1), 1e9)
    loss = np.full((50, 1), 2.0)
    model = ComputeModel.six_nd()
    np.testing.assert_array_equal(back.widen(compute, n, loss, model)[2],
                                  err.widen(compute, n, loss, model)[2])
    # a document written before the seed and the floor travelled in it: the caller's seed
    old = {k: v for k, v in doc.items() if k not in ("seed", "loss_error_floor_per_ln_c")}
    assert LawError.from_dict(old, seed=3).seed == 3 and LawError.from_dict(old).floor == 0.0
    assert LawError.from_dict({**doc, "seed": None}, seed=4).seed == 4
    assert LawError.from_dict(None) is None and LawError.from_dict({"law": "x"}) is None
    assert LawError.from_dict({**doc, "folds": [{"odd": 1}]}).folds == []


@pytest.mark.parametrize(("key", "value"), [("centre_budget", 0.0), ("centre_budget", "x"),
                                            ("n_opt_error_per_ln_c", -0.1),
                                            ("loss_error_floor_per_ln_c", float("nan")),
                                            ("seed", -1), ("seed", 1.5), ("seed", "abc")])
def test_a_law_error_that_cannot_be_the_analysiss_is_one_error_naming_its_key(key, value):
    doc = LawError("chinchilla", c_centre=1e19, loss_per_ln_c=0.0, n_opt_per_ln_c=0.0,
                   seed=0).to_dict()
    with pytest.raises(ValueError, match=rf"approach_3\.law_error\.{key} is"):
        LawError.from_dict({**doc, key: value})
