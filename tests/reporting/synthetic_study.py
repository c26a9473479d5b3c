"""A small, fully known study in the shape of the analysis outputs (`flops_fit.schema`).

Losses come from Chinchilla's fitted surface L(N, D) = E + A/N^α + B/D^β (Hoffmann et al. 2022)
with 0.4% multiplicative noise, on 7 budgets from 1e17 to 1e21 FLOPs with 9 sizes each. Two runs
fail, one is an outlier that analysis excluded, the largest budget is held out of the fits, and
the laws, curves and predictions are derived from the same numbers, so every value the report
prints is known here.
"""

from __future__ import annotations

import copy
from typing import Any

import numpy as np
import pandas as pd

TRUE = {"E": 1.69, "A": 406.4, "B": 410.7, "alpha": 0.34, "beta": 0.28}
BUDGETS = [float(c) for c in np.geomspace(1e17, 1e21, 7)]
HELD_OUT = BUDGETS[-1]
TARGETS = [1e22, 1e23, 1e24]
SIZES_PER_BUDGET = 9
FAILED_IDS = ("c1e19-n4", "c1e21-n0")
OUTLIER_ID = "c2.2e18-n6"
APPROACHES = ("approach_1", "approach_2", "approach_3")


def chinchilla_loss(n, d, p=TRUE):
    n, d = np.asarray(n, float), np.asarray(d, float)
    return p["E"] + p["A"] / n ** p["alpha"] + p["B"] / d ** p["beta"]


def surface_constants(p=TRUE) -> dict[str, float]:
    alpha, beta = p["alpha"], p["beta"]
    g = (alpha * p["A"] / (beta * p["B"])) ** (1 / (alpha + beta))
    return {"G": g, "a": beta / (alpha + beta), "b": alpha / (alpha + beta)}


def chinchilla_allocation(c, p=TRUE):
    k = surface_constants(p)
    c = np.asarray(c, float)
    return k["G"] * (c / 6) ** k["a"], (c / 6) ** k["b"] / k["G"]


def _fit_power_law(c, y) -> tuple[float, float, float]:
    x, z = np.log(c), np.log(y)
    slope, intercept = np.polyfit(x, z, 1)
    r2 = 1 - np.sum((z - (slope * x + intercept)) ** 2) / np.sum((z - z.mean()) ** 2)
    return float(np.exp(intercept)), float(slope), float(r2)


def make_results() -> pd.DataFrame:
    rng = np.random.default_rng(0)
    rows = []
    for budget in BUDGETS:
        centre = 0.5987 * budget**0.4516
        for i, n in enumerate(np.geomspace(centre / 10, centre * 10, SIZES_PER_BUDGET)):
            n = float(round(n))
            d = float(round(budget / (6 * n)))
            eid = f"c{budget:.2g}-n{i}".replace("e+", "e")
            loss = float(chinchilla_loss(n, d) * np.exp(rng.normal(0, 0.004)))
            status, error = "completed", ""
            if eid == OUTLIER_ID:
                loss *= 1.6
            if eid in FAILED_IDS:
                loss, status, error = np.nan, "failed", "RuntimeError: loss became NaN at step 812"
            rows.append({
                "experiment_id": eid, "compute_budget": budget, "model_size": n,
                "num_tokens": d, "tokens_per_param": d / n, "final_loss": loss,
                "train_loss": loss * 0.98 if status == "completed" else np.nan,
                "status": status, "error_message": error, "seed": 1234, "backend": "synthetic",
                "num_replicas": 1, "num_replicas_completed": int(status == "completed"),
            })
    return pd.DataFrame(rows)


def make_analysis_runs(results: pd.DataFrame) -> pd.DataFrame:
    """`results` as analysis hands it on: budget, used_in_fit and the reason a run is left out."""
    runs = results.copy()
    runs["budget_id"] = runs.compute_budget.rank(method="dense").astype(int) - 1
    runs["budget"] = runs.compute_budget
    runs["reason"] = ""
    runs.loc[runs.status == "failed", "reason"] = "failed: " + runs.error_message
    runs.loc[runs.experiment_id == OUTLIER_ID, "reason"] = "loss 1.6x the IsoFLOP parabola (outlier)"
    runs["used_in_fit"] = runs.reason == ""
    return runs


