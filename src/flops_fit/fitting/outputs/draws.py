"""The bootstrap draws behind every interval, as a table (catalog: `bootstrap_draws`).

One row per draw: Approach 2's power laws (`approach_2_<law>_coefficient`, `..._exponent` for
n_opt, d_opt, l_opt) and Approach 3's surface (`approach_3_<E|A|B|alpha|beta>`, Chinchilla's
form; under `analysis.law` other than chinchilla also `approach_3_law`, the family that answered
in the draw, and every other family's parameters, `approach_3_<family>.<name>`). A draw that
failed is NaN. Approach 1 has no draws. The intervals of scaling_laws.json and predictions.csv
are percentiles of these columns; above the centre of the budgets Approach 3's predictions also
move each draw by the law's own error (`scaling_laws.approach_3.law_error`, whose seed and rates
`fitting.laws.beyond.LawError.from_dict` reads back), as a steered study's rounds
(`flops_fit.study`) do when they read these columns to see where the fit is unsure.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from flops_fit.fitting.isoflop.approaches import IsoflopFit
from flops_fit.fitting.laws.families import DEFAULT_LAW, FAMILIES
from flops_fit.fitting.surface.law import PARAM_NAMES as SURFACE_PARAMS
from flops_fit.fitting.surface.study import SurfaceFit
from flops_fit.schema import LAW_COLUMNS

DRAW_COLUMNS: tuple[str, ...] = (
    "draw",
    *(f"approach_2_{law}_{part}" for law in LAW_COLUMNS for part in ("coefficient", "exponent")),
    *(f"approach_3_{key}" for key in SURFACE_PARAMS),
)
#: the family that answered in each draw, and the other families' parameters
LAW_DRAW_COLUMNS: tuple[str, ...] = (
    "approach_3_law",
    *(f"approach_3_{fam.key(k)}" for fam in FAMILIES.values() if fam.name != DEFAULT_LAW
      for k in fam.param_names),
)


def bootstrap_draws_table(isoflop: dict[str, IsoflopFit], surface: SurfaceFit) -> pd.DataFrame:
    """The draws of Approaches 2 and 3 side by side (empty without a bootstrap)."""
    columns: dict[str, np.ndarray] = {}
    for law_key, fit in isoflop["approach_2"].laws.items():
        for part in ("coefficient", "exponent"):
            values = getattr(fit, f"{part}_draws")
            if values is not None:
                columns[f"approach_2_{law_key}_{part}"] = np.asarray(values, dtype=float)
    if surface.draws is not None:
        for key in SURFACE_PARAMS:
            columns[f"approach_3_{key}"] = np.asarray(surface.draws[key], dtype=float)
    size = max((v.size for v in columns.values()), default=0)
    table = pd.DataFrame({"draw": np.arange(size)})
    for name in DRAW_COLUMNS[1:]:
        values = columns.get(name)
        if values is None or values.size != size:
            values = np.full(size, np.nan)
        table[name] = values
    if surface.draws is not None and "law" in surface.draws:
        for name in LAW_DRAW_COLUMNS:
            key = name[len("approach_3_"):]
            if key in surface.draws and np.size(surface.draws[key]) == size:
                table[name] = surface.draws[key]
    return table


def law_draws(table: pd.DataFrame, law: str) -> tuple[np.ndarray, np.ndarray] | None:
    """Approach 2's (coefficient, exponent) draws of `law` (n_opt, d_opt, l_opt), or None."""
    names = [f"approach_2_{law}_{part}" for part in ("coefficient", "exponent")]
    if len(table) == 0 or any(n not in table for n in names):
        return None
    coefficient, exponent = (table[n].to_numpy(float) for n in names)
    if not np.isfinite(coefficient).any():
        return None
    return coefficient, exponent


def surface_draws(table: pd.DataFrame) -> dict[str, np.ndarray] | None:
    """Approach 3's parameter draws {E, A, B, alpha, beta: (B,)}, or None; in the order of the
    `draw` column, which the law error's deviates follow (`fitting.laws.beyond`)."""
    names = {k: f"approach_3_{k}" for k in SURFACE_PARAMS}
    if len(table) == 0 or any(n not in table for n in names.values()):
        return None
    if "draw" in table:
        table = table.sort_values("draw", kind="stable")
    draws = {k: table[n].to_numpy(float) for k, n in names.items()}
    if not np.isfinite(draws["alpha"]).any():
        return None
    if "approach_3_law" in table:
        draws["law"] = table["approach_3_law"].fillna(DEFAULT_LAW).astype(str).to_numpy()
        for name in LAW_DRAW_COLUMNS[1:]:
            if name in table:
                draws[name[len("approach_3_"):]] = table[name].to_numpy(float)
    return draws
