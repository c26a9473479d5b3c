"""The documentation keeps up with the code: every field and column name of the data contracts
(`flops_fit.schema`) is explained in the outputs reference, and the README stays a short front
page whose set-up commands and links work."""

from __future__ import annotations

import re
from collections.abc import Mapping
from pathlib import Path

from flops_fit import schema

ROOT = Path(__file__).resolve().parents[2]
OUTPUTS_REFERENCE = ROOT / "docs" / "guides" / "outputs.md"
README = ROOT / "README.md"
MAX_README_LINES = 300

# [text](target) and [text]: target; an external link has a scheme (https:, mailto:)
_INLINE_LINK = re.compile(r"\[[^\]]*\]\(\s*<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)")
_REFERENCE_LINK = re.compile(r"^\s*\[[^\]]+\]:\s*(\S+)", re.MULTILINE)
_SCHEME = re.compile(r"^[a-zA-Z][a-zA-Z0-9+.-]*:")


def schema_names() -> set[str]:
    """Every str in schema's public tuples, lists, sets and dicts (keys and values alike)."""
    names: set[str] = set()
    for attr, value in vars(schema).items():
        if attr.startswith("_"):
            continue
        if isinstance(value, Mapping):
            items = [*value.keys(), *value.values()]
        elif isinstance(value, (tuple, list, set, frozenset)):
            items = list(value)
        else:
            continue
        names.update(item for item in items if isinstance(item, str))
    return names


def documented_names(text: str) -> set[str]:
    """Every name written as code (in single backticks) in a Markdown text, and every name in a
    code span listing several (`{a, b, c}`, `a, b`)."""
    spans = re.findall(r"`([^`\n]+)`", text)
    return {word for span in spans for word in re.findall(r"[A-Za-z_][A-Za-z0-9_]*", span)}


def relative_links(markdown: str) -> list[str]:
    """Targets of the links in `markdown` that point into the repository (no scheme, no bare
    anchor), code blocks and code spans left out."""
    text = re.sub(r"^```.*?^```", "", markdown, flags=re.MULTILINE | re.DOTALL)
    text = re.sub(r"`[^`\n]*`", "", text)
    targets = _INLINE_LINK.findall(text) + _REFERENCE_LINK.findall(text)
    return [t for t in targets if not _SCHEME.match(t) and not t.startswith("#")]


def test_schema_names_are_collected():
    names = schema_names()
    assert {"experiment_id", "final_loss", "approach_3", "n_opt", "alpha", "loss_hi"} <= names


def test_every_schema_name_is_in_the_outputs_reference():
    documented = documented_names(OUTPUTS_REFERENCE.read_text())
    missing = sorted(schema_names() - documented)
    assert not missing, (
        f"{OUTPUTS_REFERENCE.relative_to(ROOT)} does not explain these names of "
        f"flops_fit.schema (write each as `name` where its dataset is described): "
        + ", ".join(missing)
    )


def test_documented_names_read_code_spans_only():
    text = "`model_size` and `{n_min, n_max}` but not plain_word"
    assert documented_names(text) == {"model_size", "n_min", "n_max"}


def test_readme_is_a_short_front_page_with_the_set_up_commands():
    text = README.read_text()
    lines = text.splitlines()
    assert len(lines) <= MAX_README_LINES, (
        f"README.md has {len(lines)} lines (at most {MAX_README_LINES}): move detail to docs/guides/"
    )
    for command in ("make run", "make test"):
        assert re.search(rf"^{command}\b", text, re.MULTILINE), (
            f"README.md must show `{command}` as a command line of its set-up"
        )


def test_every_relative_link_in_the_readme_exists():
    links = relative_links(README.read_text())
    assert links, "README.md links no guide"
    broken = sorted({t for t in links if not (ROOT / t.split("#")[0]).exists()})
    assert not broken, f"README.md links files that do not exist: {broken}"


def test_the_link_finder_skips_external_links_anchors_and_code():
    markdown = (
        "[a](docs/a.md#x) [b](https://x.org) [c](#top) `[d](no.md)`\n"
        "```\n[e](no.md)\n```\n[f]: docs/f.md\n"
    )
    assert relative_links(markdown) == ["docs/a.md#x", "docs/f.md"]
