"""Approaches 1 and 2: per-budget optima and the power laws through them.

- Approach 1: each budget's optimum is its lowest-loss run.
- Approach 2: per budget, a parabola of loss in x = log10 N (and, separately, in log10 D); its
  vertex is the optimum. A budget whose parabola opens downward or whose vertex lies outside the
  sampled range is flagged and left out of the power-law fits, with the reason.
- Power laws y = k C^e for N_opt, D_opt and L_opt, fitted by least squares in log10 space,
  with R^2.

Approach 2's estimators also run on bootstrap draws, vectorised over draws: a draw is a row of
resampling counts per run (pairs modes, `bootstrap.resample_weights`: a run with count 0 is
absent from the draw, counts weight the parabola fits) and/or a row of per-draw losses (the
residual bootstrap, `bootstrap.residual_losses`, from `approach2_residuals`). Approach 1 has no
per-draw version: its optimum is one of the sampled sizes, and a bootstrap of an argmin over a
grid does not estimate its error (see `fitting.isoflop.approaches`).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

MIN_PARABOLA_POINTS = 3
LAW_KEYS = ("n_opt", "d_opt", "l_opt")


@dataclass
class BudgetRuns:
    """The used runs of one budget, as arrays."""

    budget_id: int
    budget: float
    index: np.ndarray  # positions in the analysis runs table (rows of the bootstrap weights)
    model_size: np.ndarray
    num_tokens: np.ndarray
    loss: np.ndarray


def budget_groups(runs: pd.DataFrame) -> list[BudgetRuns]:
    """Used runs grouped by budget_id, in increasing budget. Positions index `runs` rows."""
    used = runs.reset_index(drop=True)
    used = used[used["used_in_fit"].astype(bool) & used["budget_id"].notna()]
    groups = []
    for budget_id, g in used.groupby("budget_id", sort=True):
        groups.append(
            BudgetRuns(
                budget_id=int(budget_id),
                budget=float(g["budget"].iloc[0]),
                index=g.index.to_numpy(),
                model_size=g["model_size"].to_numpy(float),
                num_tokens=g["num_tokens"].to_numpy(float),
                loss=g["final_loss"].to_numpy(float),
            )
        )
    return groups


# ---------------------------------------------------------------------------------------------
# Approach 1
# ---------------------------------------------------------------------------------------------


def approach1_point(group: BudgetRuns) -> dict[str, float]:
    i = int(np.argmin(group.loss))
    return {
        "model_size": group.model_size[i],
        "num_tokens": group.num_tokens[i],
        "loss": group.loss[i],
    }


# ---------------------------------------------------------------------------------------------
# Approach 2
# ---------------------------------------------------------------------------------------------


def _design(x: np.ndarray) -> tuple[np.ndarray, float]:
    """The parabola's design matrix (m, 3) in centred x (for conditioning), and the centre."""
    xc = float(x.mean())
    xs = x - xc
    return np.stack([xs * xs, xs, np.ones_like(xs)], axis=1), xc


def _weighted_parabolas(x: np.ndarray, y: np.ndarray, w: np.ndarray):
    """Least-squares y = c2 x^2 + c1 x + c0 per row of weights w (B, m), y (m,) or one row per
    draw (B, m): coefficients (B, 3), with NaN where fewer than 3 distinct x carry weight."""
    design, xc = _design(x)
    gram = np.einsum("bm,mi,mj->bij", w, design, design)
    if np.ndim(y) == 2:
        rhs = np.einsum("bm,mi,bm->bi", w, design, y)
    else:
        rhs = np.einsum("bm,mi,m->bi", w, design, y)
    ok = _distinct_counts(x, w) >= MIN_PARABOLA_POINTS
    coef = np.full((w.shape[0], 3), np.nan)
    if ok.any():
        coef[ok] = np.linalg.solve(gram[ok], rhs[ok][:, :, None])[:, :, 0]
    # back to uncentred x: c2 (x - xc)^2 + c1' (x - xc) + c0'
    c2, c1s, c0s = coef[:, 0], coef[:, 1], coef[:, 2]
    c1 = c1s - 2 * c2 * xc
    c0 = c0s - c1s * xc + c2 * xc * xc
    return np.stack([c2, c1, c0], axis=1)


