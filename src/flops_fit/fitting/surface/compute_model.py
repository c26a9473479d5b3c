"""The study's compute model C = f(N) · D, and the compute-optimal allocation under it.

Approach 3 fits L(N, D); which (N, D) a budget C buys depends on how the study counts compute.
With f(N) = 6 N (imported runs, `flops_formula: 6nd` studies) the optimum is the closed form of
`fitting.surface.law`. The built-in GPT counts every matmul FLOP (`flops_formula: full`) and plugin
models are measured: there f(N) is the plan's `flops_per_token`, 1.2-3.4x 6 N at CPU sizes. Then

    N_opt(C) = argmin_N  L(N, C / f(N)),   D_opt(C) = C / f(N_opt),

solved numerically here, vectorised over budgets and bootstrap draws (`optimal_allocation`).

f is stored as the ratio r(N) = f(N) / (6 N) at the study's model sizes and interpolated in
(log N, log r) by a monotone cubic (PCHIP: through every point, no overshoot, a continuous
slope). Beyond the end sizes the end slope fades out within a factor 1.65 in N and r is then
held (never crossing 1 on its way there): beyond the largest model the extra cost per unit of
D (attention, the head) is assumed to keep about its share, which overstates it a little for a
transformer (whose share falls with width) and is exact for 6 N. The slope must be continuous:
d log f / d log N enters the optimum's condition, and a piecewise-linear r (a kink at every
size) pins N_opt(C) to a planned size over a range of budgets, a staircase in the frontier. A
ratio of 1 everywhere is the 6 N model, solved in closed form, so both paths agree then.

`analysis.compute_model` chooses the source: `auto` (the runs' `flops_per_token` column when
the table has one, which every study planned by flops-fit has, else 6 N), `6nd`, or `table`
(each run's own C / D, for imported tables whose C is not 6 N D).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass
from functools import cached_property
from typing import Any

import numpy as np
import pandas as pd
from scipy.interpolate import PchipInterpolator

from flops_fit.fitting.isoflop.estimators import fit_power_law_draws
from flops_fit.fitting.laws.evaluate import by_family, is_chinchilla, refine_allocation, sum_params
from flops_fit.fitting.laws.families import DEFAULT_LAW, FAMILIES
from flops_fit.fitting.surface.law import allocation_power_laws_6nd, param_value
from flops_fit.fitting.surface.law import optimal_allocation_6nd as closed_form_allocation
from flops_fit.parameters.analysis import COMPUTE_MODEL_SOURCES
from flops_fit.planning.flops import FLOPS_PER_PARAM_TOKEN, compute_6nd

logger = logging.getLogger(__name__)

#: |log(f / 6N)| below this at every size is the 6 N model (closed form)
EXACT_6ND_TOL = 1e-9
PER_UNIT_COLUMN = "flops_per_token"  # a plan field: training FLOPs per unit of D
# Numerical allocation: a scan of this many points over +-_SCAN_HALF_WIDTH in ln N around the
# closed-form guess (a factor 400 each way), then bisection between the best point's neighbours.
_SCAN_POINTS, _SCAN_HALF_WIDTH, _BISECTIONS = 49, 6.0, 64
# Beyond the planned sizes the slope of log r fades out over this width in ln N (a factor 1.65
# in N): enough for a continuous slope, short enough not to extrapolate the trend far.
_FADE_WIDTH = 0.5


class ComputeModelError(ValueError):
    """The runs do not define a compute model (no usable flops_per_token or C / D)."""


@dataclass(frozen=True)
class ComputeModel:
    """C = f(N) · D with f(N) = 6 N r(N); r interpolated in log-log over `log_n` (see module)."""

    kind: str  # "6nd" (r = 1, closed form) or "interpolated"
    source: str  # where f comes from, in words (reports show it)
    log_n: tuple[float, ...] = ()
    log_ratio: tuple[float, ...] = ()

    @classmethod
    def six_nd(cls, source: str = "C = 6 N D") -> ComputeModel:
        return cls(kind="6nd", source=source)

    @property
    def is_6nd(self) -> bool:
        return self.kind == "6nd"

    def ratio(self, model_size: Any) -> np.ndarray:
        """r(N) = f(N) / (6 N), elementwise."""
        n = np.asarray(model_size, dtype=float)
        if self.is_6nd:
            return np.ones_like(n)
        with np.errstate(divide="ignore", invalid="ignore"):
            return np.exp(self.log_ratio_at(np.log(n))[0])

    @cached_property
    def _pchip(self) -> tuple[PchipInterpolator, PchipInterpolator] | None:
        if len(self.log_n) < 2:
            return None
        inner = PchipInterpolator(np.asarray(self.log_n), np.asarray(self.log_ratio))
        return inner, inner.derivative()

    def log_ratio_at(self, log_n: Any, slope: bool = True) -> tuple[np.ndarray, np.ndarray | None]:
        """log r and (None when `slope` is false) its slope d log r / d log N at log N.

        PCHIP between the sizes; beyond an end, whose slope is s, the slope decays as
        s e^(-u/w), u the distance past the end in log N, so log r levels off at its end value
        + s w (`_fade_width`). The allocation's scan evaluates this at every (draw, budget,
        scan point) and needs no slope there.
        """
        x = np.asarray(log_n, dtype=float)
        if self.is_6nd or self._pchip is None:  # 6 N, or one size: r constant
            value = np.full_like(x, self.log_ratio[0] if self.log_ratio else 0.0)
            return value, (np.zeros_like(x) if slope else None)
        inner, slope_of = self._pchip
        knots = inner.x
        with np.errstate(invalid="ignore"):
            inside = np.clip(x, knots[0], knots[-1])
            value = inner(inside)
            d = slope_of(inside) if slope else None
            for end, u, sign in ((0, knots[0] - x, -1.0), (-1, x - knots[-1], 1.0)):
                if not (u > 0).any():
                    continue
                # past an end the clipped PCHIP slope is the end slope itself
                end_slope = float(slope_of(knots[end]))
                w = _fade_width(self.log_ratio[end], sign * end_slope)
                decay = np.exp(-np.maximum(u, 0.0) / w)  # 1 where x is not past this end
                value += sign * end_slope * w * (1.0 - decay)
                if slope:
                    d *= decay
        return value, d

    def flops_per_unit(self, model_size: Any) -> np.ndarray:
        """f(N): training FLOPs per unit of D."""
        n = np.asarray(model_size, dtype=float)
        return FLOPS_PER_PARAM_TOKEN * n * self.ratio(n)

    def units(self, compute: Any, model_size: Any) -> np.ndarray:
        """D = C / f(N)."""
        return np.asarray(compute, dtype=float) / self.flops_per_unit(model_size)

    @property
    def n_range(self) -> tuple[float, float] | None:
        if self.is_6nd or not self.log_n:
            return None
        return float(np.exp(self.log_n[0])), float(np.exp(self.log_n[-1]))

    def describe(self) -> str:
        """One line for reports: the formula and where f comes from."""
        if self.is_6nd:
            return f"C = 6·N·D ({self.source})"
        r = np.exp(np.asarray(self.log_ratio))
        lo, hi = self.n_range
        return (f"C = f(N)·D with f = {r.min():.3g}–{r.max():.3g} × 6N over N = {lo:.3g}–{hi:.3g}"
                f" ({self.source})")

    def short(self) -> str:
        """A few words for a headline: C = 6·N·D, or C = f(N)·D with f's range."""
        if self.is_6nd:
            return "C = 6·N·D"
        r = np.exp(np.asarray(self.log_ratio))
        return f"C = f(N)·D with f = {r.min():.3g}–{r.max():.3g} × 6N (the study's own FLOPs)"

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"kind": self.kind, "source": self.source,
                               "description": self.describe()}
        if not self.is_6nd:
            out["model_size"] = [float(np.exp(x)) for x in self.log_n]
            out["ratio_to_6n"] = [float(np.exp(x)) for x in self.log_ratio]
        return out

    @classmethod
    def from_dict(cls, doc: Mapping[str, Any] | None) -> ComputeModel:
        """Back from `to_dict` (scaling_laws["compute_model"]); None or a bare dict is 6 N."""
        if not isinstance(doc, Mapping) or doc.get("kind") != "interpolated":
            source = doc.get("source") if isinstance(doc, Mapping) else None
            return cls.six_nd(source or "C = 6 N D")
        n = np.asarray(doc.get("model_size") or [], dtype=float)
        r = np.asarray(doc.get("ratio_to_6n") or [], dtype=float)
        if n.size == 0 or n.size != r.size or not np.all((n > 0) & (r > 0)):
            logger.warning("the stored compute model %r is unreadable (model_size and "
                           "ratio_to_6n must be equal-length positive lists): using C = 6 N D",
                           dict(doc))
            return cls.six_nd("C = 6 N D: the stored compute model was unreadable")
        return cls("interpolated", str(doc.get("source", "")), tuple(np.log(n)), tuple(np.log(r)))


