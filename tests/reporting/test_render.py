"""The HTML report is self-contained and escapes text from the data; Markdown links figures."""

from __future__ import annotations

import base64
import re

from flops_fit.reporting import figures
from flops_fit.reporting.render import (
    figure_to_data_uri,
    render_html,
    render_markdown,
    template_environment,
)
from tests.reporting.helpers import summary_of


def test_html_is_self_contained_with_embedded_figures(study):
    summary = summary_of(study)
    figs = {name: figures.no_data_figure(name, "test figure") for name in figures.FIGURES}
    html = render_html(summary, figs, embed_dpi=40)
    assert html.count('src="data:image/png;base64,') == 4
    assert "<style>" in html
    # nothing is fetched from elsewhere: no external scripts, stylesheets or images
    assert not re.search(r'(src|href)="(?!data:|#)', html)
    assert "<script" not in html


def test_html_escapes_text_from_the_data(study):
    laws = study["scaling_laws"]
    laws["warnings"] = ["<script>alert(1)</script> & more"]
    html = render_html(summary_of(study))
    assert "<script>alert" not in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt; &amp; more" in html


def test_figures_embed_as_png_data_uris_and_markdown_links_the_files(study):
    fig = figures.no_data_figure("t", "why")
    uri = figure_to_data_uri(fig, dpi=30)
    assert uri.startswith("data:image/png;base64,")
    assert base64.b64decode(uri.split(",", 1)[1])[:8] == b"\x89PNG\r\n\x1a\n"
    md = render_markdown(summary_of(study))
    for spec in figures.FIGURES.values():
        assert f"]({spec['file']})" in md


def test_markdown_cells_escape_pipes_and_newlines():
    env = template_environment()
    assert env.filters["md"]("a | b\nc") == "a \\| b c"
    assert env.filters["interval"]([1.2e9, 3.4e9], "count") == "1.2B – 3.4B"
