"""The figures of a study, as pure functions from tables to matplotlib Figures.

Nothing here saves or shows a figure: the catalog's MatplotlibDataset writes them, a notebook
displays them. Every function accepts missing or empty inputs and then returns a figure that says
"No data: <why>" instead of raising.

- `isoflop_profiles`: `isoflop_curves`, loss against N per budget (Approaches 1 and 2 live here)
- `law_panels`: `scaling_laws`, N_opt, D_opt and L_opt against C with bootstrap bands
- `token_ratio`: `tokens_per_param`, D/N against C and (for tokens) the Chinchilla rule of thumb
- `loss_surface`: `parametric_fit`, Approach 3's fitted L(N, D) and the residuals
- `loss_curves`: `loss_curves`, every run's held-out loss during training, per budget
- `common`: the registry `FIGURES` (titles, captions, file names; `figure_specs(unit)` words
  them for another unit of D than tokens), `no_data_figure`, the budget colours and the axis
  formatters that every figure shares

Usage: `from flops_fit.reporting import figures; figures.isoflop_curves(runs, optima, laws)`.
"""

from flops_fit.reporting.figures.common import (
    FIGURES,
    BudgetColours,
    figure_specs,
    no_data_figure,
)
from flops_fit.reporting.figures.isoflop_profiles import isoflop_curves
from flops_fit.reporting.figures.law_panels import scaling_laws
from flops_fit.reporting.figures.loss_curves import loss_curves
from flops_fit.reporting.figures.loss_surface import parametric_fit
from flops_fit.reporting.figures.token_ratio import tokens_per_param

__all__ = [
    "FIGURES",
    "BudgetColours",
    "figure_specs",
    "isoflop_curves",
    "loss_curves",
    "no_data_figure",
    "parametric_fit",
    "scaling_laws",
    "tokens_per_param",
]
