"""The fitters: framework-free science behind the analysis pipeline.

A notebook can run the whole analysis without Kedro (the nodes in `pipelines/analysis` are thin
adapters over exactly these calls):

    from flops_fit.fitting.runs.prepare import prepare_runs
    from flops_fit.fitting.checks.extrapolation import extrapolation_check
    from flops_fit.fitting.isoflop.approaches import fit_isoflop_approaches
    from flops_fit.fitting.outputs.optimal_points import optimal_points_table
    from flops_fit.fitting.outputs.predictions import predict
    from flops_fit.fitting.outputs.scaling_laws import summarise
    from flops_fit.fitting.surface.study import fit_surface
    from flops_fit.parameters.analysis import AnalysisConfig

    cfg = AnalysisConfig.from_params(params["analysis"])
    runs, run_summary = prepare_runs(results_df, cfg)
    isoflop = fit_isoflop_approaches(runs, cfg)       # Approaches 1 and 2
    surface = fit_surface(runs, cfg)                   # Approach 3
    check = extrapolation_check(runs, cfg)
    predictions, curves = predict(isoflop, surface, runs, cfg)
    points = optimal_points_table(isoflop, surface, runs)
    laws = summarise(run_summary, runs, isoflop, surface, check, predictions, cfg)  # JSON

The runs table:
- `runs`: one table shape for analysis (`normalise_runs`), whoever trained the runs.
- `budgets`: the one grouping of runs into IsoFLOP budgets (`assign_budgets`).
- `selection`: which runs the fits use and why not (`select_runs`, `find_outliers`).
- `analysis_runs`: all three in order (`prepare_runs`), and the table's types (`coerce_runs`).

Approaches 1 and 2:
- `isoflop`: per-budget estimators (lowest-loss run, parabola vertex) and power laws, all
  vectorised over bootstrap draws.
- `isoflop_laws`: those estimators over a study, bootstrapped (`fit_isoflop_approaches`).

Approach 3, L(N, D) = E + A/N^alpha + B/D^beta:
- `surface`: the algebra -- `parametric_loss`, `allocation_constants`, `optimal_allocation`.
- `objective`: the Huber objective on log-loss and its derivatives.
- `solver`: the batched Levenberg-Marquardt solver.
- `start_search`: variable projection over (alpha, beta) for the starts.
- `parametric`: the fit (`fit_parametric`) and its bootstrap (`bootstrap_parametric`).
- `surface_fit`: the fit over a study, bootstrapped, with warnings (`fit_surface`).
- `reference`: the paper's slow 4,500-start recipe, for the benchmark and tests only.

Shared:
- `bootstrap`: paired resampling of runs or budgets, percentile intervals.
- `diagnostics`: warnings and the agreement check between approaches.
- `extrapolation`: hold the largest budget out, refit, predict it (`extrapolation_check`).
- `predictions`: N_opt, D_opt, loss with intervals at target budgets, and curves (`predict`).
- `optimal_points`: the per-budget optima table (`optimal_points_table`).
- `summary`: the `scaling_laws` JSON document (`summarise`).
- `synthetic`: results-shaped tables from a known surface, for tests and the benchmark.
- `threads`: cap BLAS threads while fitting.
"""
