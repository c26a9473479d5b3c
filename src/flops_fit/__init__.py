"""flops-fit: compute-optimal model sizes from IsoFLOP sweeps.

From Python, `flops_fit.analyse(results, analysis, compute_model=...)` runs the analysis pipeline
on a results table and returns an `Analysis` (see `flops_fit.fitting.api`).
"""

__version__ = "0.1.0"
__all__ = ["Analysis", "analyse"]


def __getattr__(name: str):
    # Lazy: `import flops_fit` (Kedro does it for the settings) stays free of the science stack.
    if name in __all__:
        from flops_fit.fitting import api

        return getattr(api, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