def _fade_width(log_r_end: float, outward_slope: float) -> float:
    """w of `ComputeModel.log_ratio_at` beyond one end: _FADE_WIDTH, shortened so that a ratio
    heading towards 1 (6 N) levels off before it would cross it."""
    if log_r_end * outward_slope < 0:
        return min(_FADE_WIDTH, abs(log_r_end / outward_slope))
    return _FADE_WIDTH


def from_points(model_size: Any, per_unit: Any, source: str) -> ComputeModel:
    """The model through (N, f) points: the median log-ratio per distinct N, interpolated."""
    n = np.asarray(model_size, dtype=float)
    f = np.asarray(per_unit, dtype=float)
    ok = np.isfinite(n) & np.isfinite(f) & (n > 0) & (f > 0)
    if not ok.any():
        raise ComputeModelError(f"{source}: no run has a finite positive N and compute per unit")
    frame = pd.DataFrame({"log_n": np.log(n[ok]),
                          "log_r": np.log(f[ok] / (FLOPS_PER_PARAM_TOKEN * n[ok]))})
    knots = frame.groupby("log_n", sort=True)["log_r"].median()
    if float(np.abs(knots.to_numpy()).max()) < EXACT_6ND_TOL:
        return ComputeModel.six_nd(f"{source}: exactly 6·N per unit of D")
    return ComputeModel("interpolated", source, tuple(knots.index.to_numpy(float)),
                        tuple(knots.to_numpy(float)))


