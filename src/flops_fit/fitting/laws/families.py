"""The scaling-law families Approach 3 can fit, one home each: parameters, log-loss and its
Jacobian (for the batched solver), named parameters, and the sum whose minimum is the optimum.

Every family is written in logs, x = ln N, y = ln D, with its coefficients as logs, so that a
coefficient stays positive whatever the solver does:

- ``chinchilla`` (Hoffmann et al. 2022, the default): L = E + A/N^alpha + B/D^beta.
  theta = (ln A, ln B, ln E, alpha, beta).
- ``kaplan`` (Kaplan et al. 2020, eq. 1.5): L = [(N_c/N)^(alpha_N/alpha_D) + D_c/D]^alpha_D,
  written L = (A/N^alpha + B/D)^q with alpha = alpha_N/alpha_D, q = alpha_D, A = N_c^alpha,
  B = D_c. No irreducible term: the loss falls towards 0. theta = (ln A, ln B, alpha, q).
- ``interaction``: L = E + A/N^alpha + B/D^beta + F/(N^alpha D^beta), Chinchilla's form with an
  N x D term (the expansion of the multiplicative (E' + A'/N^alpha)(1 + B'/D^beta); Farseer,
  arXiv 2506.10972, finds that coupling N and D cuts extrapolation error). theta = (ln A, ln B,
  ln E, ln F, alpha, beta).
- ``saturating``: L = L_max (1 + 1/S)^-k with S = A/N^alpha + B/D^beta: a broken power law
  (Caballero et al. 2022, one break of sharpness 1) between a plateau L_max, where a model has
  learnt next to nothing (a classifier's cross entropy at chance), and L ~ L_max S^k, a power law
  falling towards the floor 0 (the cross entropy of a classifier that is right). theta = (ln A,
  ln B, alpha, beta, ln L_max, ln k): with ln k, the valley along which k and the scale of S
  trade off (near the plateau L depends on k/S) is a straight line for the solver.

Every family's loss is an increasing function of a sum S(N, D) = A/N^alpha + B/D^beta, except
``interaction`` (``allocation_sum`` says which): for those the compute-optimal N minimises S
itself, so Chinchilla's allocation (closed form under C = 6 N D) serves them unchanged.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

#: the family that answers when the user pins none and no choice can be made
DEFAULT_LAW = "chinchilla"


@dataclass(frozen=True)
class LawFamily:
    name: str
    formula: str
    theta_names: tuple[str, ...]  # the solver's coordinates
    param_names: tuple[str, ...]  # what a user reads (coefficients as values, not logs)
    log_coefficients: tuple[str, ...]  # param_names stored as logs in theta
    #: the params (A, B, alpha, beta) of the S whose minimum is the optimum (a number: that
    #: value); None: no such S
    allocation_sum: tuple[str | float, ...] | None
    positive: tuple[str, ...]  # exponents that must be positive for a valid law

    @property
    def n_params(self) -> int:
        return len(self.theta_names)

    def key(self, name: str) -> str:
        """A parameter's key in a params mapping: Chinchilla's keep their plain names (E, A,
        B, alpha, beta); every other family's are prefixed (``kaplan.q``)."""
        return name if self.name == DEFAULT_LAW else f"{self.name}.{name}"


FAMILIES: dict[str, LawFamily] = {
    f.name: f
    for f in (
        LawFamily("chinchilla", "L = E + A/N^α + B/D^β",
                  ("ln A", "ln B", "ln E", "alpha", "beta"), ("A", "B", "E", "alpha", "beta"),
                  ("A", "B", "E"), ("A", "B", "alpha", "beta"), ("alpha", "beta")),
        LawFamily("kaplan", "L = (A/N^α + B/D)^q",
                  ("ln A", "ln B", "alpha", "q"), ("A", "B", "alpha", "q"),
                  ("A", "B"), ("A", "B", "alpha", 1.0), ("alpha", "q")),
        LawFamily("interaction", "L = E + A/N^α + B/D^β + F/(N^α D^β)",
                  ("ln A", "ln B", "ln E", "ln F", "alpha", "beta"),
                  ("A", "B", "E", "F", "alpha", "beta"), ("A", "B", "E", "F"), None,
                  ("alpha", "beta")),
        LawFamily("saturating", "L = L_max (1 + 1/S)^-k, S = A/N^α + B/D^β",
                  ("ln A", "ln B", "alpha", "beta", "ln L_max", "ln k"),
                  ("A", "B", "alpha", "beta", "L_max", "k"), ("A", "B", "L_max", "k"),
                  ("A", "B", "alpha", "beta"), ("alpha", "beta", "k")),
    )
}
LAW_NAMES = tuple(FAMILIES)


def family(name: str) -> LawFamily:
    if name not in FAMILIES:
        raise ValueError(f"unknown scaling-law family {name!r}: expected one of "
                         f"{', '.join(LAW_NAMES)}")
    return FAMILIES[name]


