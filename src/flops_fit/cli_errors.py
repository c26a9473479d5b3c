"""How the `kedro` command shows a mistake in the user's input: one `Error:` line, not a
traceback.

A bad parameter, a runs table that cannot be read, a study that is locked or a stage that has
not run yet raises one of `user_errors()`, whose message already names the key, the file and the
fix; the 60-odd lines of Kedro and pluggy frames printed above it only hide that line. The
project's `cli` module (which Kedro imports for every `kedro` command of this project) installs
`excepthook`, so only the command line is affected: code that calls flops-fit or a
KedroSession itself still gets the exception. `FLOPS_FIT_TRACEBACK=1` shows the traceback as
well. A `--pipelines` name the project does not have is said the same way; every other
exception keeps its traceback.
"""

from __future__ import annotations

import difflib
import os
import re
import sys
from pathlib import Path
from types import TracebackType

#: set (to anything but "" or "0") to print the traceback of a user error too
TRACEBACK_VARIABLE = "FLOPS_FIT_TRACEBACK"


def user_errors() -> tuple[type[BaseException], ...]:
    """The exception types whose message is the whole story (imported when one is raised)."""
    from flops_fit.data.corpus import CorpusError
    from flops_fit.execution.settings import SettingsChangedError
    from flops_fit.execution.study_lock import StorageError, StudyLockedError
    from flops_fit.fitting.api import AnalysisInputError
    from flops_fit.fitting.runs.table import RunsTableError
    from flops_fit.fitting.surface.compute_model import ComputeModelError
    from flops_fit.nn.runtime import DeviceUnavailableError
    from flops_fit.parameters.base import ParameterError
    from flops_fit.pipelines.analysis.datasets import RunsFileError
    from flops_fit.planning.sweep import PlanningError
    from flops_fit.planning.trunks import TrunkPlanError
    from flops_fit.stage_errors import ImportedRunsError, MissingStageOutput
    from flops_fit.study.rounds import StudyConfigError, StudyStateError

    return (ParameterError, RunsTableError, AnalysisInputError, ComputeModelError,
            MissingStageOutput, ImportedRunsError, StudyConfigError, StudyStateError,
            PlanningError, TrunkPlanError, SettingsChangedError, StorageError,
            StudyLockedError, CorpusError, RunsFileError, DeviceUnavailableError)


def user_error(error: BaseException | None) -> BaseException | None:
    """The user error in `error`'s chain of causes, if any."""
    try:
        from flops_fit.stage_errors import find_cause

        kinds = user_errors()
    except Exception:  # noqa: BLE001 - a broken import must not hide the original error
        return None
    return find_cause(error, kinds)


_MISSING_PIPELINE = re.compile(r"importing the 'flops_fit\.pipelines\.([^'.]+)' module")


def unknown_pipeline(error: BaseException) -> str | None:
    """What to say when `--pipelines` named no pipeline of the project (Kedro tries to import a
    module of that name and reports an ImportError that names no pipeline)."""
    match = _MISSING_PIPELINE.search(str(error)) if isinstance(error, ImportError) else None
    if match is None:
        return None
    folder = Path(__file__).parent / "pipelines"
    known = sorted(p.name for p in folder.iterdir() if (p / "pipeline.py").is_file())
    if match.group(1) in known:  # the pipeline exists and failed to import: a real error
        return None
    close = difflib.get_close_matches(match.group(1), known, n=1)
    hint = f" (did you mean '{close[0]}'?)" if close else ""
    return (f"--pipelines: no pipeline named '{match.group(1)}'{hint}; the pipelines are "
            f"{', '.join(known)}. Nothing was run")


def excepthook(kind: type[BaseException], value: BaseException,
               tb: TracebackType | None) -> None:
    found = user_error(value)
    message = str(found) if found is not None else unknown_pipeline(value)
    if message is None or os.environ.get(TRACEBACK_VARIABLE, "") not in ("", "0"):
        sys.__excepthook__(kind, value, tb)
        return
    sys.stderr.write(f"Error: {message}\n({TRACEBACK_VARIABLE}=1 shows the traceback)\n")
