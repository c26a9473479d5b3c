"""CSV cells a spreadsheet would run as a formula, neutralised as OWASP recommends.

A CSV we write may carry text that came from a user or an imported table (experiment ids,
model labels, notes, error messages). Excel, LibreOffice and Google Sheets treat a cell that
starts with `=`, `+`, `-`, `@`, a tab or a carriage return as a formula (`=HYPERLINK(...)`
exfiltrates, `+cmd|...` ran commands in older Excel). Such a text cell is written with a
leading single quote, which a spreadsheet shows as text and does not evaluate
(https://owasp.org/www-community/attacks/CSV_Injection).

Only text is touched: numbers, and text that is a plain decimal number such as "-1.5", stay as
they are. Reading the file back (`restore_text`) removes exactly the quotes `neutralise_text`
added: a text that itself starts with quotes before a formula character gets one more quote on
writing, so the round trip gives back the original text whatever it was.
"""

from __future__ import annotations

import re
from typing import Any

import pandas as pd

#: the first characters that make a spreadsheet read a cell as a formula (OWASP)
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")
GUARD = "'"
_PLAIN_NUMBER = re.compile(r"[+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?")


def _needs_guard(text: str) -> bool:
    body = text.lstrip(GUARD)
    return body.startswith(FORMULA_STARTS) and not _PLAIN_NUMBER.fullmatch(body)


def neutralise_cell(value: Any) -> Any:
    """`value` with a leading quote when it is text a spreadsheet would evaluate."""
    return GUARD + value if isinstance(value, str) and _needs_guard(value) else value


def restore_cell(value: Any) -> Any:
    """The inverse of `neutralise_cell`."""
    if isinstance(value, str) and value.startswith(GUARD) and _needs_guard(value[1:]):
        return value[1:]
    return value


def _map_text(df: pd.DataFrame, fn: Any) -> pd.DataFrame:
    columns = [c for c in df.columns
               if df[c].dtype == object or pd.api.types.is_string_dtype(df[c].dtype)]
    renamed = {c: fn(c) for c in df.columns if isinstance(c, str) and fn(c) != c}
    changed = {}
    for c in columns:
        mapped = df[c].map(fn)
        if not mapped.equals(df[c]):
            changed[c] = mapped
    if not changed and not renamed:
        return df
    out = df.copy()
    for c, mapped in changed.items():
        out[c] = mapped
    return out.rename(columns=renamed) if renamed else out


def neutralise_text(df: pd.DataFrame) -> pd.DataFrame:
    """A copy of `df` whose text cells (and column names) a spreadsheet cannot evaluate; `df`
    itself when nothing needs it."""
    return _map_text(df, neutralise_cell)


def restore_text(df: pd.DataFrame) -> pd.DataFrame:
    """The table as it was before `neutralise_text` (the file was read back)."""
    return _map_text(df, restore_cell)


def read_csv(path: Any, **kwargs: Any) -> pd.DataFrame:
    """`pandas.read_csv` of a CSV we wrote, with the text as it was before writing."""
    return restore_text(pd.read_csv(path, **kwargs))