def make_optimal_points(results: pd.DataFrame) -> pd.DataFrame:
    rows = []
    ok = results[(results.status == "completed") & (results.experiment_id != OUTLIER_ID)]
    for budget, g in ok.groupby("compute_budget"):
        used = budget != HELD_OUT
        reason = "" if used else "held out for the extrapolation check"
        best = g.loc[g.final_loss.idxmin()]
        rows.append({"approach": "approach_1", "compute_budget": budget,
                     "model_size": best.model_size, "num_tokens": best.num_tokens,
                     "loss": best.final_loss, "used_in_fit": used, "reason": reason})
        x = np.log10(g.model_size.to_numpy())
        c2, c1, c0 = np.polyfit(x, g.final_loss.to_numpy(), 2)
        xv = -c1 / (2 * c2)
        n = 10**xv
        rows.append({"approach": "approach_2", "compute_budget": budget, "model_size": n,
                     "num_tokens": budget / (6 * n), "loss": c0 - c1**2 / (4 * c2),
                     "used_in_fit": used, "reason": reason, "parabola_c2": c2,
                     "parabola_c1": c1, "parabola_c0": c0, "log10_n_min": x.min(),
                     "log10_n_max": x.max()})
        n3, d3 = chinchilla_allocation(budget)
        rows.append({"approach": "approach_3", "compute_budget": budget, "model_size": float(n3),
                     "num_tokens": float(d3), "loss": float(chinchilla_loss(n3, d3)),
                     "used_in_fit": used, "reason": reason})
    df = pd.DataFrame(rows)
    df["tokens_per_param"] = df.num_tokens / df.model_size
    cols = ["approach", "compute_budget", "model_size", "num_tokens", "loss", "tokens_per_param",
            "used_in_fit", "reason", "parabola_c2", "parabola_c1", "parabola_c0",
            "log10_n_min", "log10_n_max"]
    return df[cols]


def _law(coefficient, exponent, r2, spread=0.02) -> dict[str, Any]:
    return {"coefficient": coefficient, "exponent": exponent, "r2": r2,
            "interval": {"coefficient": [coefficient / 1.4, coefficient * 1.4],
                         "exponent": [exponent - spread, exponent + spread]}}


def make_scaling_laws(results: pd.DataFrame, optima: pd.DataFrame) -> dict[str, Any]:
    laws: dict[str, Any] = {"loss_unit": "nats"}  # Chinchilla's losses are cross entropy
    fitted = optima[optima.used_in_fit]
    for approach in ("approach_1", "approach_2"):
        p = fitted[fitted.approach == approach]
        laws[approach] = {
            key: _law(*_fit_power_law(p.compute_budget, p[col]))
            for key, col in (("n_opt", "model_size"), ("d_opt", "num_tokens"),
                             ("l_opt", "loss"))
        }
        laws[approach]["warnings"] = []
    laws["approach_1"]["warnings"] = [
        "Approach 1 picks the best of 9 sizes per budget: its optimum is quantised to the grid."
    ]
    laws["approach_2"]["excluded_budgets"] = [
        {"compute_budget": HELD_OUT, "reason": "held out for the extrapolation check"}]
    k = surface_constants()
    spread = {"E": 0.02, "A": 40.0, "B": 35.0, "alpha": 0.01, "beta": 0.01, "a": 0.012,
              "b": 0.012, "G": 0.05}
    a3: dict[str, Any] = {**TRUE, **k, "objective": 0.0123, "n_runs": int(len(results) - 4)}
    a3["intervals"] = {key: [a3[key] - s, a3[key] + s] for key, s in spread.items()}
    a3["n_opt"] = _law(k["G"] * 6 ** -k["a"], k["a"], None, 0.012)
    a3["d_opt"] = _law(6 ** -k["b"] / k["G"], k["b"], None, 0.012)
    a3["warnings"] = []
    laws["approach_3"] = a3
    used_budgets = [b for b in BUDGETS if b != HELD_OUT]
    n_completed = int((results.status == "completed").sum())
    laws["meta"] = {
        "n_runs": int(len(results)), "n_runs_used": n_completed - 1, "n_budgets": len(BUDGETS),
        "budgets": BUDGETS, "bootstrap": {"draws": 200, "seed": 7, "resample": "runs"},
        "confidence_level": 0.95, "target_budgets": TARGETS, "source": "synthetic",
    }
    laws["excluded_runs"] = [{"experiment_id": OUTLIER_ID,
                              "reason": "loss 1.6x the IsoFLOP parabola (outlier)"}]
    check: dict[str, Any] = {"held_out_budget": HELD_OUT}
    held = optima[optima.compute_budget == HELD_OUT]
    for approach in APPROACHES:
        actual = held[held.approach == "approach_2"].iloc[0]
        if approach == "approach_3":
            n_pred, d_pred = chinchilla_allocation(HELD_OUT)
            l_pred = float(chinchilla_loss(n_pred, d_pred))
            n_pred = float(n_pred)
        else:
            n_pred = laws[approach]["n_opt"]["coefficient"] * HELD_OUT ** laws[approach]["n_opt"][
                "exponent"]
            l_pred = laws[approach]["l_opt"]["coefficient"] * HELD_OUT ** laws[approach]["l_opt"][
                "exponent"]
        check[approach] = {
            "predicted_loss": l_pred, "actual_loss": float(actual.loss),
            "loss_rel_error": (l_pred - actual.loss) / actual.loss,
            "predicted_n_opt": n_pred, "actual_n_opt": float(actual.model_size),
            "n_opt_rel_error": (n_pred - actual.model_size) / actual.model_size,
        }
    laws["extrapolation_check"] = check
    a_values = {a: laws[a]["n_opt"]["exponent"] for a in APPROACHES}
    b_values = {a: laws[a]["d_opt"]["exponent"] for a in APPROACHES}
    laws["agreement"] = {
        "exponent_a": {"agree": True, "values": a_values,
                       "message": "all three N_opt exponents lie within each other's 95% "
                                  "intervals"},
        "exponent_b": {"agree": True, "values": b_values,
                       "message": "all three D_opt exponents lie within each other's 95% "
                                  "intervals"},
    }
    laws["warnings"] = [f"Only {len(used_budgets)} budgets were fitted; exponent intervals are "
                        "wide."]
    return laws


