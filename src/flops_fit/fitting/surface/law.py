"""The parametric loss surface L(N, D) = E + A/N^alpha + B/D^beta and its compute-optimal allocation.

Pure algebra, no fitting: the synthetic backend draws losses from it, Approach 3 fits it
(`fitting.surface.fit`), reporting draws it. With C = 6 N D (Hoffmann et al. 2022, eq. 4), the
optimum is closed-form:

    N_opt(C) = G (C/6)^a,   D_opt(C) = G^-1 (C/6)^b,
    a = beta/(alpha+beta),  b = alpha/(alpha+beta),  G = (alpha A / (beta B))^(1/(alpha+beta)).

Every function takes the five parameters as a mapping (or an object with those attributes).
Each parameter may be a number or an array of shape (B,) -- one value per bootstrap draw; then
the results gain a leading draw axis: `optimal_allocation_6nd(C (m,), draws)` is (B, m).
"""

from __future__ import annotations

from collections.abc import Mapping
from contextlib import nullcontext
from typing import Any

import numpy as np

from flops_fit.fitting.laws.evaluate import by_family, family_loss, is_chinchilla, per_draw
from flops_fit.fitting.laws.families import DEFAULT_LAW
from flops_fit.planning.flops import FLOPS_PER_PARAM_TOKEN

PARAM_NAMES = ("E", "A", "B", "alpha", "beta")

#: Hoffmann et al. (2022), Approach 3: the synthetic backend's default truth.
CHINCHILLA_APPROACH_3: dict[str, float] = {
    "E": 1.69, "A": 406.4, "B": 410.7, "alpha": 0.34, "beta": 0.28,
}


def param_value(params: Mapping[str, Any] | Any, key: str) -> Any:
    """One parameter: a float, or a float array (one value per draw)."""
    value = params.get(key) if isinstance(params, Mapping) else getattr(params, key, None)
    if value is None:
        raise ValueError(f"parametric surface parameter {key!r} is missing")
    if np.ndim(value) == 0:
        return float(value)
    return np.asarray(value, dtype=float)


def parametric_loss(model_size: Any, num_tokens: Any, params: Mapping[str, Any]) -> np.ndarray:
    """L(N, D) = E + A / N^alpha + B / D^beta, elementwise.

    With per-draw parameters (B,), N and D carry the draw axis first, e.g. (B, m) as
    `optimal_allocation_6nd` returns them.
    """
    if not is_chinchilla(params):  # another family answers (its params name it: "law")
        return by_family(params, lambda name, named: loss_of_family(name, model_size,
                                                                    num_tokens, named))
    n = np.asarray(model_size, dtype=float)
    d = np.asarray(num_tokens, dtype=float)
    ndim = max(n.ndim, d.ndim)
    E, A, B, alpha, beta = (per_draw(param_value(params, k), ndim) for k in PARAM_NAMES)
    return E + A * n**-alpha + B * d**-beta


def loss_of_family(name: str, model_size: Any, num_tokens: Any, named: Mapping[str, Any]):
    """L(N, D) of any family (`fitting.laws.families`) with its named parameters."""
    if name == DEFAULT_LAW:
        return parametric_loss(model_size, num_tokens, named)
    return family_loss(name, model_size, num_tokens, named)


def allocation_constants(params: Mapping[str, Any]) -> dict[str, Any]:
    """a = beta/(alpha+beta), b = alpha/(alpha+beta), G = (alpha A / (beta B))^(1/(alpha+beta)).

    G is NaN unless alpha, beta, A and B are all positive; a and b are NaN where alpha+beta = 0.
    Floats for scalar parameters, arrays (B,) for per-draw ones.
    """
    alpha, beta = param_value(params, "alpha"), param_value(params, "beta")
    A, B = param_value(params, "A"), param_value(params, "B")
    if all(np.ndim(x) == 0 for x in (alpha, beta, A, B)):
        s = alpha + beta
        if not (alpha > 0 and beta > 0 and A > 0 and B > 0):
            nan = float("nan")
            return {"a": beta / s if s else nan, "b": alpha / s if s else nan, "G": nan}
        return {"a": beta / s, "b": alpha / s, "G": (alpha * A / (beta * B)) ** (1.0 / s)}
    alpha, beta, A, B = np.broadcast_arrays(
        *(np.asarray(x, dtype=float) for x in (alpha, beta, A, B))
    )
    s = alpha + beta
    ok = (alpha > 0) & (beta > 0) & (A > 0) & (B > 0)
    with np.errstate(all="ignore"):
        a = np.where(s != 0, beta / s, np.nan)
        b = np.where(s != 0, alpha / s, np.nan)
        G = np.where(ok, (alpha * A / (beta * B)) ** (1.0 / s), np.nan)
    return {"a": a, "b": b, "G": G}


def optimal_allocation_6nd(compute: Any, params: Mapping[str, Any]) -> tuple[np.ndarray, np.ndarray]:
    """Compute-optimal (N, D) on the surface for budget(s) C, with C = 6 N D (Hoffmann eq. 4).

    N_opt(C) = G (C/6)^a and D_opt(C) = G^-1 (C/6)^b. Scalar parameters: arrays of C's shape.
    Per-draw parameters (B,): arrays (B, *C.shape).
    """
    c6 = np.asarray(compute, dtype=float) / FLOPS_PER_PARAM_TOKEN
    k = allocation_constants(params)
    G, a, b = (per_draw(k[key], c6.ndim + np.ndim(k[key])) for key in ("G", "a", "b"))
    with np.errstate(all="ignore") if np.ndim(k["G"]) else nullcontext():
        n_opt = G * c6**a
        d_opt = c6**b / G
    return n_opt, d_opt


def allocation_power_laws_6nd(params: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
    """N_opt and D_opt as power laws k C^e of the compute C itself (not C/6):

    N_opt = (G 6^-a) C^a and D_opt = (G^-1 6^-b) C^b. Returns {"n_opt": {coefficient,
    exponent}, "d_opt": {...}}; per-draw parameters give arrays (B,).
    """
    k = allocation_constants(params)
    with np.errstate(all="ignore"):
        return {
            "n_opt": {
                "coefficient": k["G"] ** 1.0 * float(FLOPS_PER_PARAM_TOKEN) ** -k["a"],
                "exponent": k["a"],
            },
            "d_opt": {
                "coefficient": k["G"] ** -1.0 * float(FLOPS_PER_PARAM_TOKEN) ** -k["b"],
                "exponent": k["b"],
            },
        }
