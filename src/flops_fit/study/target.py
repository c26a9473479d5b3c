"""The study's answer at its target budget C*: N_opt(C*) with its interval, per approach.

Read from the analysis's files (the scaling_laws document and the bootstrap draws table), so a
round can be assessed from any stored study. The answer is predictions.csv's: Approach 3's from
the family that answers (the section's `law`), its draws moved by the law's own error beyond the
fit (`fitting.laws.beyond`), and the same percentile interval (`fitting.bootstrap.interval`).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from flops_fit.fitting.bootstrap import interval
from flops_fit.fitting.laws.beyond import LawError
from flops_fit.fitting.outputs.draws import law_draws, surface_draws
from flops_fit.fitting.outputs.predictions import surface_values
from flops_fit.reporting.inputs import compute_model as compute_model_of_doc
from flops_fit.reporting.inputs import surface


@dataclass(frozen=True)
class Answer:
    """N_opt and the optimal loss at one budget by one approach, with their draws."""

    approach: str | None
    compute: float
    n_opt: float | None
    n_opt_interval: tuple[float | None, float | None]
    loss: float | None
    loss_interval: tuple[float | None, float | None]
    n_draws: np.ndarray | None = None
    loss_draws: np.ndarray | None = None

    @property
    def ratio(self) -> float | None:
        """hi / lo of N_opt's interval (None without an interval)."""
        lo, hi = self.n_opt_interval
        if lo is None or hi is None or not lo > 0:
            return None
        return float(hi / lo)

    def to_dict(self) -> dict[str, Any]:
        return {
            "approach": self.approach,
            "compute_budget": self.compute,
            "n_opt": self.n_opt,
            "n_opt_lo": self.n_opt_interval[0],
            "n_opt_hi": self.n_opt_interval[1],
            "interval_ratio": self.ratio,
            "loss": self.loss,
            "loss_lo": self.loss_interval[0],
            "loss_hi": self.loss_interval[1],
        }


def law_error_of(doc: Mapping[str, Any]) -> LawError | None:
    """Approach 3's law error beyond the fit, as the analysis widened its intervals with it."""
    meta = doc.get("meta") if isinstance(doc.get("meta"), Mapping) else {}
    boot = meta.get("bootstrap") if isinstance(meta.get("bootstrap"), Mapping) else {}
    return LawError.from_dict((surface(doc) or {}).get("law_error"), boot.get("seed") or 0)


def _finite(x: Any) -> float | None:
    return float(x) if x is not None and np.isfinite(x) else None


def answer_at(doc: Mapping[str, Any], draws: pd.DataFrame, compute: float,
              approach: str | None = None) -> Answer:
    """N_opt(C) and L_opt(C) by `approach` (default: the recommended one) with intervals."""
    approach = approach or (doc.get("recommended_approach") or {}).get("approach")
    level = float((doc.get("meta") or {}).get("confidence_level", 0.95))
    c = float(compute)
    none = Answer(approach, c, None, (None, None), None, (None, None))
    if approach is None:
        return none
    n_point = loss_point = None
    n_samples = loss_samples = None
    if approach == "approach_3":
        section = surface(doc)
        if section is None:
            return none
        point, sampled = surface_values(section, surface_draws(draws), law_error_of(doc),
                                        np.asarray([c]), compute_model_of_doc(doc))
        n_point, loss_point = float(point["model_size"][0]), float(point["loss"][0])
        if sampled["model_size"] is not None:
            n_samples, loss_samples = sampled["model_size"][:, 0], sampled["loss"][:, 0]
    else:
        section = doc.get(approach) or {}
        laws = {k: section.get(k) or {} for k in ("n_opt", "l_opt")}
        if laws["n_opt"].get("coefficient") is None:
            return none
        n_point = laws["n_opt"]["coefficient"] * c ** laws["n_opt"]["exponent"]
        if laws["l_opt"].get("coefficient") is not None:
            loss_point = laws["l_opt"]["coefficient"] * c ** laws["l_opt"]["exponent"]
        if approach == "approach_2":
            n_law, l_law = law_draws(draws, "n_opt"), law_draws(draws, "l_opt")
            with np.errstate(all="ignore"):
                n_samples = n_law[0] * c ** n_law[1] if n_law is not None else None
                loss_samples = l_law[0] * c ** l_law[1] if l_law is not None else None
    n_iv = tuple(interval(n_samples, level)) if n_samples is not None else (None, None)
    l_iv = tuple(interval(loss_samples, level)) if loss_samples is not None else (None, None)
    return Answer(approach, c, _finite(n_point), n_iv, _finite(loss_point), l_iv,
                  n_samples, loss_samples)