def compute_model_of(runs: pd.DataFrame, source: str) -> ComputeModel:
    """The study's compute model from its analysis runs table (`analysis.compute_model`):
    `plan` the plan's flops_per_token (an error when the table has none), `auto` the same when
    the table has it and else 6 N, `6nd`, or `table` (each run's own C / D)."""
    if source not in COMPUTE_MODEL_SOURCES:
        raise ComputeModelError(
            f"analysis.compute_model must be one of {COMPUTE_MODEL_SOURCES}, got {source!r}")
    if source == "6nd":
        return ComputeModel.six_nd("analysis.compute_model = 6nd")
    n = pd.to_numeric(runs["model_size"], errors="coerce")
    if source == "table":
        per_unit = (pd.to_numeric(runs["compute"], errors="coerce")
                    / pd.to_numeric(runs["num_tokens"], errors="coerce"))
        return from_points(n, per_unit, "each run's own C / D (analysis.compute_model = table)")
    if PER_UNIT_COLUMN in runs.columns:
        per_unit = pd.to_numeric(runs[PER_UNIT_COLUMN], errors="coerce")
        if per_unit.notna().any():
            formulas = sorted(set(runs.get("flops_formula", pd.Series(dtype=str))
                                  .dropna().astype(str)) - {""})
            how = f" ({', '.join(formulas)})" if formulas else ""
            return from_points(n, per_unit, f"the plan's flops_per_token{how}, per run")
    if source == "plan":
        raise ComputeModelError(
            "compute model 'plan': the runs table has no usable flops_per_token column (a study "
            "planned by flops-fit carries one); choose '6nd' (C = 6 N D) or 'table' (each "
            "run's C / D)")
    return ComputeModel.six_nd("the runs carry no flops_per_token: C = 6 N D")


