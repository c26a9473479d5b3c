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
  ln B, alpha, beta, ln L_max, k).

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
                  ("ln A", "ln B", "alpha", "beta", "ln L_max", "k"),
                  ("A", "B", "alpha", "beta", "L_max", "k"), ("A", "B", "L_max"),
                  ("A", "B", "alpha", "beta"), ("alpha", "beta", "k")),
    )
}
LAW_NAMES = tuple(FAMILIES)


def family(name: str) -> LawFamily:
    if name not in FAMILIES:
        raise ValueError(f"unknown scaling-law family {name!r}: expected one of "
                         f"{', '.join(LAW_NAMES)}")
    return FAMILIES[name]


def _softmax(*terms):
    m = terms[0]
    for t in terms[1:]:
        m = np.maximum(m, t)
    exps = [np.exp(t - m) for t in terms]
    total = sum(exps)
    return m + np.log(total), [e / total for e in exps]


def log_loss_and_jacobian(name: str, theta: np.ndarray, x: np.ndarray, y: np.ndarray,
                          jacobian: bool = True):
    """ln L_hat (K, n) for parameter rows theta (K, p) at x = ln N, y = ln D (n,), and its
    Jacobian d ln L_hat / d theta (K, n, p) (None when `jacobian` is false)."""
    th = np.atleast_2d(np.asarray(theta, dtype=float))
    col = [th[:, i : i + 1] for i in range(th.shape[1])]
    if name == "chinchilla":
        a, b, e, al, be = col
        f, (p1, p2, p3) = _softmax(a - al * x, b - be * y, e + 0 * x)
        parts = (p1, p2, p3, -p1 * x, -p2 * y)
    elif name == "kaplan":
        a, b, al, q = col
        s, (p1, p2) = _softmax(a - al * x, b - y)
        f = q * s
        parts = (q * p1, q * p2, -q * p1 * x, s)
    elif name == "interaction":
        a, b, e, g, al, be = col
        f, (p1, p2, p3, p4) = _softmax(a - al * x, b - be * y, e + 0 * x, g - al * x - be * y)
        parts = (p1, p2, p3, p4, -(p1 + p4) * x, -(p2 + p4) * y)
    elif name == "saturating":
        a, b, al, be, m, k = col
        log_s, (p1, p2) = _softmax(a - al * x, b - be * y)
        soft = np.logaddexp(0.0, -log_s)  # ln(1 + 1/S)
        f = m - k * soft
        c = k / (1.0 + np.exp(log_s))  # d f / d ln S = k sigmoid(-ln S)
        parts = (c * p1, c * p2, -c * p1 * x, -c * p2 * y, np.ones_like(f), -soft)
    else:
        family(name)
    if not jacobian:
        return f, None
    return f, np.stack(np.broadcast_arrays(*parts), axis=-1)


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
