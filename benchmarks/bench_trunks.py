"""Trunks and branches against runs of their own: FLOPs, wall time and losses, side by side.

For the same planned (N, D) points, two designs train on this machine in one run:

- `points`: every point its own run from step 0 under the cosine schedule (the default study);
- `trunks`: one constant-rate trunk per model size, and every point a cooldown branch forked
  from it (warm-up / stable / decay, 20% 1-sqrt cooldown; `planning.design: trunks`).

It prints, per point, the held-out loss of both and their difference; in all, the FLOPs each
design trains and the wall time each took (as a ratio: the trunk design against the points), and
the planned FLOPs share of the trunk design on two layouts: budgets 2x apart with every size in
5 budgets, and the default study's own (conf/base with design: trunks). The full mode also fits
both designs' runs and compares N_opt at the largest budget with its interval.

Last, the Dask executor's schedule of a two-decade trunk plan (`SCHEDULE`: trunks beside runs
of their own): every run replayed as a sleep of its estimated seconds (`_replay_backend`), the
wall time printed against the ideal, the sum of the sleeps over the workers (60 s of sleeps in
all; 2 s in the quick mode).

    python benchmarks/bench_trunks.py            # the GPT, 5 budgets 2x apart, 4 sizes (~16 min)
    python benchmarks/bench_trunks.py --mnist1d  # MNIST-1D's MLP, 5 budgets 2x apart, 4 sizes
    python benchmarks/bench_trunks.py --quick    # every code path in seconds
"""

from __future__ import annotations

import argparse
import copy
import logging
import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
os.environ.setdefault("KEDRO_DISABLE_TELEMETRY", "1")

from _gpu_runs import load_env  # noqa: E402

#: per study: 5 budgets 2x apart and 4 sizes that stay inside the tokens-per-parameter limits
#: at every one of them (each size in every budget: the layout of the issue's done-when)
LAYOUTS = {
    "local": ((1.0e11, 2.0e11, 4.0e11, 8.0e11, 1.6e12),
              {"num": 4, "centre": "fixed_range", "fixed_range": {"min": 8.0e3, "max": 1.2e5}}),
    "mnist1d": ((2.5e10, 5.0e10, 1.0e11, 2.0e11, 4.0e11),
                {"num": 4, "centre": "fixed_range", "fixed_range": {"min": 4.0e3, "max": 6.0e4}}),
}


#: a two-decade trunk plan of the study's own sizes, for the schedule section: trunks whose
#: shorter runs train on their own, beside standalone runs, as a default-sized study has them
SCHEDULE = {"local": (3.0e10, 1.0e11, 3.0e11, 1.0e12, 3.0e12),
            "mnist1d": (4.0e9, 1.26e10, 4.0e10, 1.26e11, 4.0e11)}


def _plan(params: dict, training_data, design: str, budgets, sizes: dict | None = None):
    from flops_fit.pipelines.planning.nodes import plan_isoflop_sweep, summarise_data

    planning = copy.deepcopy(params["planning"])
    planning["design"] = design
    planning["compute_budgets"] = {"values": list(budgets)}
    if sizes is not None:
        planning["model_sizes"] = {**planning["model_sizes"], **sizes}
    torch_backend = _trainer(params, design)
    summary = summarise_data(training_data, params["corpus"], params["training"], planning,
                             torch_backend)
    plan, _ = plan_isoflop_sweep(list(budgets), summary, training_data, planning,
                                 params["training"], params["corpus"], torch_backend)
    return plan


def _trainer(params: dict, design: str) -> dict:
    """The study's trainer; the trunk design's under warm-up / stable / decay."""
    section = copy.deepcopy(params["torch_backend"])
    section["checkpoint_every_minutes"] = None
    if design == "trunks":
        section["schedule"] = {**section.get("schedule", {}), "kind": "wsd"}
    return section