def require_compute_model(model: Any, where: str) -> ComputeModel:
    """`model` itself when it is a ComputeModel; otherwise an error that says how to choose one
    (C = f(N) D decides which (N, D) a budget buys, so it is never assumed)."""
    if not isinstance(model, ComputeModel):
        raise ComputeModelError(
            f"{where}: a compute model is required, got {model!r}: pass ComputeModel.six_nd() "
            f"for C = 6 N D, or compute_model_of(runs, source) with source one of "
            f"{', '.join(COMPUTE_MODEL_SOURCES)}")
    return model


def optimal_allocation(compute: Any, params: Mapping[str, Any] | Any,
                       model: ComputeModel) -> tuple[np.ndarray, np.ndarray]:
    """Compute-optimal (N, D) on the surface `params` for budget(s) C under `model`.

    Shapes as `surface.optimal_allocation`: C's shape for scalar parameters, (B, *C.shape) for
    per-draw parameters (B,). The 6 N model is the closed form; any other is solved by a scan
    and bisection in ln N on L(N, C / f(N)) (NaN where the parameters are).
    """
    if not is_chinchilla(params):  # another family answers (its params name it: "law")
        return by_family(params, lambda name, named: allocation_of_family(name, compute, named,
                                                                          model))
    if require_compute_model(model, "optimal_allocation").is_6nd:
        return closed_form_allocation(compute, params)
    c = np.asarray(compute, dtype=float)
    A, B, alpha, beta = (param_value(params, k) for k in ("A", "B", "alpha", "beta"))
    per_draw = any(np.ndim(v) for v in (A, B, alpha, beta))
    lead = np.shape(A if np.ndim(A) else alpha if np.ndim(alpha) else B if np.ndim(B) else beta)
    shape = (lead + c.shape) if per_draw else c.shape

    def col(v):  # a parameter broadcast to `shape` + a trailing scan axis
        return np.reshape(v, np.shape(v) + (1,) * (len(shape) - np.ndim(v) + 1))

    A_, B_, al, be = col(A), col(B), col(alpha), col(beta)
    with np.errstate(all="ignore"):  # C <= 0 or NaN parameters: NaN out, no RuntimeWarning
        log_c = np.broadcast_to(np.log(c), shape)[..., None]
        guess, _ = closed_form_allocation(c / float(np.exp(np.median(model.log_ratio))), params)
        x0 = np.log(np.broadcast_to(guess, shape))[..., None]
    x0 = np.where(np.isfinite(x0), x0, 0.0)
    log6 = np.log(float(FLOPS_PER_PARAM_TOKEN))

    def objective(x):  # L(N, C/f(N)) - E at ln N = x
        log_f = log6 + x + model.log_ratio_at(x, slope=False)[0]
        return A_ * np.exp(-al * x) + B_ * np.exp(be * (log_f - log_c))

    def derivative(x):  # d/dx of `objective`; d log f / dx = 1 + the slope of log r
        log_r, s = model.log_ratio_at(x)
        log_f = log6 + x + log_r
        return -al * A_ * np.exp(-al * x) + be * (1.0 + s) * B_ * np.exp(be * (log_f - log_c))

    with np.errstate(all="ignore"):
        offsets = np.linspace(-_SCAN_HALF_WIDTH, _SCAN_HALF_WIDTH, _SCAN_POINTS)
        step = offsets[1] - offsets[0]
        scan = x0 + offsets
        best = np.argmin(np.where(np.isfinite(h := objective(scan)), h, np.inf), axis=-1)
        centre = np.take_along_axis(scan, best[..., None], axis=-1)
        # Between the best scan point's neighbours the objective is smooth with one minimum,
        # where its derivative changes sign: bisection reaches it to machine precision.
        lo, hi = centre - step, centre + step
        for _ in range(_BISECTIONS):
            mid = 0.5 * (lo + hi)
            rising = derivative(mid) > 0
            hi = np.where(rising, mid, hi)
            lo = np.where(rising, lo, mid)
        x = (0.5 * (lo + hi))[..., 0]
        n_opt = np.exp(x)
        bad = ~np.isfinite(np.broadcast_to(guess, shape)) | ~np.isfinite(h.min(axis=-1))
        n_opt = np.where(bad, np.nan, n_opt)
        d_opt = model.units(np.broadcast_to(c, shape), n_opt)
    if not per_draw and not shape:
        return np.asarray(float(n_opt)), np.asarray(float(d_opt))
    return n_opt, d_opt


