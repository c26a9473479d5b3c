"""Rendering the report summary (`flops_fit.reporting.summary`) with the Jinja2 templates in
`flops_fit/templates/`: a self-contained HTML page with the figures embedded, and Markdown that
links the figure files next to it. Every number is formatted here, by the template filters;
the unit of D comes in words, as the summary's `unit` (tokens for a summary without one).
"""

from __future__ import annotations

import base64
import io
from collections.abc import Mapping
from typing import Any

from jinja2 import Environment, PackageLoader, StrictUndefined, select_autoescape
from matplotlib.figure import Figure

from flops_fit.reporting.formatting import (
    DataUnit,
    LossUnit,
    format_count,
    format_flops,
    format_interval,
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


def template_environment() -> Environment:
    env = Environment(
        loader=PackageLoader("flops_fit", "templates"),
        autoescape=select_autoescape(enabled_extensions=("html", "html.j2"),
                                     default_for_string=False),
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
    )
    env.filters.update(
        count=format_count,
        flops=format_flops,
        sig=format_sig,
        sci=format_sci,
        pct=format_percent,
        md=_md_cell,
        interval=lambda pair, kind="sig": format_interval(
            pair, {"count": format_count, "flops": format_flops, "sig": format_sig}[kind]),
    )
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
    return template_environment().get_template("report.md.j2").render(s=_with_unit(summary))