def _train(params: dict, training_data, plan, design: str, folder: Path, workers: int):
    from flops_fit.execution import prepare_training

    training = copy.deepcopy(params["training"])
    training.update(show_progress=False, checkpoint_dir=str(folder / design), seed=0,
                    executor="dask" if workers > 1 else "sequential")
    training.setdefault("dask", {})["n_workers"] = workers
    start = time.perf_counter()
    records = prepare_training(plan, {}, training, {"torch": _trainer(params, design)},
                               training_data, params["corpus"]).records()
    seconds = time.perf_counter() - start
    failed = [k for k, r in records.items() if r["status"] != "completed"]
    if failed:
        raise SystemExit(f"{design}: {len(failed)} run(s) failed, e.g. "
                         f"{records[failed[0]]['error_message']}")
    return records, seconds


def _trunk_plan(params: dict, training_data, budgets, sizes: dict | None = None):
    """A trunk plan as arithmetic only (no model is built or probed)."""
    arithmetic = {**params, "training": {**params["training"], "backend": "synthetic"}}
    return _plan(arithmetic, training_data, "trunks", budgets, sizes)


def _share(params, training_data, budgets, sizes=None) -> tuple[float, int]:
    """The planned FLOPs share of the trunk design."""
    from flops_fit.planning.trunks import design_flops

    plan = _trunk_plan(params, training_data, budgets, sizes)
    return design_flops(plan)["trained_share"], len(plan)


def _schedule(params: dict, training_data, budgets, workers: int, total: float) -> None:
    """The Dask executor's schedule of a trunk plan, timed: every run replayed as a sleep of its
    estimated seconds (`estimate_from_throughput`, scaled to `total` seconds in all) by
    `_replay_backend`, on a LocalCluster of `workers`. Printed: the wall time against the
    ideal, the sum of the sleeps over the workers, both measured here."""
    import distributed
    from _replay_backend import register

    from flops_fit.execution import prepare_training
    from flops_fit.planning.trunks import design_flops
    from flops_fit.planning.wall_time import estimate_from_throughput

    plan = _trunk_plan(params, training_data, budgets)
    seconds = estimate_from_throughput(plan, 1.0, workers)["run_seconds"]
    scale = total / sum(seconds.values())
    seconds = {k: v * scale for k, v in seconds.items()}
    own = design_flops(plan)["runs_of_their_own"]
    with distributed.LocalCluster(n_workers=workers, threads_per_worker=1, processes=True,
                                  dashboard_address=None) as cluster, \
            distributed.Client(cluster) as client:
        register()
        client.run(register)
        start = time.perf_counter()
        records = prepare_training(plan, {}, {"backend": "replay", "executor": "dask",
                                              "show_progress": False},
                                   {"replay": {"seconds": seconds}}, client=client).records()
        wall = time.perf_counter() - start
    failed = [k for k, r in records.items() if r["status"] != "completed"]
    if failed:
        raise SystemExit(f"schedule: {len(failed)} replayed run(s) failed, e.g. "
                         f"{records[failed[0]]['error_message']}")
    ideal = sum(seconds.values()) / workers
    print(f"\n== the Dask executor's schedule: a trunk plan of {len(plan)} runs ({own} of their "
          f"own), budgets {budgets[0]:.3g} - {budgets[-1]:.3g}, replayed as sleeps of their "
          f"estimated seconds on {workers} workers")
    print(f"  wall {wall:.1f} s against the ideal {ideal:.1f} s (sum / workers) = "
          f"{wall / ideal:.3f}x")


