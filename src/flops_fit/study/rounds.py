"""Rounds of a steered study: the study's plan across rounds, when to stop, and the table.

A study is its pilot (`sweep_plan`, round 0) plus one document per later round
(`02_intermediate/study/round_<k>.json`): the assessment of N_opt(C*) after the rounds before
it, the runs it adds (plan records with `round` = k) and why, or, for the last one, the reason
the study stopped. Runs keep their experiment ids across rounds, so nothing completed is ever
trained again, and the study's plan is always the pilot plus every round's runs.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd

from flops_fit.parameters.study import StudyConfig
from flops_fit.planning.trunks import added_flops
from flops_fit.schema import STUDY_ROUND_COLUMNS
from flops_fit.study.design import RoundDesign
from flops_fit.study.target import Answer

log = logging.getLogger(__name__)


class StudyConfigError(ValueError):
    """A `params:study` value that cannot work with this study; the message names the key."""


class StudyStateError(RuntimeError):
    """The study's files are not in a state the next step can start from (says which to run)."""


def study_plan(pilot: Sequence[Mapping[str, Any]], rounds: Sequence[Mapping[str, Any]]
               ) -> list[dict[str, Any]]:
    """The pilot's records (round 0) followed by every later round's, in round order."""
    plan = [{**r, "round": int(r.get("round") or 0)} for r in pilot]
    seen = {r["experiment_id"] for r in plan}
    for doc in sorted(rounds, key=lambda d: int(d["round"])):
        for record in doc.get("runs") or []:
            if record["experiment_id"] not in seen:
                seen.add(record["experiment_id"])
                plan.append(dict(record))
    return plan


def check_target_budget(cfg: StudyConfig, largest: float) -> None:
    """The target must lie beyond the pilot's largest budget (also checked from the planning
    parameters before the pilot is planned)."""
    if cfg.target_budget < largest:
        raise StudyConfigError(
            f"study.target_budget ({cfg.target_budget:.3g} FLOPs) is below the pilot's largest "
            f"budget ({largest:.3g} FLOPs): the study would answer a question its own runs "
            "already cover; set it to the budget you mean to train at, or plan a smaller pilot "
            "(planning.compute_budgets)")


def check_study(cfg: StudyConfig, pilot: Sequence[Mapping[str, Any]]) -> None:
    """The study's parameters against its pilot plan, before anything trains."""
    cfg = StudyConfig.from_params(cfg)
    if not pilot:
        raise StudyConfigError("the pilot plan (sweep_plan) has no runs")
    check_target_budget(cfg, max(float(r["compute_budget"]) for r in pilot))
    cost = spent_flops(pilot)
    if cfg.max_compute < cost:
        raise StudyConfigError(
            f"study.max_compute ({cfg.max_compute:.3g} FLOPs) is smaller than the pilot alone "
            f"({cost:.3g} FLOPs to train sweep_plan): raise it, or plan a cheaper pilot "
            "(planning.compute_budgets, planning.model_sizes.num)")


def pilot_fingerprint(pilot: Sequence[Mapping[str, Any]]) -> str:
    """Which pilot a round was planned from: a digest of its experiment ids."""
    ids = "\n".join(sorted(str(r["experiment_id"]) for r in pilot))
    return hashlib.sha1(ids.encode()).hexdigest()[:12]


#: where a study's round files are, for messages that say to delete them
ROUND_FILES = "02_intermediate/study in the data root: data/, or --params data_root"


def check_pilot(docs: Sequence[Mapping[str, Any]], fingerprint: str,
                pilot: str = "sweep_plan's (its runs changed since)") -> None:
    """Every round file must have been planned from the pilot the study has now (`pilot`
    says which one that is, for the message)."""
    stale = [int(d["round"]) for d in docs if d.get("pilot") not in (None, fingerprint)]
    if stale:
        raise StudyStateError(
            f"round(s) {', '.join(map(str, stale))} were planned from another pilot than "
            f"{pilot}: restore the planning parameters, or start the study anew by deleting "
            f"the round files ({ROUND_FILES})")


