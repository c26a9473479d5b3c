"""The fitters: framework-free science behind the analysis pipeline.

One call runs what the analysis pipeline runs (`api.analyse`, also `flops_fit.analyse`):

    from flops_fit import analyse
    study = analyse(results, params["analysis"], compute_model="plan")
    study.predict(1e14), study.recommended, study.to_json()

The compute model C = f(N) D is never assumed: `compute_model` is one of "plan" (the plan's
flops_per_token), "6nd", "table", "auto" or a `ComputeModel`, and every function below that
converts between C, N and D takes it as an argument.

The sub-packages, by approach:
- `runs`: the runs table every approach fits, its budgets and which runs are used.
- `isoflop`: Approaches 1 and 2 (lowest-loss run, parabola vertex, power laws, bootstrap).
- `surface`: Approach 3 (the law, objective, solver, starts, fit, the compute model).
- `laws`: Approach 3's law families, their fits, and the choice among them by rollout.
- `checks`: agreement, sweep diagnostics, the extrapolation check, the recommendation.
- `outputs`: the optimal points, the predictions and curves, the `scaling_laws` document.
- `bootstrap` (draws shared by every approach) and `threads` (BLAS threads while fitting).
"""

__all__ = ["Analysis", "analyse"]


def __getattr__(name: str):
    # Lazy: importing one fitting module (the reporting, the parameters) need not import them all.
    if name in __all__:
        from flops_fit.fitting import api

        return getattr(api, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
