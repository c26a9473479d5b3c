"""Cap the BLAS thread pool while fitting.

The fitters call BLAS on many tiny matrices; an OpenBLAS pool as wide as the machine, next to
other busy processes, makes them many times slower (oversubscription). Environment variables
such as OPENBLAS_NUM_THREADS are read once, when numpy is imported, so setting them here would
be too late. `limit_blas_threads` therefore changes the pool at run time:

1. with `threadpoolctl` when it is installed (it is not a dependency of flops-fit), else
2. by calling OpenBLAS's own `*_set_num_threads` in every OpenBLAS library already loaded into
   the process (numpy's and scipy's wheels each bundle one), found through /proc/self/maps.

Either way the previous sizes are restored on exit. Where neither works (no OpenBLAS, not
Linux) it does nothing and says so in the description it yields.
"""

from __future__ import annotations

import ctypes
import logging
import os
from collections.abc import Iterator
from contextlib import contextmanager

log = logging.getLogger(__name__)

# (getter, setter) pairs exported by the OpenBLAS builds numpy/scipy wheels ship.
_OPENBLAS_SYMBOLS = (
    ("scipy_openblas_get_num_threads64_", "scipy_openblas_set_num_threads64_"),
    ("scipy_openblas_get_num_threads", "scipy_openblas_set_num_threads"),
    ("openblas_get_num_threads64_", "openblas_set_num_threads64_"),
    ("openblas_get_num_threads", "openblas_set_num_threads"),
)


def _loaded_openblas_paths() -> list[str]:
    try:
        with open("/proc/self/maps", encoding="utf-8", errors="replace") as fh:
            paths = {line.split()[-1] for line in fh if "openblas" in line.lower() and "/" in line}
    except OSError:
        return []
    return sorted(p for p in paths if os.path.isfile(p))


def _openblas_controls() -> list[tuple[str, object, object]]:
    controls = []
    for path in _loaded_openblas_paths():
        try:
            lib = ctypes.CDLL(path, mode=getattr(os, "RTLD_NOLOAD", 0) | ctypes.RTLD_GLOBAL)
        except OSError:
            continue
        for getter, setter in _OPENBLAS_SYMBOLS:
            get_fn, set_fn = getattr(lib, getter, None), getattr(lib, setter, None)
            if get_fn is not None and set_fn is not None:
                get_fn.restype = ctypes.c_int
                set_fn.argtypes = [ctypes.c_int]
                controls.append((os.path.basename(path), get_fn, set_fn))
                break
    return controls


@contextmanager
def limit_blas_threads(limit: int | None) -> Iterator[str]:
    """Run the body with at most `limit` BLAS threads; yields what was done, for the log."""
    if limit is None or limit <= 0:
        yield "BLAS threads not limited"
        return
    try:
        from threadpoolctl import threadpool_limits  # optional
    except ImportError:
        threadpool_limits = None
    if threadpool_limits is not None:
        with threadpool_limits(limits=int(limit), user_api="blas"):
            yield f"BLAS threads limited to {limit} with threadpoolctl"
        return
    controls = _openblas_controls()
    previous = []
    for name, get_fn, set_fn in controls:
        try:
            previous.append((set_fn, int(get_fn())))
            set_fn(int(limit))
        except Exception as exc:  # pragma: no cover - defensive: a foreign BLAS build
            log.debug("could not set the thread count of %s: %s", name, exc)
    try:
        if previous:
            yield f"BLAS threads limited to {limit} ({len(previous)} OpenBLAS pool(s), via ctypes)"
        else:
            yield "BLAS threads not limited (no OpenBLAS control found)"
    finally:
        for set_fn, count in previous:
            set_fn(count)


def blas_thread_counts() -> dict[str, int]:
    """Current pool size of every loaded OpenBLAS (for tests and diagnostics)."""
    return {name: int(get_fn()) for name, get_fn, _ in _openblas_controls()}
