"""Approaches 1 and 2: per-budget estimators (lowest-loss run, parabola vertex) and power laws,
vectorised over bootstrap draws (`estimators`), applied to a study with its bootstrap and
warnings (`approaches`)."""
