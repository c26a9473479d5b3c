"""Planning a study: model shapes and sizes, the FLOP count, the IsoFLOP sweep, the wall-time
estimate.

- `shapes`: the built-in GPT's shape ladder and its exact parameter counts.
- `flops`: the one home of training FLOPs per unit of D (`full`, `6nd`, `measured`).
- `sweep`: budgets and the sizes sampled at each, as plan records.
- `trunks`: the trunk design: one constant-rate run per size, a cooldown branch per budget.
- `wall_time`: the plan's wall-time estimate from a short timing probe.
"""