#: saturating: the plateau L_max at most this multiple of the highest loss measured, and the
#: power k at most K_CEILING. Beyond them the family only moves along a valley towards a limit
#: form (L_max and k growing together), which no data at hand can tell apart.
PLATEAU_CEILING, K_CEILING = 1000.0, 50.0
#: every exponent at least this: a term whose exponent falls towards 0 only imitates a constant
#: (a floor the family lacks), along a valley the solver would crawl without end
EXPONENT_FLOOR = 0.01


def bounds(name: str, log_l_max: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Lower and upper bounds (K, p) on theta (-inf / inf where unbounded) for problems whose
    highest measured log-loss is `log_l_max` (K,)."""
    fam = family(name)
    k = np.size(log_l_max)
    lower, upper = np.full((k, fam.n_params), -np.inf), np.full((k, fam.n_params), np.inf)
    for i, coord in enumerate(fam.theta_names):
        if coord in fam.positive:
            lower[:, i] = EXPONENT_FLOOR
    if name == "saturating":
        upper[:, fam.theta_names.index("ln L_max")] = (np.ravel(log_l_max)
                                                       + np.log(PLATEAU_CEILING))
        upper[:, fam.theta_names.index("ln k")] = np.log(K_CEILING)
    return lower, upper


def highest_log_loss(log_l: np.ndarray, weights: np.ndarray | None = None) -> np.ndarray:
    """Each problem's highest counted log-loss (K,), what its bounds hang on: log_l (K, n), and
    weights (K, n) or None (a run of weight 0 is not counted)."""
    log_l = np.atleast_2d(log_l)
    counted = log_l if weights is None else np.where(weights > 0, log_l, -np.inf)
    return np.max(counted, axis=1)


def bound_sides(name: str, theta: np.ndarray, log_l_max: np.ndarray) -> np.ndarray:
    """Where parameter rows theta (K, p) sit on a bound of problems whose highest measured
    log-loss is `log_l_max` (K,): -1 on the lower bound, 1 on the upper, 0 elsewhere (K, p)."""
    theta = np.atleast_2d(np.asarray(theta, dtype=float))
    sides = np.zeros(theta.shape, dtype=int)
    for bound, side in zip(bounds(name, np.atleast_1d(log_l_max)), (-1, 1), strict=True):
        tol = 1e-9 * np.maximum(1.0, np.abs(np.where(np.isfinite(bound), bound, 0.0)))
        sides[np.isfinite(bound) & (side * (theta - bound) >= -tol)] = side
    return sides


def at_bound(name: str, theta: np.ndarray, log_l_max: float) -> list[str]:
    """The named parameters of a fit theta (p,) that sit on one of their bounds."""
    sides = bound_sides(name, theta, np.array([log_l_max]))[0]
    return [family(name).param_names[i] for i in np.flatnonzero(sides)]


def negligible(floor, lowest_loss: float):
    """Whether an irreducible loss E (a number or an array) is so small next to the lowest loss
    measured that its term has vanished (under VANISHED_SHARE of the loss at every run): E sits
    on its bound 0, which ln E, unbounded, only runs off towards."""
    return np.asarray(floor, dtype=float) < VANISHED_SHARE * lowest_loss


#: each family's coefficient terms as (coefficient, exponent on ln N, exponent on ln D): an
#: exponent is a theta name or a fixed number (`centre`)
_TERMS: dict[str, tuple[tuple[str, str | float, str | float], ...]] = {
    "chinchilla": (("ln A", "alpha", 0.0), ("ln B", 0.0, "beta")),
    "kaplan": (("ln A", "alpha", 0.0), ("ln B", 0.0, 1.0)),
    "interaction": (("ln A", "alpha", 0.0), ("ln B", 0.0, "beta"), ("ln F", "alpha", "beta")),
    "saturating": (("ln A", "alpha", 0.0), ("ln B", 0.0, "beta")),
}


def centre(name: str, theta: np.ndarray, x0: float, y0: float, back: bool = False
           ) -> np.ndarray:
    """theta rows (K, p) with each coefficient taken at (ln N, ln D) = (x0, y0): ln A becomes
    ln A - alpha x0, the log of the term's value there (`back` undoes it). The law in the
    centred theta at x - x0, y - y0 is the law in theta at x, y, but a solver no longer has to
    move a coefficient and its exponent together (their Jacobian columns are nearly collinear
    when ln N spans 18-23), so it converges in far fewer steps."""
    out = np.array(np.atleast_2d(theta), dtype=float)
    sign = 1.0 if back else -1.0
    for coef, rate_n, rate_d in _term_rates(name, out):
        out[:, coef] += sign * (rate_n * x0 + rate_d * y0)
    return out


def _term_rates(name: str, theta: np.ndarray):
    """Per coefficient term of `_TERMS[name]`: its column in theta (K, p) and its exponents on
    ln N and on ln D, (K,) each (a fixed exponent broadcast): the term is
    exp(theta[:, column] - rate_n ln N - rate_d ln D)."""
    fam = family(name)

    def rate(e):
        return theta[:, fam.theta_names.index(e)] if isinstance(e, str) else np.full(
            theta.shape[0], float(e))

    return [(fam.theta_names.index(coef), rate(ex), rate(ey)) for coef, ex, ey in _TERMS[name]]


#: a term of the allocation (the first two of `_TERMS`: the one in N, the one in D) below this
#: share of the family's terms at every run has vanished (`vanished`)
VANISHED_SHARE = 1e-6


def vanished(name: str, theta: np.ndarray, x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Rows of theta (K, p) whose term in N or in D is below VANISHED_SHARE of the sum of the
    family's terms at every run (ln N, ln D) = (x, y). Such a fit is a smaller law than the
    family: without its term in N (or D), the compute-optimal N runs off to an edge, or (with
    an interaction term left) stops growing with C or grows as C itself, so its allocation
    answers nothing about the family (the coefficient ran off towards 0, where the fit no
    longer depends on it)."""
    theta = np.atleast_2d(np.asarray(theta, dtype=float))
    x, y = (np.asarray(v, dtype=float)[None, :] for v in (x, y))
    with np.errstate(all="ignore"):
        logs = [theta[:, coef][:, None] - rate_n[:, None] * x - rate_d[:, None] * y
                for coef, rate_n, rate_d in _term_rates(name, theta)]
        total, _ = _logsumexp(logs, False)
        gone = [np.all(t - total < np.log(VANISHED_SHARE), axis=1) for t in logs[:2]]
    return gone[0] | gone[1]


def _logsumexp(terms, shares: bool):
    """ln sum(exp(terms)) and, with `shares`, each term's share exp(t) / sum (the Jacobian's
    weights); None without."""
    m = terms[0]
    for t in terms[1:]:
        m = np.maximum(m, t)
    exps = [np.exp(t - m) for t in terms]
    total = exps[0]
    for e in exps[1:]:
        total = total + e
    if not shares:
        return m + np.log(total), None
    inv = 1.0 / total
    return m + np.log(total), [e * inv for e in exps]


def log_loss_and_jacobian(name: str, theta: np.ndarray, x: np.ndarray, y: np.ndarray,
                          jacobian: bool = True):
    """ln L_hat (K, n) for parameter rows theta (K, p) at x = ln N, y = ln D (n,), and its
    Jacobian d ln L_hat / d theta (K, n, p) (None when `jacobian` is false)."""
    th = np.atleast_2d(np.asarray(theta, dtype=float))
    col = th.T[:, :, None]  # each parameter as a (K, 1) column
    if name == "chinchilla":
        a, b, e, al, be = col
        f, sh = _logsumexp((a - al * x, b - be * y, np.broadcast_to(e, (th.shape[0], x.size))),
                           jacobian)
        parts = sh and (*sh, -sh[0] * x, -sh[1] * y)
    elif name == "kaplan":
        a, b, al, q = col
        s, sh = _logsumexp((a - al * x, b - y), jacobian)
        f = q * s
        parts = sh and (q * sh[0], q * sh[1], -q * sh[0] * x, s)
    elif name == "interaction":
        a, b, e, g, al, be = col
        ax, by = al * x, be * y
        f, sh = _logsumexp((a - ax, b - by, np.broadcast_to(e, ax.shape), g - ax - by), jacobian)
        parts = sh and (*sh, -(sh[0] + sh[3]) * x, -(sh[1] + sh[3]) * y)
    elif name == "saturating":
        a, b, al, be, m, lk = col
        k = np.exp(lk)
        log_s, sh = _logsumexp((a - al * x, b - be * y), jacobian)
        soft = np.logaddexp(0.0, -log_s)  # ln(1 + 1/S)
        f = m - k * soft
        if jacobian:
            c = k * -np.expm1(-soft)  # d f / d ln S = k / (1 + S)
            parts = (c * sh[0], c * sh[1], -c * sh[0] * x, -c * sh[1] * y, 1.0, -k * soft)
    else:
        family(name)
    if not jacobian:
        return f, None
    jac = np.empty(f.shape + (th.shape[1],))
    for i, part in enumerate(parts):
        jac[..., i] = part
    return f, jac


def theta_to_named(name: str, theta: np.ndarray) -> dict[str, np.ndarray]:
    """theta rows (K, p) as the family's named parameters, (K,) each."""
    fam = family(name)
    th = np.atleast_2d(np.asarray(theta, dtype=float))
    out = {}
    with np.errstate(over="ignore"):
        for i, coord in enumerate(fam.theta_names):
            key = coord[3:] if coord.startswith("ln ") else coord
            out[key] = np.exp(th[:, i]) if coord.startswith("ln ") else th[:, i]
    return {k: out[k] for k in fam.param_names}


def valid(name: str, named: dict[str, np.ndarray]) -> np.ndarray:
    """Which rows are a law worth an answer: finite, with positive exponents."""
    fam = family(name)
    ok = np.ones(np.shape(next(iter(named.values()))), dtype=bool)
    for key, value in named.items():
        ok &= np.isfinite(value)
        if key in fam.positive:
            ok &= value > 0
    return ok