def check_target(docs: Sequence[Mapping[str, Any]], target_budget: float) -> None:
    """Every round file must have been planned to answer the study's C* as it is now: rounds
    for another C* would sit in one table under one N_opt(C*)."""
    other = sorted({(int(d["round"]), float(c)) for d in docs
                    if (c := (d.get("assessment") or {}).get("compute_budget")) is not None
                    and not np.isclose(float(c), target_budget, rtol=1e-9)})
    if other:
        was = ", ".join(sorted({f"{c:.3g}" for _, c in other}))
        raise StudyStateError(
            f"round file(s) {', '.join(str(k) for k, _ in other)} answered N_opt at {was} "
            f"FLOPs, but study.target_budget is now {target_budget:.3g}: restore it, or start "
            f"the study anew by deleting the round files ({ROUND_FILES})")


def current_round(plan: Sequence[Mapping[str, Any]]) -> int:
    return max((int(r.get("round") or 0) for r in plan), default=0)


def spent_flops(plan: Sequence[Mapping[str, Any]], upto: int | None = None) -> float:
    """FLOPs that training the study's runs (of rounds <= upto) costs: their planned FLOPs, but
    each trunk only once under `planning.design: trunks` (`planning.trunks.added_flops`)."""
    return added_flops([r for r in plan if upto is None or int(r.get("round") or 0) <= upto])


def check_fit_is_current(plan: Sequence[Mapping[str, Any]], fitted_ids: set[str]) -> None:
    """Every planned run must be in the fit the next round is planned from."""
    missing: dict[int, int] = {}
    for r in plan:
        if r["experiment_id"] not in fitted_ids:
            k = int(r.get("round") or 0)
            missing[k] = missing.get(k, 0) + 1
    if missing:
        which = ", ".join(f"{n} of round {k}" for k, n in sorted(missing.items()))
        raise StudyStateError(
            f"the fit (analysis_runs) does not include every planned run ({which}): train and "
            "fit them first (`kedro run --pipelines training,analysis`), or let `kedro study` "
            "do it")


def moved(answer: Answer, previous: Mapping[str, Any] | None) -> str | None:
    """Why an interval within the precision is not settled yet: it does not overlap the one the
    study had a round earlier (the answer moved, or another approach took over), so at least one
    of them is wrong and a narrow interval alone says nothing. None when they overlap."""
    prev = previous or {}
    lo, hi = answer.n_opt_interval
    p_lo, p_hi = prev.get("n_opt_lo"), prev.get("n_opt_hi")
    if None in (lo, hi, p_lo, p_hi) or (hi >= p_lo and lo <= p_hi):
        return None
    return (f"N_opt's interval [{lo:.3g}, {hi:.3g}] ({answer.approach}) does not overlap the one "
            f"a round earlier, [{p_lo:.3g}, {p_hi:.3g}] ({prev.get('approach')}), so it is not "
            "settled yet")


def stop_before_design(cfg: StudyConfig, answer: Answer, plan: Sequence[Mapping[str, Any]],
                       previous: Mapping[str, Any] | None = None) -> str | None:
    """Why no further round is needed or allowed, judged before designing one (None: go on).
    `previous`: the assessment a round earlier (the last round file's)."""
    k = current_round(plan)
    if answer.approach is None or answer.n_opt is None:
        return ("no approach has a fitted N_opt law to plan a round from: the runs do not "
                "locate an optimum (see scaling_laws.json's warnings)")
    ratio = answer.ratio
    unsettled = moved(answer, previous)
    if ratio is not None and ratio <= cfg.precision and unsettled is None:
        return (f"precise enough: N_opt({cfg.target_budget:.3g}) interval ratio {ratio:.2f} is "
                f"within study.precision ({cfg.precision:g})")
    if k >= cfg.max_rounds:
        return (f"study.max_rounds ({cfg.max_rounds}) rounds after the pilot are done"
                + (f"; {unsettled}" if unsettled else ""))
    if ratio is not None and ratio <= cfg.precision:
        log.info("Within study.precision, and yet another round: %s", unsettled)
    return None


def previous_assessment(docs: Sequence[Mapping[str, Any]]) -> Mapping[str, Any] | None:
    """The assessment in the latest round file: N_opt(C*) as the study had it a round ago."""
    planned = [d for d in docs if d.get("assessment")]
    return max(planned, key=lambda d: int(d["round"]))["assessment"] if planned else None