def _distinct_counts(x: np.ndarray, w: np.ndarray) -> np.ndarray:
    _, inverse = np.unique(x, return_inverse=True)
    onehot = np.zeros((x.size, inverse.max() + 1))
    onehot[np.arange(x.size), inverse] = 1.0
    return ((w > 0).astype(float) @ onehot > 0).sum(axis=1)


def _vertex(coef: np.ndarray, x: np.ndarray, w: np.ndarray):
    """Vertex x*, value y*, and a reason code per row: '' ok, 'down', 'outside', 'few'."""
    c2, c1, c0 = coef[:, 0], coef[:, 1], coef[:, 2]
    with np.errstate(divide="ignore", invalid="ignore"):
        xv = -c1 / (2 * c2)
        yv = c0 - c1 * c1 / (4 * c2)
    present = w > 0
    lo = np.where(present, x[None, :], np.inf).min(axis=1)
    hi = np.where(present, x[None, :], -np.inf).max(axis=1)
    code = np.full(len(c2), "", dtype=object)
    code[~(c2 > 0)] = "down"
    code[(c2 > 0) & ((xv < lo) | (xv > hi))] = "outside"
    code[np.isnan(c2)] = "few"
    return xv, yv, lo, hi, code


def _ten_to(log10_value: float) -> str:
    """10^v as the report writes it, also where it overflows a float."""
    return f"{10**log10_value:.3g}" if abs(log10_value) < 300 else f"1e{log10_value:+.0f}"


def approach2_point(group: BudgetRuns) -> dict[str, object]:
    """Vertex of the loss-vs-log10 N and loss-vs-log10 D parabolas, with validity and reason."""
    w = np.ones((1, group.loss.size))
    xn, xd = np.log10(group.model_size), np.log10(group.num_tokens)
    cn = _weighted_parabolas(xn, group.loss, w)
    cd = _weighted_parabolas(xd, group.loss, w)
    vn, ln, n_lo, n_hi, code_n = _vertex(cn, xn, w)
    vd, _, d_lo, d_hi, code_d = _vertex(cd, xd, w)
    reasons = []
    for what, code, v, lo, hi in (
        ("log N", code_n[0], vn[0], n_lo[0], n_hi[0]),
        ("log D", code_d[0], vd[0], d_lo[0], d_hi[0]),
    ):
        if code == "few":
            reasons.append(
                f"fewer than {MIN_PARABOLA_POINTS} distinct sizes to fit the "
                f"loss-vs-{what} parabola"
            )
        elif code == "down":
            reasons.append(f"the loss-vs-{what} parabola opens downward (no minimum)")
        elif code == "outside":
            reasons.append(
                f"the loss-vs-{what} parabola's vertex at {_ten_to(v)} lies "
                f"outside the sampled range [{10**lo:.3g}, {10**hi:.3g}]"
            )
    with np.errstate(over="ignore"):  # a vertex far outside the sizes: inf, and invalid anyway
        n_vertex, d_vertex = (float(10 ** v[0]) if np.isfinite(v[0]) else np.nan for v in (vn, vd))
    return {
        "model_size": n_vertex,
        "num_tokens": d_vertex,
        "loss": float(ln[0]),
        "parabola_c2": float(cn[0, 0]),
        "parabola_c1": float(cn[0, 1]),
        "parabola_c0": float(cn[0, 2]),
        "log10_n_min": float(n_lo[0]),
        "log10_n_max": float(n_hi[0]),
        "valid": not reasons,
        "reason": "; ".join(reasons),
    }


def approach2_residuals(group: BudgetRuns) -> dict[str, np.ndarray]:
    """The loss-vs-log10 N parabola at the budget's runs: fitted losses, log residuals
    log(L / fitted) and each run's leverage (diagonal of the hat matrix), for the residual
    bootstrap. NaN fitted values when the parabola cannot be fitted."""
    x = np.log10(group.model_size)
    coef = _weighted_parabolas(x, group.loss, np.ones((1, x.size)))[0]
    fitted = coef[0] * x * x + coef[1] * x + coef[2]
    design, _ = _design(x)
    leverage = np.einsum("ij,ji->i", design, np.linalg.pinv(design))
    with np.errstate(divide="ignore", invalid="ignore"):
        residuals = np.log(group.loss / fitted)
    return {"fitted": fitted, "residuals": residuals, "leverage": leverage}


