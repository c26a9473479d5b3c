"""report.md prints text from users and imported tables as text: no HTML, links or formatting
come out of a title, an experiment id, a warning or a note."""

from __future__ import annotations

import pytest

from flops_fit.reporting.render import (
    _with_unit,
    escape_markdown,
    markdown_code,
    render_markdown,
    template_environment,
)
from tests.reporting.helpers import summary_of

SCRIPT = "<script>alert(1)</script>"
HOSTILE_ID = '=HYPERLINK("http://evil.example","x")|<img src=x onerror=alert(1)>`'
LINK = "[click](javascript:alert(1)) ![](http://tracker.example/p.png)"


def _rendered_html(markdown: str) -> str:
    markdown_it = pytest.importorskip("markdown_it")
    parser = markdown_it.MarkdownIt("commonmark", {"html": True}).enable(["table"])
    return parser.render(markdown)


def _hostile_summary(study) -> dict:
    summary = summary_of(study, title=f"Study {SCRIPT} *bold* # not a heading")
    inventory = summary["inventory"]
    assert inventory["failed_runs"] and inventory["excluded_runs"]
    inventory["failed_runs"][0]["experiment_id"] = HOSTILE_ID
    inventory["failed_runs"][0]["error"] = f"RuntimeError in {SCRIPT}"
    inventory["excluded_runs"][0]["experiment_id"] = "+cmd|' /C calc'!A0"
    summary["warnings"] += [f"run {HOSTILE_ID} was excluded", f"- {LINK}", "> quoted\n# heading"]
    summary["meta"]["notes"] = [f"imported from {SCRIPT}"]
    summary["meta"]["source"] = "/data/@SUM(1)/<b>runs</b>.csv"
    return summary


def test_user_and_imported_text_comes_out_escaped(study):
    md = render_markdown(_hostile_summary(study))
    html = _rendered_html(md)
    assert "<script" not in html and "<img src=x" not in html and "<b>" not in html
    assert "<a " not in html and "javascript:" not in html.replace("javascript:alert", "")
    assert "javascript:alert" in html  # shown as text
    assert "<h1>Study &lt;script&gt;alert(1)&lt;/script&gt; *bold* # not a heading</h1>" in html
    assert "<code>=HYPERLINK(&quot;http://evil.example&quot;,&quot;x&quot;)|&lt;img src=x " \
           "onerror=alert(1)&gt;`</code>" in html
    assert "<code>+cmd|' /C calc'!A0</code>" in html
    assert "<li>- [click](javascript:alert(1)) ![](http://tracker.example/p.png)</li>" in html
    assert "<li>&gt; quoted # heading</li>" in html
    assert "Note: imported from &lt;script&gt;alert(1)&lt;/script&gt;." in html
    assert "/data/@SUM(1)/&lt;b&gt;runs&lt;/b&gt;.csv" in html
    # every table row keeps its columns: no `|` in an id or a message splits a cell
    for line in md.splitlines():
        if line.startswith("| ") and ("HYPERLINK" in line or "calc" in line):
            assert line.replace("\\|", "").count("|") in (5, 6), line


def test_the_default_report_is_unchanged(study):
    """A study with our own ids and messages renders exactly as before escaping existed."""
    summary = summary_of(study)
    assert summary["inventory"]["failed_runs"] and summary["warnings"]
    before = template_environment()  # the environment without Markdown escaping
    before.filters["code"] = lambda value: f"`{value}`"
    assert render_markdown(summary) == before.get_template("report.md.j2").render(
        s=_with_unit(summary))


@pytest.mark.parametrize("text", [
    "C1e+18-d64-L2-3f2a9c1b", "C1e18-mlp_w64-0a1b2c3d", "Compute-optimal scaling report",
    "expected loss (nats/token)", "N_opt", "-0.5", "1.2e+18", "3.4B – 5.6B", "R² = 0.99", "a & b",
])
def test_ordinary_text_and_ids_are_left_as_they_are(text):
    assert escape_markdown(text) == text
    assert markdown_code(text) == f"`{text}`"


def test_code_spans_hold_any_backticks():
    assert markdown_code("a`b") == "``a`b``"
    assert markdown_code("`x``") == "``` `x`` ```"
    assert markdown_code("a|b\nc") == "`a\\|b c`"
