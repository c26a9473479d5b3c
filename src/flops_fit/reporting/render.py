"""Rendering the report summary (`flops_fit.reporting.summary`) with the Jinja2 templates in
`flops_fit/templates/`: a self-contained HTML page with the figures embedded, and Markdown that
links the figure files next to it. Every number is formatted here, by the template filters;
the unit of D comes in words, as the summary's `unit` (tokens for a summary without one).
"""

from __future__ import annotations

import base64
import io
import re
from collections.abc import Mapping
from typing import Any

from jinja2 import Environment, PackageLoader, StrictUndefined, select_autoescape
from markupsafe import Markup
from matplotlib.figure import Figure

from flops_fit.reporting.formatting import (
    DataUnit,
    LossUnit,
    format_count,
    format_flops,
    format_interval,
    format_param,
    format_param_interval,
    format_percent,
    format_sci,
    format_sig,
)


def figure_to_data_uri(fig: Figure, dpi: float = 110) -> str:
    """The figure as an inline `data:image/png;base64,...` URI (in memory; no file is written)."""
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=dpi)
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")


def _md_cell(value: Any) -> str:
    return str(value).replace("|", "\\|").replace("\n", " ")


_NEWLINES = re.compile(r"\r\n|\r|\n")
_MD_INLINE = re.compile(
    r"\\(?=[!-/:-@\[-`{-~]|$)"  # a backslash that would escape what follows it
    r"|[`*\[\]|~]"  # code spans, emphasis, links and images, table cells, strikethrough
    r"|(?<![0-9A-Za-z])_|_(?![0-9A-Za-z])"  # emphasis (an underscore inside a word is text)
    r"|<|&(?=#?[0-9A-Za-z]+;)"  # raw HTML, autolinks, character references
)
#: what would start a heading, quote, list or rule at the start of a line (not a number)
_MD_BLOCK_START = re.compile(r"^(\s*)(?:([#>])|([-+=])(?![0-9.])|(\d+)([.)])(?=\s|$))")


def _md_inline(match: re.Match) -> str:
    char = match.group()
    return {"<": "&lt;", "&": "&amp;"}.get(char, "\\" + char)


def _md_block(match: re.Match) -> str:
    space, sign, marker, number, delimiter = match.groups()
    if sign == ">":
        return space + "&gt;"
    if number is not None:
        return f"{space}{number}\\{delimiter}"
    return f"{space}\\{sign or marker}"


def escape_markdown(value: Any) -> str:
    """`value` as literal Markdown text on one line: no HTML, link, image, emphasis, code span,
    table cell break, heading, quote or list item can come out of it. Entities are used for
    `<` and `>` (every Markdown dialect decodes them; not all honour a backslash before them);
    ordinary words, numbers, ids and underscores inside words are left as they are."""
    text = _MD_INLINE.sub(_md_inline, _NEWLINES.sub(" ", str(value)))
    return _MD_BLOCK_START.sub(_md_block, text, count=1)


def markdown_code(value: Any) -> str:
    """`value` as a code span for a table cell: a backtick fence longer than any run of
    backticks inside (so none closes it early) and `|` escaped (GitHub tables split cells on
    it even in code). Markdown never reads HTML inside a code span."""
    text = _NEWLINES.sub(" ", str(value)).replace("|", "\\|")
    fence = "`" * (max(map(len, re.findall(r"`+", text)), default=0) + 1)
    pad = " " if text.startswith("`") or text.endswith("`") else ""
    return f"{fence}{pad}{text}{pad}{fence}"


def _markdown_value(value: Any) -> Any:
    """Every value the Markdown template prints is escaped (as autoescape does for HTML), except
    numbers and what a filter has already made into Markdown (`Markup`)."""
    if value is None or isinstance(value, (Markup, bool, int, float)):
        return value
    return escape_markdown(value)


def template_environment(markdown: bool = False) -> Environment:
    env = Environment(
        loader=PackageLoader("flops_fit", "templates"),
        autoescape=select_autoescape(enabled_extensions=("html", "html.j2"),
                                     default_for_string=False),
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
        finalize=_markdown_value if markdown else None,
    )
    env.filters.update(
        count=format_count,
        flops=format_flops,
        sig=format_sig,
        sci=format_sci,
        pct=format_percent,
        # a parameter table's row: its value and interval, in words where on a bound
        param=lambda row, digits=4: format_param(row["value"], row.get("at_bound"), digits),
        param_interval=lambda row: format_param_interval(row["interval"], row.get("at_bound")),
        md=(lambda value: Markup(escape_markdown(value))) if markdown else _md_cell,
        interval=lambda pair, kind="sig": format_interval(
            pair, {"count": format_count, "flops": format_flops, "sig": format_sig}[kind]),
    )
    if markdown:
        env.filters["code"] = lambda value: Markup(markdown_code(value))
    return env


def _with_unit(summary: Mapping[str, Any]) -> dict[str, Any]:
    """The summary with the words for the unit of D (a summary from before units: tokens) and
    for the loss's unit (a summary from before loss units: "loss", no unit claimed)."""
    unit = summary.get("unit")
    unit = unit if isinstance(unit, Mapping) else DataUnit.of().to_dict()
    loss = summary.get("loss_unit")
    if not isinstance(loss, Mapping):
        loss = LossUnit.of().to_dict(DataUnit.of(unit.get("plural")))
    return {**summary, "unit": unit, "loss_unit": loss}


def render_html(summary: Mapping[str, Any], figures: Mapping[str, Figure | None] | None = None,
                embed_dpi: float = 110) -> str:
    """The self-contained HTML report: inline CSS, figures embedded as base64 PNG."""
    images = {}
    for name, fig in (figures or {}).items():
        if fig is not None:
            images[name] = figure_to_data_uri(fig, embed_dpi)
    return template_environment().get_template("report.html.j2").render(s=_with_unit(summary),
                                                                         images=images)


def render_markdown(summary: Mapping[str, Any]) -> str:
    """The Markdown report; figures are linked by file name (they sit next to report.md)."""
    return template_environment(markdown=True).get_template("report.md.j2").render(
        s=_with_unit(summary))