def approach2_draws(
    group: BudgetRuns, weights: np.ndarray | None = None, losses: np.ndarray | None = None
) -> dict[str, np.ndarray]:
    """Per draw: vertex N, D and loss, NaN where the draw's parabola fails, and why.

    `weights` (B, rows of the runs table) are resampling counts, `losses` (B, m) per-draw losses
    of the group's runs; a missing one counts every run once / uses the observed losses.
    `code` (B,) says why a draw's parabola failed ('' where it did not): 'few' (fewer than 3
    distinct sizes drawn), 'down' (no minimum) or 'outside' (vertex outside the drawn sizes).
    """
    if weights is None and losses is None:
        raise ValueError("approach2_draws needs weights or losses")
    draws = (weights if weights is not None else losses).shape[0]
    w = weights[:, group.index] if weights is not None else np.ones((draws, group.loss.size))
    y = losses if losses is not None else group.loss
    xn, xd = np.log10(group.model_size), np.log10(group.num_tokens)
    vn, ln, _, _, code_n = _vertex(_weighted_parabolas(xn, y, w), xn, w)
    vd, _, _, _, code_d = _vertex(_weighted_parabolas(xd, y, w), xd, w)
    code = np.where(code_n != "", code_n, code_d)
    ok = code == ""
    return {
        "model_size": np.where(ok, 10.0 ** np.where(ok, vn, 0.0), np.nan),
        "num_tokens": np.where(ok, 10.0 ** np.where(ok, vd, 0.0), np.nan),
        "loss": np.where(ok, ln, np.nan),
        "code": code,
    }


# ---------------------------------------------------------------------------------------------
# Power laws
# ---------------------------------------------------------------------------------------------


@dataclass
class PowerLaw:
    coefficient: float
    exponent: float
    r2: float | None
    n_points: int

    def __call__(self, compute):
        return self.coefficient * np.asarray(compute, dtype=float) ** self.exponent

    def to_dict(self) -> dict[str, object]:
        return {
            "coefficient": self.coefficient,
            "exponent": self.exponent,
            "r2": self.r2,
            "n_points": self.n_points,
        }


def fit_power_law(compute, values) -> PowerLaw | None:
    """log10 y = log10 k + e log10 C by least squares; None with fewer than 2 distinct budgets."""
    c = np.asarray(compute, dtype=float)
    y = np.asarray(values, dtype=float)
    ok = np.isfinite(c) & np.isfinite(y) & (c > 0) & (y > 0)
    c, y = c[ok], y[ok]
    if np.unique(c).size < 2:
        return None
    x, ly = np.log10(c), np.log10(y)
    slope, intercept = np.polyfit(x, ly, 1)
    pred = intercept + slope * x
    ss_tot = float(((ly - ly.mean()) ** 2).sum())
    r2 = 1.0 - float(((ly - pred) ** 2).sum()) / ss_tot if ss_tot > 0 and x.size > 2 else None
    return PowerLaw(
        coefficient=float(10**intercept), exponent=float(slope), r2=r2, n_points=int(x.size)
    )


def fit_power_law_draws(
    compute: np.ndarray, values: np.ndarray, budget_weights: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Weighted log-space power law per draw: values (B, k) at budgets `compute` (k,), budget
    weights (B, k) (0 leaves a budget out). Returns (coefficient (B,), exponent (B,)), NaN
    where fewer than 2 distinct budgets remain."""
    x = np.log10(np.asarray(compute, dtype=float))[None, :]
    with np.errstate(divide="ignore", invalid="ignore"):
        y = np.log10(values)
    w = np.where(np.isfinite(y) & (values > 0), budget_weights, 0.0)
    y = np.where(w > 0, y, 0.0)
    sw = w.sum(1)
    with np.errstate(divide="ignore", invalid="ignore"):
        xm = (w * x).sum(1) / sw
        ym = (w * y).sum(1) / sw
        sxx = (w * (x - xm[:, None]) ** 2).sum(1)
        sxy = (w * (x - xm[:, None]) * (y - ym[:, None])).sum(1)
        slope = sxy / sxx
    # budgets are distinct values of C, so two weighted budgets fix a line
    slope = np.where(((w > 0).sum(1) >= 2) & (sxx > 0), slope, np.nan)
    intercept = ym - slope * xm
    return 10.0**intercept, slope