def _law_values(laws, approach, key, c):
    law = laws[approach][key]
    mid = law["coefficient"] * c ** law["exponent"]
    lo_e, hi_e = law["interval"]["exponent"]
    pivot = np.sqrt(BUDGETS[0] * BUDGETS[-2])
    lo = mid * (c / pivot) ** (lo_e - law["exponent"]) / 1.05
    hi = mid * (c / pivot) ** (hi_e - law["exponent"]) * 1.05
    return mid, np.minimum(lo, hi), np.maximum(lo, hi)


def make_curves(laws: dict[str, Any]) -> pd.DataFrame:
    c = np.geomspace(BUDGETS[0], TARGETS[-1], 40)
    frames = []
    for approach in APPROACHES:
        n, n_lo, n_hi = _law_values(laws, approach, "n_opt", c)
        d, d_lo, d_hi = _law_values(laws, approach, "d_opt", c)
        if approach == "approach_3":
            loss = chinchilla_loss(n, d)
            loss_lo, loss_hi = loss * 0.99, loss * 1.01
        else:
            loss, loss_lo, loss_hi = _law_values(laws, approach, "l_opt", c)
        frames.append(pd.DataFrame({
            "approach": approach, "compute_budget": c, "model_size": n, "model_size_lo": n_lo,
            "model_size_hi": n_hi, "num_tokens": d, "num_tokens_lo": d_lo, "num_tokens_hi": d_hi,
            "loss": loss, "loss_lo": loss_lo, "loss_hi": loss_hi}))
    return pd.concat(frames, ignore_index=True)


def make_predictions(laws: dict[str, Any]) -> pd.DataFrame:
    c = np.asarray(TARGETS)
    rows = []
    for approach in APPROACHES:
        n, n_lo, n_hi = _law_values(laws, approach, "n_opt", c)
        d, d_lo, d_hi = _law_values(laws, approach, "d_opt", c)
        if approach == "approach_3":
            loss = chinchilla_loss(n, d)
            loss_lo, loss_hi = loss * 0.99, loss * 1.01
        else:
            loss, loss_lo, loss_hi = _law_values(laws, approach, "l_opt", c)
        for i, budget in enumerate(c):
            rows.append({
                "approach": approach, "compute_budget": float(budget), "model_size": n[i],
                "model_size_lo": n_lo[i], "model_size_hi": n_hi[i], "num_tokens": d[i],
                "num_tokens_lo": d_lo[i], "num_tokens_hi": d_hi[i],
                "tokens_per_param": d[i] / n[i], "tokens_per_param_lo": d_lo[i] / n_hi[i],
                "tokens_per_param_hi": d_hi[i] / n_lo[i], "loss": loss[i], "loss_lo": loss_lo[i],
                "loss_hi": loss_hi[i]})
    return pd.DataFrame(rows)


_CACHE: dict[str, Any] = {}


def make_study() -> dict[str, Any]:
    """{results, analysis_runs, optimal_points, scaling_laws, predictions, scaling_law_curves};
    fresh copies."""
    if not _CACHE:
        results = make_results()
        optima = make_optimal_points(results)
        laws = make_scaling_laws(results, optima)
        _CACHE.update(results=results, analysis_runs=make_analysis_runs(results),
                      optimal_points=optima, scaling_laws=laws,
                      predictions=make_predictions(laws), scaling_law_curves=make_curves(laws))
    return copy.deepcopy(_CACHE)
