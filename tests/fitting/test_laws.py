"""Law families: their Jacobians, fits, allocation, the choice by rollout and the analysis."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from flops_fit import analyse
from flops_fit.fitting.laws.choice import choose, choose_law, lead_fold, rollout_folds
from flops_fit.fitting.laws.families import FAMILIES, LAW_NAMES, log_loss_and_jacobian
from flops_fit.fitting.laws.solver import fit_family
from flops_fit.fitting.outputs.draws import surface_draws
from flops_fit.fitting.runs.simulated import FAMILY_TRUTHS, synthetic_results
from flops_fit.fitting.surface.compute_model import (
    ComputeModel,
    optimal_allocation,
)
from flops_fit.fitting.surface.compute_model import allocation_of_family as family_allocation
from flops_fit.fitting.surface.law import loss_of_family as family_loss
from flops_fit.fitting.surface.law import parametric_loss
from flops_fit.parameters.analysis import AnalysisConfig

TRUTHS = FAMILY_TRUTHS
SIX_ND = ComputeModel.six_nd()


def study(law: str, budgets=(1e17, 1e18, 1e19, 1e20), sizes=7, noise=0.0, seed=0):
    """An IsoFLOP study drawn from family `law` under C = 6 N D, centred on its optima."""
    return synthetic_results(budgets=budgets, sizes_per_budget=sizes, span=8.0, noise=noise,
                             seed=seed, law=law)


@pytest.mark.parametrize("law", LAW_NAMES)
def test_jacobian_matches_finite_differences(law):
    rng = np.random.default_rng(1)
    x, y = rng.uniform(8, 14, 9), rng.uniform(14, 20, 9)
    theta = rng.uniform(0.2, 1.0, (3, FAMILIES[law].n_params))
    _, jac = log_loss_and_jacobian(law, theta, x, y)
    for i in range(theta.shape[1]):
        step = np.zeros(theta.shape[1])
        step[i] = 1e-6
        up, _ = log_loss_and_jacobian(law, theta + step, x, y, jacobian=False)
        down, _ = log_loss_and_jacobian(law, theta - step, x, y, jacobian=False)
        np.testing.assert_allclose(jac[..., i], (up - down) / 2e-6, atol=1e-7)


@pytest.mark.parametrize("law", LAW_NAMES)
def test_each_family_recovers_its_own_truth(law):
    runs = study(law)
    x, y, log_l = (np.log(runs[c].to_numpy(float))
                   for c in ("model_size", "num_tokens", "final_loss"))
    fit = fit_family(law, x, y, log_l)
    assert fit.ok
    predicted, _ = log_loss_and_jacobian(law, fit.theta, x, y, jacobian=False)
    assert np.max(np.abs(predicted[0] - log_l)) < 1e-4
    # the optimum it implies is the truth's
    c = 1e21
    n_fit, _ = family_allocation(law, c, fit.params, SIX_ND)
    n_true, _ = family_allocation(law, c, TRUTHS[law], SIX_ND)
    assert float(n_fit) == pytest.approx(float(n_true), rel=0.02)


@pytest.mark.parametrize("law", LAW_NAMES)
def test_allocation_is_the_minimum_along_the_budget(law):
    model = ComputeModel("interpolated", "test", (np.log(1e6), np.log(1e9)),
                         (np.log(1.5), np.log(1.1)))
    for c in (1e18, 1e21):
        n_opt, d_opt = family_allocation(law, c, TRUTHS[law], model)
        grid = float(n_opt) * np.exp(np.linspace(-0.05, 0.05, 2001))
        loss = family_loss(law, grid, model.units(c, grid), TRUTHS[law])
        assert float(grid[np.argmin(loss)]) == pytest.approx(float(n_opt), rel=2e-4)
        assert float(d_opt) == pytest.approx(float(model.units(c, n_opt)), rel=1e-12)


def test_mixed_draws_take_each_draws_own_family():
    params = {"law": np.array(["chinchilla", "kaplan", "chinchilla"]),
              **{k: np.full(3, v) for k, v in TRUTHS["chinchilla"].items()},
              **{f"kaplan.{k}": np.full(3, v) for k, v in TRUTHS["kaplan"].items()}}
    n, d = optimal_allocation(np.array([1e19, 1e20]), params, SIX_ND)
    chin_n, _ = optimal_allocation(np.array([1e19, 1e20]), TRUTHS["chinchilla"], SIX_ND)
    kap_n, _ = family_allocation("kaplan", np.array([1e19, 1e20]), TRUTHS["kaplan"], SIX_ND)
    np.testing.assert_allclose(n[0], chin_n)
    np.testing.assert_allclose(n[1], kap_n)
    loss = parametric_loss(n, d, params)
    np.testing.assert_allclose(loss[1], family_loss("kaplan", kap_n, d[1], TRUTHS["kaplan"]))


def test_tie_rule_prefers_fewer_parameters_only_within_the_tie():
    errors = np.array([0.100, 0.104, 0.095])  # 5, 4 and 6 parameters; 0.104 < 1.1 x 0.095
    assert choose(errors, [5, 4, 6], tie=0.1) == 1
    assert choose(errors, [5, 4, 6], tie=0.0) == 2
    assert choose(np.array([np.nan, np.inf, 0.2]), [5, 4, 6], tie=0.1) == 2
    assert choose(np.array([np.nan, np.nan]), [5, 4], tie=0.1) == -1


def test_rollout_holds_out_the_largest_budgets_and_keeps_three_to_fit():
    budgets = np.repeat([1.0, 2.0, 3.0, 4.0, 5.0], 3)
    folds = rollout_folds(budgets, 5)
    assert [f.budget for f in folds] == [4.0, 5.0]
    assert folds[0].train.sum() == 9 and folds[1].train.sum() == 12
    assert [f.budget for f in rollout_folds(budgets[:12], 2)] == [4.0]
    assert rollout_folds(np.repeat([1.0, 2.0, 3.0], 3), 2) == []
    six = np.repeat([1.0, 2.0, 3.0, 4.0, 5.0, 6.0], 3)
    assert lead_fold(six, rollout_folds(six, 2)).budget == 4.0  # the 5-budget subset's fold
    assert lead_fold(budgets, folds) is None  # the 4-budget subset holds out 4.0 only


@pytest.mark.parametrize("law", ["saturating", "kaplan"])
def test_auto_chooses_the_family_that_made_the_runs(law):
    runs = study(law, budgets=(1e17, 1e18, 1e19, 1e20, 1e21), noise=0.01, seed=3)
    x, y, log_l = (np.log(runs[c].to_numpy(float))
                   for c in ("model_size", "num_tokens", "final_loss"))
    choice = choose_law(x, y, log_l, runs["compute_budget"].to_numpy(), law="auto", held_out=2,
                        min_runs=3, tie=0.1, delta=1e-3, objective="huber_log")
    assert choice.chosen == law, choice.held_out_rms
    assert choice.held_out_rms[law] < choice.held_out_rms["chinchilla"]


@pytest.mark.parametrize("disagree", [False, True])
def test_the_pilot_draws_repeat_the_choice_and_the_rest_only_when_they_disagree(
        monkeypatch, disagree):
    from flops_fit.fitting.laws import choice as choice_module

    runs = study("kaplan", budgets=(1e17, 1e18, 1e19, 1e20, 1e21), noise=0.01, seed=3)
    x, y, log_l = (np.log(runs[c].to_numpy(float))
                   for c in ("model_size", "num_tokens", "final_loss"))
    choice = choose_law(x, y, log_l, runs["compute_budget"].to_numpy(), law="auto", held_out=2,
                        min_runs=3, tie=0.1, delta=1e-3, objective="huber_log")
    names, seen = list(choice.fits), []

    def errors(choice_, name, x_, y_, draws_, weights, delta, objective):
        seen.append(draws_.shape[0])
        err = np.full(draws_.shape[0], 0.5 if name == choice.chosen else 1.0)
        if disagree and name == "chinchilla" and draws_.shape[0] == 10:
            err[1] = 0.1  # the pilot's second draw would choose Chinchilla's form
        return err

    monkeypatch.setattr(choice_module, "rollout_errors", errors)
    log_draws = np.repeat(log_l[None, :], 30, axis=0)
    pick, how = choice_module.draw_choice(choice, x, y, log_draws, None, tie=0.1, pilot=10,
                                          delta=1e-3, objective="huber_log")
    assert pick.shape == (30,)
    if disagree:
        assert set(seen) == {10, 20} and "every draw repeats" in how
        assert names[pick[1]] == "chinchilla" and names[pick[11]] == choice.chosen
    else:
        assert set(seen) == {10} and "the other draws keep it" in how
        assert all(names[p] == choice.chosen for p in pick)


def test_analysis_with_auto_law_answers_with_the_chosen_family_and_repeats_the_choice():
    runs = study("saturating", noise=0.01, seed=5)
    cfg = {"law": "auto", "target_budgets": [1e21], "bootstrap": {"draws": 60}}
    result = analyse(runs, cfg, compute_model="6nd")
    a3 = result.scaling_laws["approach_3"]
    assert a3["law"] == "saturating"
    assert set(a3["law_params"]) == set(FAMILIES["saturating"].param_names)
    shares = a3["law_choice"]["draw_shares"]
    assert shares["saturating"] > 0.5 and sum(shares.values()) == pytest.approx(1.0)
    assert "repeats the choice" in a3["bootstrap"]["note"]
    # the prediction is the saturating law's optimum, inside its interval
    row = result.predictions.query("approach == 'approach_3'").iloc[0]
    n_true, _ = family_allocation("saturating", 1e21, TRUTHS["saturating"], SIX_ND)
    assert row.model_size == pytest.approx(float(optimal_allocation(1e21, a3, SIX_ND)[0]), rel=1e-9)
    assert row.model_size_lo < float(n_true) < row.model_size_hi
    # the draws table carries each draw's family, and reads back as a params mapping
    draws = surface_draws(result.draws)
    assert set(np.unique(draws["law"])) <= set(LAW_NAMES)
    n_draws, _ = optimal_allocation(np.array([1e21]), draws, SIX_ND)
    assert np.isfinite(n_draws).mean() > 0.9


def test_auto_with_too_few_budgets_to_choose_says_so_in_a_warning():
    runs = study("saturating", budgets=(1e17, 1e18, 1e19), noise=0.01, seed=5)
    result = analyse(runs, {"law": "auto", "target_budgets": [1e21],
                            "bootstrap": {"draws": 20}}, compute_model="6nd")
    assert result.surface.law == "chinchilla"
    (warning,) = [w for w in result.surface.warnings if "auto" in w]
    assert warning.startswith("analysis.law is auto but no family could be chosen: fewer than "
                              "4 budgets with 3+ runs")


def test_pinned_chinchilla_is_todays_analysis():
    runs = study("chinchilla", noise=0.01, seed=2)
    base = analyse(runs, {"target_budgets": [1e21], "bootstrap": {"draws": 40}}, "6nd")
    a3 = base.scaling_laws["approach_3"]
    assert a3["law"] == "chinchilla" and a3["law_choice"] is None
    assert "approach_3_law" not in base.draws


def test_unknown_law_is_an_error_naming_the_key():
    with pytest.raises(ValueError, match="law"):
        AnalysisConfig.from_params({"law": "power"})


def test_a_pinned_family_answers_and_chinchillas_form_is_still_reported():
    runs = study("kaplan", noise=0.01, seed=4)
    result = analyse(runs, {"law": "kaplan", "target_budgets": [1e21],
                            "bootstrap": {"draws": 40}}, "6nd")
    a3 = result.scaling_laws["approach_3"]
    assert a3["law"] == "kaplan" and a3["law_choice"]["mode"] == "pinned"
    assert a3["law_choice"]["draw_shares"] == {"kaplan": 1.0, "chinchilla": 0.0}
    assert all(v is not None for v in a3["intervals"]["alpha"])  # Chinchilla's, every draw
    n_true, _ = family_allocation("kaplan", 1e21, TRUTHS["kaplan"], SIX_ND)
    row = result.predictions.query("approach == 'approach_3'").iloc[0]
    assert row.model_size_lo < float(n_true) < row.model_size_hi


def test_a_fit_whose_term_in_n_or_d_vanished_is_told_apart_from_a_small_term():
    """ln A at -40 leaves a law without its term in N (so no family allocation); F's term, the
    interaction, may vanish: what is left is Chinchilla's form, whose allocation holds."""
    from flops_fit.fitting.laws.families import vanished

    names = FAMILIES["interaction"].theta_names  # ln A, ln B, ln E, ln F, alpha, beta
    truth = FAMILY_TRUTHS["interaction"]
    theta = np.array([np.log(truth["A"]), np.log(truth["B"]), np.log(truth["E"]),
                      np.log(truth["F"]), truth["alpha"], truth["beta"]])
    rows = np.repeat(theta[None, :], 5, axis=0)
    rows[1, names.index("ln A")] = -40.0
    rows[2, names.index("ln B")] = -40.0
    rows[3, names.index("ln F")] = -40.0
    rows[4, names.index("ln A")] = -2.0  # small (1e-3 of the loss), still there
    x, y = np.log([1e7, 1e9]), np.log([1e9, 1e11])
    assert vanished("interaction", rows, x, y).tolist() == [False, True, True, False, False]