def _n_opt(records: dict, budget: float) -> tuple[dict[str, tuple[float, float, float]], str]:
    """(N_opt at `budget` with its interval by approach: Approach 3's and the recommended
    one's, the recommended approach)."""
    from flops_fit.fitting.api import analyse

    study = analyse(list(records.values()), {"bootstrap": {"draws": 200}}, compute_model="plan")
    out = {}
    for approach in dict.fromkeys(("approach_3", study.recommended)):
        row = study.predict(budget, approach).iloc[0]
        out[approach] = (float(row["model_size"]), float(row["model_size_lo"]),
                         float(row["model_size_hi"]))
    return out, study.recommended


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mnist1d", action="store_true", help="the MNIST-1D study instead")
    parser.add_argument("--workers", type=int, default=2, help="Dask workers (1: sequential)")
    parser.add_argument("--quick", action="store_true", help="every code path in seconds")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING)
    env = "mnist1d" if args.mnist1d else "local"
    params, training_data = load_env(env)

    print("== planned FLOPs of the trunk design, as a share of the same runs one by one")
    layout_budgets, layout = LAYOUTS[env]
    share, runs = _share(params, training_data, layout_budgets, layout)
    print(f"  budgets 2x apart ({len(layout_budgets)}), every size in each: {share:.1%} "
          f"of the FLOPs ({runs} runs)")
    default_budgets = [float(b) for b in params["planning"]["compute_budgets"]["values"]]
    share_default, runs = _share(params, training_data, default_budgets)
    print(f"  the {env} study's own layout ({len(default_budgets)} budgets): "
          f"{share_default:.1%} of the FLOPs ({runs} runs)")

    budgets = layout_budgets if not args.quick else (1.25e9, 2.5e9, 5.0e9)
    sizes = layout if not args.quick else {"num": 3, "centre": "fixed_range",
                                           "fixed_range": {"min": 1.0e3, "max": 6.0e3}}
    plan_points = _plan(params, training_data, "points", budgets, sizes)
    plan_trunks = _plan(params, training_data, "trunks", budgets, sizes)
    workers = 1 if args.quick else args.workers
    if args.quick:  # a smaller held-out set: the quick mode runs the code, it measures nothing
        params = copy.deepcopy(params)
        params["torch_backend"].setdefault("eval", {})["heldout_tokens"] = 8192
    with tempfile.TemporaryDirectory(prefix="bench-trunks-") as tmp:
        points, t_points = _train(params, training_data, plan_points, "points", Path(tmp),
                                  workers)
        trunks, t_trunks = _train(params, training_data, plan_trunks, "trunks", Path(tmp),
                                  workers)

    print(f"\n== the same {len(plan_points)} points, {env}, {workers} worker(s)")
    print(f"  {'point':<28} {'cosine':>8} {'branch':>8} {'diff':>7}")
    diffs = []
    for key, p in sorted(points.items(), key=lambda kv: (kv[1]["compute_budget"],
                                                         kv[1]["model_size"])):
        b = trunks[key]
        diff = b["final_loss"] / p["final_loss"] - 1
        diffs.append(diff)
        print(f"  {key:<28} {p['final_loss']:8.4f} {b['final_loss']:8.4f} {diff:+7.2%}")
    mean = sum(diffs) / len(diffs)
    worst = max(diffs, key=abs)
    print(f"  branch vs cosine: mean {mean:+.2%}, largest {worst:+.2%}")
    flops_points = sum(r["trained_flops"] for r in points.values())
    flops_trunks = sum(r["trained_flops"] for r in trunks.values())
    print(f"  FLOPs trained: trunks {flops_trunks:.3g} vs points {flops_points:.3g} = "
          f"{flops_trunks / flops_points:.1%}")
    print(f"  wall time: trunks {t_trunks:.1f} s vs points {t_points:.1f} s = "
          f"{t_trunks / t_points:.2f}x")

    _schedule(params, training_data, SCHEDULE[env], max(2, args.workers),
              2.0 if args.quick else 60.0)

    if not args.quick:
        top = max(budgets)
        print(f"\n== N_opt({top:.3g}) fitted from each design")
        fits = {name: _n_opt(recs, top) for name, recs in (("points", points),
                                                           ("trunks", trunks))}
        for name, (answers, recommended) in fits.items():
            for approach, (n, lo, hi) in answers.items():
                tag = " (recommended)" if approach == recommended else ""
                print(f"  {name:<7} {n:10.4g}  [{lo:.4g}, {hi:.4g}]  {approach}{tag}")
        (n_p, lo_p, hi_p), (n_t, lo_t, hi_t) = (fits[name][0]["approach_3"]
                                                for name in ("points", "trunks"))
        agree = lo_t <= n_p <= hi_t and lo_p <= n_t <= hi_p
        print(f"  Approach 3, each inside the other's interval: {'yes' if agree else 'NO'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
