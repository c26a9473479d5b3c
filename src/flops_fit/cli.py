"""Project commands: `kedro study`, a study that steers itself.

    kedro study [--env ENV] [--params k=v,...] [--conf-source PATH]

runs, one KedroSession per step (Kedro runs one pipeline run per session):

1. `planning`: the pilot (the planning section's sweep); the `study` parameters are checked
   against it before anything trains (`flops_fit.study.rounds.check_study`);
2. `training,analysis`: train every pending run of every round so far, and fit;
3. `next_round`: plan the next round from the fit, or say why the study stops (precise
   enough, out of compute, out of rounds, or no round would narrow the answer);
4. back to 2 until it stops; then `validation` (unless `study.validation.enabled` is false)
   and `reporting`.

Every step reads and writes the catalog's files, so the command resumes where it was stopped:
run it again after a kill, a preemption or a crash and it trains only the runs that have no
result, and plans no round twice. The study lock (`flops_fit.hooks`) keeps a second command
(or a `kedro run`) off the same study while one step runs.
"""

from __future__ import annotations

import logging
import sys
from pathlib import Path
from typing import Any

import click
from kedro.framework.cli.project import (
    CONF_SOURCE_HELP,
    PARAMS_ARG_HELP,
    _split_params,
    validate_conf_source,
)
from kedro.framework.cli.utils import env_option
from kedro.framework.session import KedroSession
from kedro.runner import SequentialRunner

from flops_fit.cli_errors import excepthook

log = logging.getLogger("flops_fit.study")

# Kedro imports this module for every `kedro` command of the project: a user's mistake ends
# in one line there, not in a traceback (flops_fit.cli_errors)
sys.excepthook = excepthook

#: the loop's guard: rounds beyond study.max_rounds are never planned, so this is never reached
#: unless next_round misbehaves; it keeps a bug from training forever
EXTRA_ITERATIONS = 2


@click.group(name="flops-fit")
def cli() -> None:
    """flops-fit's project commands."""


class _Study:
    def __init__(self, env: str | None, conf_source: str | None, params: dict[str, Any]):
        self.kwargs = {"env": env, "conf_source": conf_source, "runtime_params": params}

    def run(self, *pipelines: str) -> None:
        log.info("kedro study: running %s", ", ".join(pipelines))
        with KedroSession.create(**self.kwargs) as session:
            # the runner `kedro run` uses, passed as an instance so that run hooks (kedro-viz's
            # workflow tracking) recognise it as sequential
            session.run(pipeline_names=list(pipelines), runner=SequentialRunner())

    def load(self, *names: str) -> list[Any]:
        with KedroSession.create(**self.kwargs) as session:
            catalog = session.load_context().catalog
            return [catalog.load(n) for n in names]

    def preflight(self) -> tuple[Any, Any, list[dict[str, Any]], bool]:
        """From one session, before planning: the planning and study parameters, the round
        files so far, and whether `results` is runs trained elsewhere (nothing to train)."""
        from flops_fit.pipelines.analysis.datasets import runs_file

        with KedroSession.create(**self.kwargs) as session:
            context = session.load_context()
            return (context.params["planning"], context.params["study"],
                    context.catalog.load("round_plans"), runs_file(context.catalog) is not None)


def _merged_params(ctx: click.Context, param: click.Parameter, values: tuple[str, ...]
                   ) -> dict[str, Any]:
    """Every --params option, merged in order (a later key wins), not the last one alone."""
    merged: dict[str, Any] = {}
    for value in values:
        _deep_update(merged, _split_params(ctx, param, value))
    return merged


def _deep_update(into: dict[str, Any], new: dict[str, Any]) -> None:
    for key, value in new.items():
        if isinstance(value, dict) and isinstance(into.get(key), dict):
            _deep_update(into[key], value)
        else:
            into[key] = value


@cli.command()
@env_option
@click.option("--conf-source", callback=validate_conf_source, help=CONF_SOURCE_HELP)
@click.option("--params", type=click.UNPROCESSED, multiple=True, help=PARAMS_ARG_HELP
              + " May be given more than once.", callback=_merged_params)
def study(env: str | None, conf_source: str | None, params: dict[str, Any]) -> None:
    """Pilot, fit, next round, ... until N_opt(study.target_budget) is precise enough; then a
    validation run and the report. Resumes where it stopped when run again."""
    from flops_fit.hooks import IMPORT_COMMAND
    from flops_fit.parameters.planning import PlanningConfig
    from flops_fit.parameters.study import StudyConfig
    from flops_fit.study.rounds import (
        StudyConfigError,
        StudyStateError,
        check_study,
        check_target,
        check_target_budget,
    )
    from flops_fit.study.validation import check_validation_budget

    steps = _Study(env, conf_source, params)
    planning, raw, docs, imported = steps.preflight()
    if imported:
        raise click.ClickException(
            f"kedro study trains its own runs; the {env or 'local'} environment reads runs "
            f"trained elsewhere (its `results` is a runs file). Nothing was run; analyse them "
            f"with `{IMPORT_COMMAND}`")
    cfg = StudyConfig.from_params(raw)
    try:
        largest = max(PlanningConfig.from_params(planning).compute_budgets.budgets())
        check_target_budget(cfg, largest)
        if cfg.validation.enabled:
            check_validation_budget(cfg, largest)
        check_target(docs, cfg.target_budget)
        steps.run("planning")
        (pilot,) = steps.load("sweep_plan")
        check_study(cfg, pilot)
    except (StudyConfigError, StudyStateError) as exc:
        raise click.ClickException(str(exc)) from None
    stop = None
    for _ in range(cfg.max_rounds + EXTRA_ITERATIONS):
        steps.run("training", "analysis")
        steps.run("next_round")
        (latest,) = steps.load("next_round")
        stop = latest.get("stop_reason")
        if stop:
            break
    else:
        raise click.ClickException("the study planned more rounds than study.max_rounds allows; "
                                   "see its round files, 02_intermediate/study in the data root")
    if cfg.validation.enabled:
        steps.run("validation")
    steps.run("reporting")
    (rounds,) = steps.load("study_rounds")
    last = rounds.iloc[-1]
    after = (f"the pilot and {len(rounds) - 1} round(s)" if len(rounds) > 1
             else "the pilot alone")  # row 0 of study_rounds is the pilot
    click.echo(f"Study done after {after}, {last['flops_so_far']:.3g} training FLOPs: {stop}")
    if cfg.validation.enabled:
        (validation,) = steps.load("validation")
        click.echo(f"Validation: {validation['verdict']}")
    from flops_fit.hooks import data_root

    root = data_root(params, Path.cwd())
    click.echo(f"Report: {root / '08_reporting' / 'report.html'}")
