"""The errors the project's hooks raise before a run (a stage's input not written yet, runs_path
and the environment at odds), and `find_cause`, which finds an error of a kind among the causes
Kedro wraps around it. Their own module, so that the hooks and `cli_errors`, which prints them
as one line, need not import each other.
"""

from __future__ import annotations

__all__ = ["ImportedRunsError", "MissingStageOutput", "find_cause"]


class MissingStageOutput(RuntimeError):
    """A pipeline needs a file an earlier stage has not written yet."""


class ImportedRunsError(RuntimeError):
    """runs_path and the environment that reads it do not match the pipelines asked for."""


def find_cause(error: BaseException | None,
               kinds: type[BaseException] | tuple[type[BaseException], ...]
               ) -> BaseException | None:
    """The first exception of `kinds` in `error`'s chain of causes (Kedro wraps what a node or
    a dataset raises), if any."""
    seen = set()
    while error is not None and id(error) not in seen:
        if isinstance(error, kinds):
            return error
        seen.add(id(error))
        error = error.__cause__ or error.__context__
    return None
