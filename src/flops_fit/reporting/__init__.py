"""Reporting: figures and the study report, framework-free.

- `inputs`: reads the analysis outputs defensively (names from `flops_fit.schema`)
- `figures/`: the four figures, one module each, plus the pieces they share
- `summary` (with `headline`, the answer at the headline budget): the report as JSON-ready data
- `render`: that summary through the Jinja2 templates in `flops_fit/templates/` to HTML / Markdown
- `styles`: the per-figure styles; `formatting`: the human-readable numbers

The Kedro nodes in `flops_fit.pipelines.reporting` are thin adapters.
"""
