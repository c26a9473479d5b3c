"""Human-readable numbers for figures and reports: 1.2B parameters, 3.4e22 FLOPs, 1.93 nats,
the words for the unit of D (`DataUnit`: tokens, examples, or what a data source names) and for
what the loss measures (`LossUnit`: nats, or what the loss declares).

Every function accepts None or NaN and returns "n/a" for it, so a template never has to check.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from flops_fit.fitting.laws.bounded import AT_BOUND, ZERO, end_text, value_text
from flops_fit.schema import DEFAULT_LOSS_UNIT

MISSING = "n/a"

_COUNT_SUFFIXES = ((1e12, "T"), (1e9, "B"), (1e6, "M"), (1e3, "K"))


def as_float(value: Any) -> float | None:
    """A finite float, or None for None, NaN, inf, empty strings and anything unparseable."""
    if value is None or isinstance(value, bool):
        return None
    try:
        x = float(value)
    except (TypeError, ValueError):
        return None
    return x if math.isfinite(x) else None


def _trim(text: str) -> str:
    """'1.50' -> '1.5', '2.00' -> '2'; leaves integers and exponents alone."""
    if "." in text and "e" not in text:
        text = text.rstrip("0").rstrip(".")
    return text


def format_sig(value: Any, digits: int = 3) -> str:
    """A plain number to `digits` significant figures: 0.3412 -> '0.341', 406.4 -> '406'."""
    x = as_float(value)
    if x is None:
        return MISSING
    if x == 0:
        return "0"
    x = round_sig(x, digits)
    magnitude = math.floor(math.log10(abs(x)))
    if magnitude >= 6 or magnitude <= -4:
        return format_sci(x, digits)
    decimals = max(digits - 1 - magnitude, 0)
    return _trim(f"{x:.{decimals}f}")


def format_sci(value: Any, digits: int = 2) -> str:
    """Scientific notation without '+' or leading zeros: 3.4e22, 1e24, 2.5e-3."""
    x = as_float(value)
    if x is None:
        return MISSING
    if x == 0:
        return "0"
    mantissa, exponent = f"{x:.{max(digits - 1, 0)}e}".split("e")
    return f"{_trim(mantissa)}e{int(exponent)}"


def format_flops(value: Any) -> str:
    """A compute budget: 1e24, 3.2e22 (two significant figures are what people quote)."""
    return format_sci(value, 2)


def format_count(value: Any, digits: int = 3) -> str:
    """Parameters or tokens: 1.23B, 36.2B, 412M, 8.5K, 850; beyond 1000T in scientific notation."""
    x = as_float(value)
    if x is None:
        return MISSING
    sign = "-" if x < 0 else ""
    x = abs(x)
    if x >= 1e15:
        return sign + format_sci(x, digits)
    for scale, suffix in _COUNT_SUFFIXES:
        # Round first: 999.96M is quoted as 1B, not 1000M.
        scaled = round_sig(x / scale, digits)
        if scaled >= 1:
            return sign + format_sig(scaled, digits) + suffix
    return sign + format_sig(x, digits)


def round_sig(x: float, digits: int) -> float:
    if x == 0:
        return 0.0
    return round(x, digits - 1 - math.floor(math.log10(abs(x))))


def format_percent(value: Any, digits: int = 2) -> str:
    """A signed relative error given as a fraction: 0.0123 -> '+1.2%'; from 10% on in whole
    percent, as the warnings write it (1.154 -> '+115%', not '120%')."""
    x = as_float(value)
    if x is None:
        return MISSING
    shown = f"{100 * x:.0f}" if abs(x) >= 0.1 else format_sig(100 * x, digits)
    return f"{'+' if x > 0 and not shown.startswith('-') else ''}{shown}%"


def format_interval(bounds: Sequence[Any] | None, fmt=format_sig, sep: str = " – ") -> str:
    """'[lo – hi]' in the given number format, or 'n/a' when either end is missing."""
    if bounds is None or len(bounds) != 2:
        return MISSING
    lo, hi = as_float(bounds[0]), as_float(bounds[1])
    if lo is None or hi is None:
        return MISSING
    return f"{fmt(lo)}{sep}{fmt(hi)}"


def format_param(value: Any, at_bound: Mapping[str, Any] | None = None, digits: int = 3) -> str:
    """A fitted parameter to `digits` significant figures, or, when the fit sits on its bound
    (`at_bound`: the entry of scaling_laws' `at_bound` / `law_at_bound`), said in words:
    "≈ 0 (at its bound)" for E at 0, "50 (at its bound)" for a ceiling."""
    shown = format_sig(value, digits)
    return shown if shown == MISSING else value_text(shown, at_bound)


def format_param_interval(bounds: Sequence[Any] | None,
                          at_bound: Mapping[str, Any] | None = None, sep: str = " – ") -> str:
    """A parameter's interval as `format_interval` gives it, with an end that sits on the bound
    said in words ("≈ 0", "its bound"): its number would only be the draws' bound; both ends
    there read as one ("≈ 0", "at its bound")."""
    text = format_interval(bounds)
    if text == MISSING:
        return text
    words = [end_text(at_bound, end) for end in (0, 1)]
    if words[0] and words[1]:
        return ZERO if words[0] == ZERO else AT_BOUND
    lo, hi = (w or format_sig(b) for w, b in zip(words, bounds, strict=True))
    return f"{lo}{sep}{hi}"


#: What D counts when nothing says otherwise: a language model's training tokens.
DEFAULT_DATA_UNIT = "tokens"

_SIBILANT_ENDINGS = ("s", "x", "z", "ch", "sh")  # their plural adds "es"
_SAME_IN_BOTH = ("series", "species", "data")  # the plural is the singular


@dataclass(frozen=True)
class DataUnit:
    """The unit of D in words: every label, caption and sentence that names D's unit uses this.

    `DataUnit.of("examples")` reads "examples", "example", "per example"; a data source may
    name its own unit ("images", "sequences"), in the plural or the singular. None, NaN and
    empty text mean tokens (`DEFAULT_DATA_UNIT`).
    """

    plural: str
    singular: str

    @classmethod
    def of(cls, unit: Any = None) -> DataUnit:
        word = unit.strip().lower() if isinstance(unit, str) else ""
        word = word or DEFAULT_DATA_UNIT
        if word.endswith(_SAME_IN_BOTH):
            return cls(plural=word, singular=word)
        singular = _singular(word)
        return cls(plural=word if singular != word else _plural(word), singular=singular)

    @property
    def is_tokens(self) -> bool:
        """Whether D counts tokens (then the Chinchilla rule of thumb applies)."""
        return self.plural == DEFAULT_DATA_UNIT

    @property
    def capitalised(self) -> str:
        """'Tokens', 'Examples': for titles."""
        return self.plural[:1].upper() + self.plural[1:]

    @property
    def per(self) -> str:
        """'per token', 'per example'."""
        return f"per {self.singular}"

    def count(self, value: Any) -> str:
        """'1.2B tokens', '350K examples'."""
        return f"{format_count(value)} {self.plural}"

    def to_dict(self) -> dict[str, Any]:
        """The words, for the report templates."""
        return {"name": self.plural, "plural": self.plural, "singular": self.singular,
                "per": self.per, "is_tokens": self.is_tokens}


@dataclass(frozen=True)
class LossUnit:
    """What the loss measures, for every label that names it: "nats" reads "nats/token" (per
    unit of D), another declared word is used as it is ("mse"), and a loss that declares none
    is called "loss" (`LossUnit.of(None)`; a label that already says loss adds nothing).
    """

    name: str

    @classmethod
    def of(cls, unit: Any = None) -> LossUnit:
        word = unit.strip() if isinstance(unit, str) else ""
        return cls(word or DEFAULT_LOSS_UNIT)

    @property
    def declared(self) -> bool:
        return self.name != DEFAULT_LOSS_UNIT

    def per(self, data: DataUnit) -> str:
        """'nats/token', 'nats/example', 'mse', 'loss'."""
        return f"nats/{data.singular}" if self.name.lower() == "nats" else self.name

    def label(self, what: str, data: DataUnit) -> str:
        """'final loss (nats/token)', 'final loss (mse)', 'final loss'; 'L_opt (loss)'."""
        if not self.declared and "loss" in what.lower():
            return what
        return f"{what} ({self.per(data)})"

    def to_dict(self, data: DataUnit) -> dict[str, Any]:
        """The words, for the report templates."""
        return {"name": self.name, "declared": self.declared, "per": self.per(data),
                "expected_loss": self.label("expected loss", data)}


def _singular(word: str) -> str:
    """'tokens' -> 'token', 'batches' -> 'batch', 'entries' -> 'entry'; a singular is kept."""
    if word.endswith("ies") and len(word) > 3:
        return word[:-3] + "y"
    if word.endswith(("sses", "xes", "zes", "ches", "shes")):
        return word[:-2]
    if word.endswith("s") and not word.endswith(("ss", "us", "is")):
        return word[:-1]
    return word


def _plural(word: str) -> str:
    """'example' -> 'examples', 'batch' -> 'batches', 'entry' -> 'entries'."""
    if word.endswith("y") and len(word) > 1 and word[-2] not in "aeiou":
        return word[:-1] + "ies"
    return word + ("es" if word.endswith(_SIBILANT_ENDINGS) else "s")
