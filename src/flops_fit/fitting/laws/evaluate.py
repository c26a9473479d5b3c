"""Any family's loss and compute-optimal allocation from a params mapping.

A params mapping names the family that answers under ``"law"``: one name, or one name per
bootstrap draw (an array (B,), when the draws repeat the choice of family). Chinchilla's
parameters keep their plain keys (E, A, B, alpha, beta); every other family's are prefixed with
its name (``kaplan.q``; `LawFamily.key`). Without ``"law"`` a mapping is Chinchilla's, as every
mapping was before there were families. `surface.law.parametric_loss` and
`surface.compute_model.optimal_allocation` read any mapping (their `family_loss` and
`family_allocation` serve one family), so every caller (predictions, figures, the study's
rounds) serves every family; this module holds the other families' formulas and the numeric
optimum of a family without a monotone sum.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from flops_fit.fitting.laws.families import DEFAULT_LAW, FAMILIES, family

# The numeric allocation of a family without a monotone sum: a scan of ln N over +-_HALF_WIDTH
# around its sum-part's optimum, then golden-section search between the best point's neighbours.
_SCAN_POINTS, _HALF_WIDTH, _GOLDEN_STEPS = 65, 5.0, 60


def law_of(params: Mapping[str, Any] | Any) -> Any:
    """The answering family: a name, an array of names (one per draw), or None (Chinchilla)."""
    value = params.get("law") if isinstance(params, Mapping) else getattr(params, "law", None)
    if value is None or isinstance(value, str):
        return value
    arr = np.asarray(value)
    return str(arr) if arr.ndim == 0 else arr.astype(str)


def is_chinchilla(params: Mapping[str, Any] | Any) -> bool:
    law = law_of(params)
    if law is None or isinstance(law, str):
        return law in (None, DEFAULT_LAW)
    return bool(np.all(law == DEFAULT_LAW))


def family_params(params: Mapping[str, Any] | Any, name: str) -> dict[str, Any]:
    """Family `name`'s named parameters from a params mapping (floats or arrays (B,))."""
    fam = family(name)
    out = {}
    for key in fam.param_names:
        full = fam.key(key)
        value = params.get(full) if isinstance(params, Mapping) else getattr(params, full, None)
        if value is None:
            raise ValueError(f"scaling-law parameter {full!r} of the {name} family is missing")
        out[key] = float(value) if np.ndim(value) == 0 else np.asarray(value, dtype=float)
    return out


def per_draw(value: Any, ndim: int) -> Any:
    """A per-draw array (B,) shaped (B, 1, ...) to broadcast over `ndim`-dimensional values;
    a scalar as it is."""
    if np.ndim(value) == 0:
        return value
    return np.reshape(value, np.shape(value) + (1,) * max(0, ndim - np.ndim(value)))


def family_loss(name: str, model_size: Any, num_tokens: Any, named: Mapping[str, Any]):
    """L(N, D) of family `name` (not Chinchilla's: `surface.law.parametric_loss`) with named
    parameters (per-draw arrays lead, as in `surface.law.parametric_loss`)."""
    n = np.asarray(model_size, dtype=float)
    d = np.asarray(num_tokens, dtype=float)
    p = {k: per_draw(v, max(n.ndim, d.ndim)) for k, v in named.items()}
    with np.errstate(over="ignore", invalid="ignore", divide="ignore"):
        if name == "kaplan":
            return (p["A"] * n ** -p["alpha"] + p["B"] / d) ** p["q"]
        if name == "interaction":
            tn, td = n ** -p["alpha"], d ** -p["beta"]
            return p["E"] + p["A"] * tn + p["B"] * td + p["F"] * tn * td
        if name == "saturating":
            s = p["A"] * n ** -p["alpha"] + p["B"] * d ** -p["beta"]
            return p["L_max"] * (1.0 + 1.0 / s) ** -p["k"]
    family(name)
    raise ValueError(f"no loss for the {name} family here (Chinchilla's is surface.law's)")


def select(law: np.ndarray, values: dict[str, np.ndarray]) -> np.ndarray:
    """Per draw (the leading axis), the value of the draw's own family."""
    out = None
    for name, value in values.items():
        value = np.asarray(value, dtype=float)
        pick = per_draw(law == name, value.ndim)
        out = np.where(pick, value, np.nan if out is None else out)
    return out


def by_family(params: Mapping[str, Any] | Any, fn):
    """fn(family, its named params) under the params' own family, or, with one family per
    draw, each draw's value from its own family (tuples elementwise)."""
    law = law_of(params)
    if law is None or isinstance(law, str):
        name = law or DEFAULT_LAW
        return fn(name, family_params(params, name))
    values = {name: fn(name, family_params(params, name)) for name in np.unique(law)
              if name in FAMILIES}
    first = next(iter(values.values()))
    if isinstance(first, tuple):
        return tuple(select(law, {k: v[i] for k, v in values.items()})
                     for i in range(len(first)))
    return select(law, values)


def sum_params(name: str, named: Mapping[str, Any]) -> dict[str, Any]:
    """The (A, B, alpha, beta) of the sum S whose minimum is the family's optimum (for a family
    without one, `interaction`, its sum part: the start of `refine_allocation`)."""
    keys = family(name).allocation_sum or ("A", "B", "alpha", "beta")
    out = {}
    for target, key in zip(("A", "B", "alpha", "beta"), keys, strict=True):
        out[target] = named[key] if isinstance(key, str) else np.full(np.shape(named["A"]), key)
    return out


def refine_allocation(name: str, compute: Any, named: Mapping[str, Any], model, n_guess):
    """argmin over N of L(N, C / f(N)) for family `name`, near `n_guess` (its sum part's
    optimum, same shape): a scan of ln N, then golden-section search."""
    c = np.asarray(compute, dtype=float)
    shape = np.shape(n_guess)
    c_full = np.broadcast_to(c, shape)[..., None]
    draw_ndim = len(shape) - c.ndim

    def loss_at(x):  # L(N, C / f(N)) at ln N = x (..., points)
        n = np.exp(x)
        p = {k: per_draw(v, draw_ndim + c.ndim + 1) if np.ndim(v) else v for k, v in named.items()}
        return family_loss(name, n, model.units(c_full, n), p)

    with np.errstate(all="ignore"):
        x0 = np.log(np.where(np.isfinite(n_guess), n_guess, 1.0))[..., None]
        offsets = np.linspace(-_HALF_WIDTH, _HALF_WIDTH, _SCAN_POINTS)
        step = offsets[1] - offsets[0]
        scan = x0 + offsets
        values = loss_at(scan)
        best = np.argmin(np.where(np.isfinite(values), values, np.inf), axis=-1)
        centre = np.take_along_axis(scan, best[..., None], axis=-1)
        lo, hi = centre - step, centre + step
        ratio = (np.sqrt(5.0) - 1.0) / 2.0
        for _ in range(_GOLDEN_STEPS):
            m1, m2 = hi - ratio * (hi - lo), lo + ratio * (hi - lo)
            left = loss_at(m1) < loss_at(m2)
            hi = np.where(left, m2, hi)
            lo = np.where(left, lo, m1)
        n_opt = np.exp(0.5 * (lo + hi))[..., 0]
        n_opt = np.where(np.isfinite(n_guess) & np.isfinite(values.min(axis=-1)), n_opt, np.nan)
        d_opt = model.units(np.broadcast_to(c, shape), n_opt)
    if not shape:
        return np.asarray(float(n_opt)), np.asarray(float(d_opt))
    return n_opt, d_opt
