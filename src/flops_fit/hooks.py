"""Project hooks: every parameter, the data root and the study lock are checked before any node.

Kedro validates each node input `params:<section>` annotated with a typed model
(`flops_fit.parameters`) when the context's parameters are first read, for the pipelines it has
loaded. This hook checks every section as soon as the context exists, so a bad value fails before
planning writes a file even in sections whose pipeline runs last (or is not run at all), and it
adds what Kedro's message lacks (`flops_fit.parameters.sources`): the file or `--params` each bad
key came from, a "did you mean", and misspelt top-level keys.

Before the pipeline runs, the data root (`--params data_root=...`, default `data` under the
project) must be a writable folder (created if missing): otherwise one line names the path and
the OS error, instead of a dataset error after some nodes ran; runs trained elsewhere
(`--env imported`) are analysed, never trained, from a runs_path that names a file, and
runs_path needs that environment; and every earlier stage's output it reads (the sweep plan,
the fit, ...) must exist, or one line says which pipeline writes it.
Every run then takes the study
lock on the folder of the `runs` dataset
(`flops_fit.execution.study_lock`), which also proves that folder writable before planning, and
releases it after the run or on error; a second `kedro run` on the same study stops at once,
naming the process that holds it.

SIGTERM and SIGINT (a scheduler's preemption, Ctrl-C) are caught for the length of the run
(`flops_fit.execution.interrupt`): the run in progress checkpoints, the lock is released, one
line says what was saved, and the process exits with 128 + the signal's number.
"""

from __future__ import annotations

import logging
import threading
from pathlib import Path

from kedro.framework.hooks import hook_impl
from kedro.validation.exceptions import ParameterValidationError

from flops_fit.execution import interrupt
from flops_fit.execution.study_lock import StudyLock, check_writable_dir
from flops_fit.parameters.base import ParameterError
from flops_fit.parameters.sources import check_parameters, merge_conflicts
from flops_fit.stage_errors import ImportedRunsError, MissingStageOutput, find_cause

#: the data root when `--params data_root=...` is not given: the catalog's
#: `${runtime_params:data_root,data}` default, relative to the project
DEFAULT_DATA_ROOT = "data"
#: the dataset whose folder is the study (one writer at a time)
RUNS_DATASET = "runs"
#: stage outputs a later pipeline reads, and the pipeline that writes each
WRITTEN_BY = {
    "data_summary": "planning", "sweep_plan": "planning", "results": "training",
    **dict.fromkeys(("analysis_runs", "scaling_laws", "bootstrap_draws", "optimal_points",
                     "predictions", "scaling_law_curves"), "analysis"),
}


IMPORT_COMMAND = ("kedro run --env imported --pipelines analysis,reporting "
                  "--params runs_path=/abs/path/runs.csv")


def check_imported_runs(pipeline, catalog, runtime_params: dict | None) -> None:
    """Runs trained elsewhere (`RunsFileDataset` as `results`, conf/imported) are analysed,
    never trained, and runs_path means nothing without them: either mismatch, or a runs_path
    that names no runs file, is one line before the first node."""
    from flops_fit.pipelines.analysis.datasets import RunsFileError, runs_file

    results = runs_file(catalog)
    imported = results is not None
    if imported and "results" in pipeline.all_outputs():
        raise ImportedRunsError(
            "this environment reads runs trained elsewhere (runs_path) as `results`, so it "
            "trains nothing, and the pipelines asked for include training. Nothing was run; "
            f"analyse the file with `{IMPORT_COMMAND}`")
    if imported and "results" in pipeline.inputs():
        try:
            results.check()
        except RunsFileError as exc:
            raise ImportedRunsError(f"{exc}. Nothing was run") from None
    if not imported and (runtime_params or {}).get("runs_path"):
        raise ImportedRunsError(
            f"runs_path={runtime_params['runs_path']} is read by the imported environment "
            "only; this run would use the study's own results instead. Nothing was run; "
            f"add --env imported: `{IMPORT_COMMAND}`")


def check_stage_inputs(pipeline, catalog) -> None:
    """Every earlier stage's output the run reads must exist before the first node runs
    (Kedro would otherwise fail at the node that loads it, after the nodes before it ran)."""
    for name in sorted(pipeline.inputs()):
        stage = WRITTEN_BY.get(name)
        if stage is None or name not in catalog or catalog.exists(name):
            continue
        where = getattr(catalog.get(name), "_filepath", None)
        imported = " (or, for runs trained elsewhere, is your file)" if name == "results" else ""
        raise MissingStageOutput(
            f"{name}{f' ({where})' if where else ''} does not exist yet: it is written by the "
            f"{stage} pipeline{imported}. Nothing was run; run `kedro run --pipelines {stage}` (and the "
            "stages before it) first, or `kedro study`, which runs every stage in order")


def data_root(runtime_params: dict | None, project_path: str | Path) -> Path:
    """The folder every catalog path starts with (relative paths resolve against the project)."""
    root = Path(str((runtime_params or {}).get("data_root") or DEFAULT_DATA_ROOT))
    return root if root.is_absolute() else Path(project_path) / root


def runs_folder(catalog) -> Path | None:
    """The local folder of the `runs` dataset, or None if the catalog has no such folder."""
    try:
        dataset = catalog.get(RUNS_DATASET)
    except Exception:  # noqa: BLE001 - a catalog without `runs` has no study to lock
        return None
    folder = getattr(dataset, "folder", None)
    return Path(folder) if folder is not None else None


