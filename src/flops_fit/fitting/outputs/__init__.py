"""What analysis writes: the per-budget optima (`optimal_points`), predictions and curves at the
target budgets (`predictions`), and the `scaling_laws` document (`scaling_laws`)."""