def test_draws_whose_term_vanished_are_failed_draws_not_answers():
    """An interaction study (3% noise) in which a tenth of the draws lose their term in N or
    in D: those draws put N_opt(1e23) anywhere from e^-205 to e^140 when counted; left out and
    counted as failed, the interval is a few e-folds wide and holds the truth."""
    runs = study("interaction", budgets=(1e17, 1e18, 1e19, 1e20, 1e21), noise=0.03, seed=4)
    result = analyse(runs, {"law": "auto", "bootstrap": {"draws": 200, "seed": 4}},
                     compute_model="6nd")
    report = result.surface.bootstrap
    assert result.surface.law == "interaction"
    assert 0.03 < report.failed_draw_share < 0.15
    row = result.predict([1e23], approach="approach_3").iloc[0]
    n_true, _ = family_allocation("interaction", 1e23, FAMILY_TRUTHS["interaction"], SIX_ND)
    assert np.log(row.model_size_hi / row.model_size_lo) < 8
    assert row.model_size_lo < float(n_true) < row.model_size_hi


def test_a_family_whose_fit_lost_its_term_in_n_does_not_answer():
    """Runs whose loss depends on D alone: the interaction family, which predicts the held-out
    budget best here, fits them by dropping its terms in N. Under auto it is left out of the
    choice and of every draw (the reason says so); pinned, it answers with a warning, and its
    draws, which lose the term too, are failed draws."""
    rng = np.random.default_rng(12)
    rows = []
    for c in (1e17, 1e18, 1e19, 1e20):
        for n in 0.1 * c**0.5 * np.geomspace(1 / 8, 8, 7):
            d = c / (6 * n)
            rows.append({"experiment_id": f"r{len(rows)}", "model_size": n, "num_tokens": d,
                         "compute": c, "compute_budget": c,
                         "final_loss": (1.7 + 400 / d**0.3) * np.exp(0.01 * rng.normal())})
    runs = pd.DataFrame(rows)
    auto = analyse(runs, {"law": "auto", "bootstrap": {"draws": 100, "seed": 1}},
                   compute_model="6nd")
    choice = auto.surface.choice
    errors = {k: v for k, v in choice.held_out_rms.items() if v is not None}
    assert min(errors, key=errors.get) == "interaction"
    assert auto.surface.law != "interaction" and choice.left_out == ["interaction"]
    assert choice.reason.endswith(
        "interaction left out: its fit to all runs lost a term in N or in D, a smaller law "
        "than the family")
    assert choice.draw_shares["interaction"] == 0.0
    assert auto.surface.bootstrap.failed_draw_share < 0.15
    pinned = analyse(runs, {"law": "interaction", "bootstrap": {"draws": 20}},
                     compute_model="6nd")
    assert any("law's fit lost its term in N or in D" in w for w in pinned.surface.warnings)
    assert pinned.surface.bootstrap.failed_draws == 20