class ParameterValidationHooks:
    def __init__(self) -> None:
        self._lock: StudyLock | None = None
        self._signals: dict = {}

    @hook_impl
    def after_context_created(self, context) -> None:
        loader = context.config_loader
        project_path = Path(context.project_path)
        conf_root = Path(getattr(loader, "conf_source", project_path / "conf"))
        try:
            raw = loader["parameters"]
        except Exception:  # OmegaConf's merge errors name neither the file nor the key
            where = self._where(context, loader, project_path)
            problems = merge_conflicts(conf_root, where["base_env"], where["run_env"])
            if problems:
                raise ParameterError("invalid parameter files, nothing was run:\n"
                                     + "\n".join(f"- {p}" for p in problems)) from None
            raise
        # Kedro validates the typed params: inputs of the pipelines it has loaded, and 1.7 loads
        # only those named with --pipelines; every section is checked here as well, so a bad
        # `reporting.style` fails a `--pipelines planning` run too, before any work.
        # Kedro logs each failure with pydantic's own dump first; check_parameters says every
        # problem at once in one Error:, so Kedro's lines are held and shown only if it does not
        held = _Held()
        validator = logging.getLogger(_PARAMETER_VALIDATOR)
        validator.addFilter(held)
        try:
            context.params  # noqa: B018 - Kedro's own validation of every typed params: input
        except ParameterValidationError as kedro_error:
            check_parameters(raw, conf_root, **self._where(context, loader, project_path))
            held.release(validator)
            raise kedro_error  # a typed input outside flops_fit.parameters.SECTIONS
        else:
            held.release(validator)  # what it said of parameters that passed
        finally:
            validator.removeFilter(held)
        check_parameters(raw, conf_root, **self._where(context, loader, project_path))

    @staticmethod
    def _where(context, loader, project_path: Path) -> dict:
        return {
            "base_env": getattr(loader, "base_env", "base") or "base",
            "run_env": context.env or getattr(loader, "default_run_env", "local"),
            "runtime_params": getattr(context, "_runtime_params", None) or {},
            "project_path": project_path,
        }

    @hook_impl
    def before_pipeline_run(self, run_params, pipeline, catalog) -> None:
        project_path = run_params.get("project_path") or Path.cwd()
        check_writable_dir(data_root(run_params.get("runtime_params"), project_path))
        check_imported_runs(pipeline, catalog, run_params.get("runtime_params"))
        check_stage_inputs(pipeline, catalog)
        # Every run locks the study, not only training: planning rewrites the sweep plan that a
        # training run reads back after its sweep, and analysis rewrites the laws in place.
        folder = runs_folder(catalog)
        if folder is not None:
            self._release()
            self._lock = StudyLock(folder).acquire()
        self._signals = interrupt.install()
        _user_error_seen.clear()
        for name in _RUNNER_LOGGERS:
            logging.getLogger(name).addFilter(_no_resume_advice)

    @hook_impl
    def on_node_error(self, error, node, catalog, inputs, is_async, run_id) -> None:
        from flops_fit.cli_errors import user_error

        if user_error(error) is not None:
            _user_error_seen.set()

    @hook_impl
    def after_pipeline_run(self, run_params, run_result, pipeline, catalog) -> None:
        self._release()

    @hook_impl
    def on_pipeline_error(self, error, run_params, pipeline, catalog) -> None:
        self._release()
        stopped = _interruption(error)
        if stopped is not None:
            if not stopped.logged:  # stopped outside training: nothing was saved
                logging.getLogger(__name__).warning("%s", stopped)
            # The sweep already said what was saved; a traceback would only bury that line.
            raise SystemExit(stopped.exit_code)

    def _release(self) -> None:
        signals, self._signals = self._signals, {}
        interrupt.restore(signals)
        for name in _RUNNER_LOGGERS:
            logging.getLogger(name).removeFilter(_no_resume_advice)
        _user_error_seen.clear()
        lock, self._lock = self._lock, None
        if lock is not None:
            lock.release()


def _interruption(error: BaseException | None) -> interrupt.SweepInterrupted | None:
    """The SweepInterrupted behind `error` (Kedro wraps what a dataset's save raises)."""
    return find_cause(error, interrupt.SweepInterrupted)


#: the logger of Kedro's validation of typed params: inputs
_PARAMETER_VALIDATOR = "kedro.validation.parameter_validator"


class _Held(logging.Filter):
    """Keeps the records it is asked about, and lets none through."""

    def __init__(self) -> None:
        super().__init__()
        self.records: list[logging.LogRecord] = []

    def filter(self, record: logging.LogRecord) -> bool:
        self.records.append(record)
        return False

    def release(self, logger: logging.Logger) -> None:
        """Stop holding `logger`'s records, and let those held through."""
        logger.removeFilter(self)
        for record in self.records:
            logger.handle(record)
        self.records.clear()


#: the loggers of Kedro's runners (`logging.getLogger(runner.__module__)`)
_RUNNER_LOGGERS = tuple(f"kedro.runner.{kind}_runner" for kind in ("sequential", "parallel",
                                                                   "thread"))


#: a node of the current run raised one of `cli_errors.user_errors()`
_user_error_seen = threading.Event()


def _no_resume_advice(record: logging.LogRecord) -> bool:
    """Drop Kedro's resume advice ("nodes that have not run ... --from-nodes", "No nodes ran.
    Repeat the previous command") after SIGTERM / SIGINT, where the sweep's own line says to
    run the same command, which is what resumes it; and after a user error, where resuming or
    repeating fails the same way until the input its message names is changed."""
    message = record.getMessage()
    advice = "nodes that have not run" in message or message.startswith("No nodes ran.")
    return not (advice and (interrupt.requested() or _user_error_seen.is_set()))