def allowance(cfg: StudyConfig, plan: Sequence[Mapping[str, Any]]) -> float:
    """What the next round may spend, within what max_compute leaves: at least round_compute x
    the FLOPs so far, and more when that pace would leave max_compute unspent after the rounds
    left (the geometric pace that reaches it by max_rounds): the budgets that set N_opt(C*)'s
    interval are the large ones, and a study that only doubles each round reaches them last."""
    spent = spent_flops(plan)
    left = cfg.max_compute - spent
    if spent <= 0 or left <= 0:
        return 0.0
    rounds_left = max(1, cfg.max_rounds - current_round(plan))
    pace = spent * ((cfg.max_compute / spent) ** (1.0 / rounds_left) - 1.0)
    return float(min(max(cfg.round_compute * spent, pace), left))


def max_compute_binds(cfg: StudyConfig, plan: Sequence[Mapping[str, Any]]) -> bool:
    """True when what max_compute leaves is less than round_compute x the FLOPs so far."""
    spent = spent_flops(plan)
    return cfg.max_compute - spent < cfg.round_compute * spent


def stop_after_design(cfg: StudyConfig, design: RoundDesign, plan_allowance: float,
                      squeezed: bool = False) -> str | None:
    """Why the designed round is not worth training (None: train it). `squeezed`: max_compute
    left the round less than round_compute x the FLOPs so far."""
    if not design.units:
        cheapest = design.notes[0] if design.notes else "no candidate run fits"
        return (f"the next round would exceed study.max_compute: {plan_allowance:.3g} FLOPs "
                f"are left for it and {cheapest}" if design.candidates else
                f"no round can be planned: {cheapest}")
    forced = any(u.forced for u in design.units)
    gain = design.expected_gain
    if not forced and gain is not None and gain < cfg.min_expected_gain:
        removed = (f"the best next round is expected to remove only {100 * gain:.1f}% of "
                   f"N_opt({cfg.target_budget:.3g})'s variance (study.min_expected_gain "
                   f"{100 * cfg.min_expected_gain:.0f}%)")
        if squeezed:
            return (f"{removed}: study.max_compute leaves only {plan_allowance:.3g} FLOPs, "
                    "too few for the runs that would narrow it; raise study.max_compute to go on")
        return (f"{removed}: the losses the candidate runs would measure barely tell the fit's "
                "draws apart (a loss flat in N, or noise larger than what the runs could "
                "resolve), so more runs of this kind will not narrow it")
    return None


def round_document(k: int, answer: Answer, plan: Sequence[Mapping[str, Any]],
                   design: RoundDesign | None, stop_reason: str | None, level: float,
                   plan_allowance: float) -> dict[str, Any]:
    """The file of round k: the assessment after rounds < k, and its runs or why it stopped."""
    runs = [] if stop_reason else [dict(r) for r in design.records]
    return {
        "round": k,
        "assessment": {**answer.to_dict(), "after_round": k - 1,
                       "runs_so_far": len(plan), "flops_so_far": spent_flops(plan)},
        "stop_reason": stop_reason,
        "allowance": plan_allowance,
        "planned_flops": float(sum(r["planned_flops"] for r in runs)),
        "trained_flops": added_flops(runs, plan),  # each trunk once: what the round costs
        "design": design.summary() if design is not None else None,
        "expected_interval_ratio": design.expected_ratio(level) if design is not None else None,
        "runs": runs,
    }


def rounds_table(plan: Sequence[Mapping[str, Any]], docs: Sequence[Mapping[str, Any]]
                 ) -> pd.DataFrame:
    """study_rounds: one row per round (0 = the pilot): the runs and FLOPs it added, the FLOPs
    so far, N_opt(C*) with its interval after its fit, and, on the last row, the stop reason."""
    by_round = {int(d["round"]): d for d in docs}
    last = current_round(plan)
    rows, so_far = [], 0.0
    for k in range(last + 1):
        runs = [r for r in plan if int(r.get("round") or 0) == k]
        added = spent_flops(plan, k) - so_far
        so_far += added
        after = (by_round.get(k + 1) or {}).get("assessment") or {}
        rows.append({
            "round": k, "runs_added": len(runs), "flops_added": added, "flops_so_far": so_far,
            "approach": after.get("approach"), "n_opt": after.get("n_opt"),
            "n_opt_lo": after.get("n_opt_lo"), "n_opt_hi": after.get("n_opt_hi"),
            "interval_ratio": after.get("interval_ratio"),
            "stop_reason": (by_round.get(k + 1) or {}).get("stop_reason"),
        })
    table = pd.DataFrame(rows, columns=list(STUDY_ROUND_COLUMNS))
    return table.replace({np.nan: None})
