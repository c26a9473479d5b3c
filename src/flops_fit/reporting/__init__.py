"""Reporting: figures and the study report, framework-free.

`figures` turns the analysis outputs into matplotlib Figures, `report` summarises them and renders
the HTML / Markdown report, `styles` holds the per-figure styles and `formatting` the
human-readable numbers. The Kedro nodes in `flops_fit.pipelines.reporting` are thin adapters.
"""
