"""Does each run's D agree with its compute? C = f(N) · D, and an IsoFLOP run spends its budget.

A runs table states a run's compute up to three ways: its own C (the compute column), its
planned budget (compute_budget) and f(N) · D, its D at the plan's flops_per_token (6 N for a
table without one). `contradictions` compares, for each run, every pair the table states (a
value the table does not give, but `fitting.runs.table` derived from the others, agrees by
construction and is not compared) with the same pair's median over the `NEIGHBOURS` runs nearest
in model size: a table whose C counts more than 6 N D (attention, or embeddings that N leaves
out, the more so the smaller the model), or whose runs spend a little more than their budget,
agrees with itself. A run off that median by more than a factor `MAX_DISAGREEMENT` is named, with the
quantity that disagrees: the one in every pair that disagrees when the other pair agrees (D when
C and the budget agree with each other but not with f(N) · D), else the pair.

The stored studies agree with their plan's flops_per_token to 0.5 %, and would within a factor
1.7 under 6 N (the full-FLOP GPT study, whose C / 6 N D grows with N); a D in the wrong unit, or
a typo in an exponent, is off by orders of magnitude, and would bend Approach 3's surface while
Approaches 1-2 (which read only N, the budget and the loss) fit on unaware.
"""

from __future__ import annotations

from itertools import combinations
from typing import Any

import numpy as np
import pandas as pd

from flops_fit.fitting.surface.compute_model import PER_UNIT_COLUMN
from flops_fit.planning.flops import compute_6nd

#: a run whose compute statements disagree by more than this factor beyond what the runs of its
#: size show (`NEIGHBOURS`) contradicts itself
MAX_DISAGREEMENT = 10.0
#: the fewest runs stating a pair for its median to say what agreeing means
MIN_RUNS = 3
#: how many runs nearest in model size set what agreeing means for a run (C / 6 N D falls with
#: N where N leaves the embeddings out: a table-wide median would flag its smallest models)
NEIGHBOURS = 8


def _local_medians(log_ratio: pd.Series, log_n: pd.Series) -> pd.Series:
    """Per run, the median of `log_ratio` over the NEIGHBOURS runs nearest in log N (in size
    order, the run itself left out; a window at either end of the sizes shifts inwards)."""
    known = np.isfinite(log_ratio.to_numpy()) & np.isfinite(log_n.to_numpy())
    index = log_ratio.index[known]
    order = np.argsort(log_n.to_numpy()[known], kind="stable")
    values = log_ratio.to_numpy()[known][order]
    n = len(values)
    k = min(NEIGHBOURS, n - 1)
    if k < 1:
        return pd.Series(np.nan, index=log_ratio.index)
    at = np.arange(n)
    start = np.minimum(np.maximum(0, at - NEIGHBOURS // 2), n - 1 - k)
    window = start[:, None] + np.arange(k + 1)  # (n, k + 1): holds the run itself once
    others = values[window][window != at[:, None]].reshape(n, k)
    out = np.median(others, axis=1)
    medians = pd.Series(np.nan, index=log_ratio.index)
    medians[index[order]] = out
    return medians


def _statements(runs: pd.DataFrame) -> dict[str, tuple[str, pd.Series]]:
    """What the table itself says of each run's compute: name -> (where from, values)."""
    used = runs.attrs.get("columns_used", {})
    out: dict[str, tuple[str, pd.Series]] = {}
    budget_column = used.get("compute_budget")
    if used.get("compute") and used.get("compute") != budget_column:
        out["C"] = (f"'{used['compute']}'", runs["compute"])
    if budget_column:
        out["budget"] = (f"'{budget_column}'", runs["compute_budget"])
    if used.get("num_tokens"):
        n = pd.to_numeric(runs["model_size"], errors="coerce").astype(float)
        d = pd.to_numeric(runs["num_tokens"], errors="coerce").astype(float)
        f_d = compute_6nd(n, d)
        how = "6 N"
        if PER_UNIT_COLUMN in runs.columns:
            per_unit = pd.to_numeric(runs[PER_UNIT_COLUMN], errors="coerce").astype(float)
            ok = np.isfinite(per_unit) & (per_unit > 0)
            f_d = f_d.where(~ok, per_unit * d)
            how = f"'{PER_UNIT_COLUMN}'" if ok.all() else f"'{PER_UNIT_COLUMN}', else 6 N"
        out["D"] = (f"D from '{used['num_tokens']}', f(N) from {how}", f_d)
    return {k: (how, pd.to_numeric(v, errors="coerce").astype(float))
            for k, (how, v) in out.items()}


def contradictions(runs: pd.DataFrame) -> dict[Any, str]:
    """Run index -> why its D and its compute contradict each other (see the module)."""
    said = _statements(runs)
    limit = np.log10(MAX_DISAGREEMENT)
    with np.errstate(divide="ignore", invalid="ignore"):
        log_n = np.log10(pd.to_numeric(runs["model_size"], errors="coerce").astype(float))
    ratios: dict[tuple[str, str], pd.Series] = {}  # pair -> log10 of the run's ratio
    medians: dict[tuple[str, str], pd.Series] = {}  # ... and of its neighbours' (per run)
    for a, b in combinations(said, 2):
        with np.errstate(divide="ignore", invalid="ignore"):
            log_ratio = np.log10(said[a][1] / said[b][1])
        if (np.isfinite(log_ratio) & np.isfinite(log_n)).sum() >= MIN_RUNS:
            ratios[(a, b)] = log_ratio
            medians[(a, b)] = _local_medians(log_ratio, log_n)
    out: dict[Any, str] = {}
    for i in runs.index:
        bad = [pair for pair, r in ratios.items() if abs(r[i] - medians[pair][i]) > limit]
        if bad:
            out[i] = _reason(said, bad, len(ratios), ratios, medians, i)
    return out


def _reason(said: dict[str, tuple[str, pd.Series]], bad: list[tuple[str, str]], n_pairs: int,
            ratios: dict[tuple[str, str], pd.Series],
            medians: dict[tuple[str, str], pd.Series], i: Any) -> str:
    """'its D disagrees with its C and budget (...): f(N)·D = 4.64e+14 (...) is 0.001 x its C
    = 4.64e+17 (...) and 0.001 x its budget = ..., runs of its size: 1 x, 1 x'."""
    common = set(bad[0]).intersection(*bad)
    odd = next(iter(common)) if len(common) == 1 and len(bad) < n_pairs else None
    first = odd or bad[0][0]
    names = {"D": "f(N)·D", "C": "C", "budget": "budget"}
    if odd:
        head = f"its {odd} disagrees with its {' and '.join(k for p in bad for k in p if k != odd)}"
    else:
        head = f"its {' and '.join(dict.fromkeys(k for p in bad for k in p))} disagree"
    shown, median = [], []
    for pair in bad:
        sign = 1.0 if pair[0] == first else -1.0  # each ratio with `first` on top
        other = pair[1] if sign > 0 else pair[0]
        shown.append(f"{10 ** (sign * ratios[pair][i]):.3g} x its {names[other]} = "
                     f"{said[other][1][i]:.3g} ({said[other][0]})")
        median.append(f"{10 ** (sign * medians[pair][i]):.3g} x")
    return (f"{head} by more than a factor {MAX_DISAGREEMENT:g} (C = f(N)·D, and a run spends "
            f"its budget): its {names[first]} = {said[first][1][i]:.3g} ({said[first][0]}) is "
            f"{' and '.join(shown)}; runs of its size: {', '.join(median)}")
