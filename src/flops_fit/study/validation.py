"""The validation run: train the predicted compute-optimal model at a budget the fit never saw
and score the law against what it reaches.

The budget is `study.validation.budget`; by default `min_factor` x the largest fitted budget
(the cheapest budget that is out of sample); `leftover`: what `study.max_compute` leaves after
the rounds (split over the validation runs), at least that floor and at most C*. The prediction is the recommended
approach's: Approach 3's loss at the run's own (N, D) over the surface's draws, else the
approach's L_opt(C) law. The run's loss is compared with the *predictive* interval, the
percentile interval of those draws each times exp(noise x z), noise being the study's run-to-run
noise in log-loss (`design.noise_sd`): a law can be right and one run still land off its
mean by the noise. With neighbours (N_opt/2 and 2 N_opt at the same budget), the verdict also
says whether the predicted optimum reached the lowest loss of the three.

validation.json also records which fit it scored (`checked_fit`): the analysis can be run again
after it (other runs, another law family), and a report must not quote a verdict on an earlier
fit as if it checked the one it reports (`checks_fit`).
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd

from flops_fit.fitting.bootstrap import interval
from flops_fit.fitting.outputs.draws import surface_draws
from flops_fit.fitting.surface.law import parametric_loss
from flops_fit.jsonsafe import json_safe
from flops_fit.parameters.study import StudyConfig
from flops_fit.planning.flops import readable_budget
from flops_fit.reporting.inputs import surface as surface_point
from flops_fit.study.design import Planner, noise_sd
from flops_fit.study.rounds import StudyConfigError, spent_flops
from flops_fit.study.target import Answer, answer_at, law_error_of

log = logging.getLogger(__name__)

#: what in scaling_laws' meta names the runs a fit saw and how its intervals were drawn
FIT_META_KEYS = ("n_runs", "n_runs_used", "budgets", "bootstrap", "confidence_level")


def checked_fit(doc: Mapping[str, Any], approach: str | None) -> dict[str, Any]:
    """The fit a validation of `approach` scores, named (`approach`, `law`: Approach 3's
    family, `n_runs`, `largest_budget`) and fingerprinted: a digest of the approach's section of
    scaling_laws (its parameters, intervals and law error), the compute model and the runs and
    bootstrap it was fitted with. Any refit that can change the prediction changes it."""
    meta = doc.get("meta") if isinstance(doc.get("meta"), Mapping) else {}
    section = doc.get(approach) if approach and isinstance(doc.get(approach), Mapping) else {}
    basis = {"approach": approach, "section": section, "compute_model": doc.get("compute_model"),
             "meta": {k: meta.get(k) for k in FIT_META_KEYS}}
    text = json.dumps(json_safe(basis), sort_keys=True, allow_nan=False)
    budgets = [b for b in meta.get("budgets") or [] if isinstance(b, int | float)]
    return {"approach": approach,
            "law": section.get("law") if approach == "approach_3" else None,
            "n_runs": meta.get("n_runs_used"),
            "largest_budget": max(budgets) if budgets else None,
            "fingerprint": hashlib.sha256(text.encode()).hexdigest()[:16]}


def checks_fit(validation: Mapping[str, Any], doc: Mapping[str, Any] | None) -> bool:
    """Whether a stored validation scored the fit `doc` is (its recorded `fit` fingerprint is
    `doc`'s); False for one that records none, as nothing says which fit it scored."""
    fit = validation.get("fit")
    if not isinstance(fit, Mapping) or not fit.get("fingerprint") or not isinstance(doc, Mapping):
        return False
    return checked_fit(doc, fit.get("approach"))["fingerprint"] == fit["fingerprint"]


def check_validation_budget(cfg: StudyConfig, largest: float) -> None:
    """A budget the user names must lie beyond the fitted ones: inside them a run tests an
    interpolation, and "validation passed" would claim more than it showed (one that costs
    more than study.max_compute fails the parameter check; one above C* is said to test more
    than the study's answer when it is chosen, `_explicit_budget_note`)."""
    cfg = StudyConfig.from_params(cfg)
    budget = cfg.validation.budget
    if not isinstance(budget, float | int):
        return
    if budget <= largest:
        raise StudyConfigError(
            f"study.validation.budget ({budget:.3g} FLOPs) is not above the pilot's largest "
            f"budget ({largest:.3g} FLOPs): a validation run must test the law beyond the "
            "budgets it was fitted to; set it above that, or null (study.validation.min_factor "
            "x the largest fitted budget)")


def _explicit_budget_note(cfg: StudyConfig, budget: float) -> str | None:
    """What `budget_from` adds for a study.validation.budget above C* (also a warning), None
    at or below it (a budget beyond study.max_compute fails the parameter check)."""
    if budget <= cfg.target_budget:
        return None
    note = (f"above study.target_budget ({cfg.target_budget:.3g} FLOPs): it checks an "
            "extrapolation beyond the answer the study is for")
    log.warning("study.validation.budget (%.3g FLOPs) is %s; at most study.target_budget, it "
                "would check the law where the study answers", budget, note)
    return note


def validation_budget(cfg: StudyConfig, plan: Sequence[Mapping[str, Any]]) -> tuple[float, str]:
    """The validation budget and how it was chosen."""
    cfg = StudyConfig.from_params(cfg)
    v = cfg.validation
    largest = max(float(r["compute_budget"]) for r in plan)
    floor = readable_budget(v.min_factor * largest)
    floor_why = (f"study.validation.min_factor ({v.min_factor:g}) x the largest fitted budget "
                 f"({largest:.3g} FLOPs)")
    if v.budget is None:
        return floor, floor_why
    if v.budget != "leftover":
        if float(v.budget) > largest:
            note = _explicit_budget_note(cfg, float(v.budget))
            return float(v.budget), "study.validation.budget" + (f", {note}" if note else "")
        # the rounds trained at or beyond the budget asked for (checked against the pilot
        # before it was planned): the nearest budget beyond the fit instead, saying why
        why = (f"{floor_why}, as study.validation.budget ({float(v.budget):.3g} FLOPs) is not "
               "above the budgets the rounds trained")
        log.warning("Validation at %.3g FLOPs: %s", floor, why)
        return floor, why
    runs = len(v.roles)
    budget = min((cfg.max_compute - spent_flops(plan)) / runs, cfg.target_budget)
    if budget < floor:
        return floor, floor_why + " (study.max_compute leaves less)"
    why = ("study.target_budget" if budget == cfg.target_budget else
           "what study.max_compute leaves after the rounds")
    return readable_budget(budget), why


def plan_validation(cfg: StudyConfig, plan: Sequence[Mapping[str, Any]],
                    doc: Mapping[str, Any], draws: pd.DataFrame, planner: Planner
                    ) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """The validation runs (plan records with `validation_role`) and what they test."""
    cfg = StudyConfig.from_params(cfg)
    budget, why = validation_budget(cfg, plan)
    answer = answer_at(doc, draws, budget)
    about = {"compute_budget": budget, "budget_from": why, "prediction": answer.to_dict(),
             "not_planned": None}
    if not cfg.validation.enabled:  # a plain `kedro run` runs the validation pipeline too
        about["not_planned"] = "study.validation.enabled is false"
        return [], about
    if answer.n_opt is None:
        about["not_planned"] = ("no approach has a fitted N_opt law, so there is no optimum to "
                                "validate (see scaling_laws.json's warnings)")
        return [], about
    roles = cfg.validation.roles
    records = []
    for role, factor in roles.items():
        planned = planner(budget, [answer.n_opt * factor])
        if not planned:
            about["not_planned"] = (
                f"the validation run '{role}' (N = {answer.n_opt * factor:.3g} at {budget:.3g} "
                "FLOPs) cannot be planned: its size is dropped by the planning limits "
                "(tokens per parameter, epochs; see the planning log); set "
                "study.validation.budget to another budget")
            return [], about
        records.append({**planned[0], "round": None, "validation_role": role})
    return records, about


def _predictive(doc: Mapping[str, Any], draws: pd.DataFrame, answer: Answer,
                record: Mapping[str, Any], level: float, seed: int):
    """(point, parameter interval, predictive interval) of the loss the record should reach."""
    n, d = float(record["model_size"]), float(record["num_tokens"])
    point, samples = answer.loss, answer.loss_draws
    if answer.approach == "approach_3" and (params := surface_point(doc)) is not None:
        point = float(parametric_loss(n, d, params))
        sampled = surface_draws(draws)
        if sampled is not None:
            with np.errstate(all="ignore"):
                samples = np.asarray(parametric_loss(n, d, sampled), dtype=float)
            if (error := law_error_of(doc)) is not None:  # beyond the fit, as predictions'
                samples = error.widen_loss(np.asarray([answer.compute]), samples[:, None])[:, 0]
    if samples is None:
        return point, (None, None), (None, None)
    z = np.random.default_rng(seed).standard_normal(samples.shape)
    noisy = samples * np.exp(noise_sd(doc) * z)
    return point, tuple(interval(samples, level)), tuple(interval(noisy, level))


def score_validation(records: Sequence[Mapping[str, Any]], results: pd.DataFrame,
                     doc: Mapping[str, Any], draws: pd.DataFrame, about: Mapping[str, Any]
                     ) -> dict[str, Any]:
    """validation.json: per run, the predicted and observed loss; the verdict on the law."""
    level = float((doc.get("meta") or {}).get("confidence_level", 0.95))
    seed = int(((doc.get("meta") or {}).get("bootstrap") or {}).get("seed") or 0)
    budget = float(about["compute_budget"])
    if not records:
        approach = (about.get("prediction") or {}).get("approach")
        return {"compute_budget": budget, "budget_from": about.get("budget_from"),
                "approach": approach, "fit": checked_fit(doc, approach),
                "confidence_level": level, "noise_sd": noise_sd(doc),
                "prediction": about.get("prediction"), "runs": [], "passed": None,
                "lowest_of_three": None,
                "verdict": f"no validation run: {about.get('not_planned')}; the law is not scored"}
    answer = answer_at(doc, draws, budget)
    by_id = {str(r.experiment_id): r for r in results.itertuples()} if len(results) else {}
    runs = []
    for record in records:
        point, param_iv, pred_iv = _predictive(doc, draws, answer, record, level, seed)
        row = by_id.get(str(record["experiment_id"]))
        completed = row is not None and getattr(row, "status", None) == "completed"
        observed = float(row.final_loss) if completed else None
        lo, hi = pred_iv
        where = (None if observed is None or lo is None else
                 "inside" if lo <= observed <= hi else "above" if observed > hi else "below")
        runs.append({
            "role": record["validation_role"], "experiment_id": record["experiment_id"],
            "model_size": float(record["model_size"]), "num_tokens": float(record["num_tokens"]),
            "predicted_loss": point, "parameter_interval": list(param_iv),
            "predictive_interval": list(pred_iv), "observed_loss": observed,
            "status": None if row is None else getattr(row, "status", None),
            "error_message": None if row is None or completed else
            getattr(row, "error_message", None), "verdict": where,
        })
    return {"compute_budget": budget, "budget_from": about.get("budget_from"),
            "approach": answer.approach, "fit": checked_fit(doc, answer.approach),
            "confidence_level": level,
            "noise_sd": noise_sd(doc), "prediction": answer.to_dict(), "runs": runs,
            **_verdict(runs, answer, doc.get("loss_unit"))}


def _verdict(runs: list[dict[str, Any]], answer: Answer, unit: str | None) -> dict[str, Any]:
    centre = next(r for r in runs if r["role"] == "optimum")
    unit = f" {unit}" if unit and unit != "loss" else ""
    if centre["observed_loss"] is None:
        state = "failed" if centre["status"] else "not run"
        return {"passed": None, "lowest_of_three": None, "verdict": (
            f"the validation run at {answer.compute:.3g} FLOPs has {state}"
            + (f": {centre['error_message']}" if centre.get("error_message") else "")
            + "; the law is not scored")}
    lo, hi = centre["predictive_interval"]
    text = (f"At {answer.compute:.3g} FLOPs the law ({answer.approach.replace('_', ' ')}) "
            f"predicted a loss of {centre['predicted_loss']:.4g}{unit}")
    if lo is None:
        text += f" (no interval); the run (N = {centre['model_size']:.3g}) reached " \
                f"{centre['observed_loss']:.4g}"
        passed = None
    else:
        text += (f" [{lo:.4g}, {hi:.4g}] for N = {centre['model_size']:.3g}; the run reached "
                 f"{centre['observed_loss']:.4g}: "
                 + {"inside": "inside the interval", "above": "above the interval (worse than "
                    "predicted)", "below": "below the interval (better than predicted)"}
                 [centre["verdict"]])
        passed = centre["verdict"] == "inside"
    lowest = None
    others = [r for r in runs if r["role"] != "optimum" and r["observed_loss"] is not None]
    if others:
        best = min([centre, *others], key=lambda r: r["observed_loss"])
        lowest = best is centre
        if lowest:
            text += "; the predicted N_opt reached the lowest loss of the three"
        else:
            side = "smaller" if best["role"] == "half" else "larger"
            text += (f"; N = {best['model_size']:.3g} reached a lower loss "
                     f"({best['observed_loss']:.4g}), so the optimum lies toward {side} models")
            passed = False if passed is not None else passed
    return {"passed": passed, "lowest_of_three": lowest, "verdict": text + "."}
