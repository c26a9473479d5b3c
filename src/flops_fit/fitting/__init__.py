"""The fitters: framework-free science behind the analysis pipeline.

- `budgets`: the one grouping of runs into IsoFLOP budgets (`assign_budgets`).
- `runs`: one table shape for analysis (`normalise_runs`), which runs are used and why not.
- `isoflop`: Approaches 1 and 2 and the power laws through their optima.
- `parametric`: Approach 3, L(N, D) = E + A/N^alpha + B/D^beta (`fit_parametric`,
  `parametric_loss`, `optimal_allocation`).
- `bootstrap`: paired resampling of runs or budgets, percentile intervals.
- `analysis`: the whole analysis as plain functions (what the Kedro nodes call).
- `reference`: the paper's slow 4,500-start recipe, for the benchmark and tests only.
- `synthetic`: results-shaped tables from a known surface, for tests and the benchmark.
"""