def allocation_of_family(name: str, compute: Any, named: Mapping[str, Any],
                         model: ComputeModel) -> tuple[np.ndarray, np.ndarray]:
    """Compute-optimal (N, D) of any family (`fitting.laws.families`) with its named parameters:
    the optimum of its sum A/N^alpha + B/D^beta where its loss increases with that sum, else a
    numeric search started there (`laws.evaluate.refine_allocation`)."""
    if name == DEFAULT_LAW:
        return optimal_allocation(compute, named, model)
    n_sum, d_sum = optimal_allocation(compute, sum_params(name, named), model)
    if FAMILIES[name].allocation_sum is not None:
        return n_sum, d_sum
    return refine_allocation(name, compute, named, model, n_sum)


def allocation_laws(params: Mapping[str, Any] | Any, model: ComputeModel,
                    budgets: Any) -> dict[str, dict[str, Any]]:
    """N_opt and D_opt as power laws k C^e: {"n_opt": {coefficient, exponent}, "d_opt": ...}.

    Under 6 N, Chinchilla's closed form (`surface.allocation_power_laws_6nd`, exact at every C).
    Under any other model, or for another family, N_opt(C) is not a power law: the law is fitted, in log-log least squares, through
    the optima at `budgets` (the study's own), as Approaches 1-2 fit theirs. Per-draw parameters
    give arrays (B,); NaN where fewer than two budgets have an optimum.
    """
    if require_compute_model(model, "allocation_laws").is_6nd and is_chinchilla(params):
        return allocation_power_laws_6nd(params)
    c = np.asarray(sorted(set(float(b) for b in np.ravel(budgets))), dtype=float)
    n_opt, d_opt = optimal_allocation(c, params, model)
    out = {}
    for key, values in (("n_opt", n_opt), ("d_opt", d_opt)):
        rows = np.reshape(values, (-1, c.size))  # (draws, budgets); one row for point values
        coefficient, exponent = fit_power_law_draws(c, rows, np.ones_like(rows))
        if np.ndim(values) == 1:
            coefficient, exponent = float(coefficient[0]), float(exponent[0])
        out[key] = {"coefficient": coefficient, "exponent": exponent}
    return out


#: warn when an imported table's own C differs from 6 N D by more than this (median)
C_RATIO_WARN = 0.05


def compute_model_warnings(runs: pd.DataFrame, model: ComputeModel) -> list[str]:
    """A 6 N model on runs whose own compute says otherwise (the fix: compute_model: table)."""
    if not model.is_6nd or "compute" not in runs.columns:
        return []
    used = runs[runs["used_in_fit"]] if "used_in_fit" in runs.columns else runs
    ratio = (pd.to_numeric(used["compute"], errors="coerce")
             / compute_6nd(used["model_size"], used["num_tokens"]))
    ratio = ratio[np.isfinite(ratio) & (ratio > 0)]
    if ratio.empty or abs(float(ratio.median()) - 1.0) <= C_RATIO_WARN:
        return []
    return [
        f"the runs' own compute C is {float(ratio.median()):.3g} x 6 N D (median), but "
        f"Approach 3's optimum uses {model.describe()}: set analysis.compute_model: table to "
        f"allocate with each run's C / D instead"
    ]
