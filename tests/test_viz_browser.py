"""`kedro viz run` serves the pipeline graph, and headless Chromium draws every node of the
planning, training, analysis, next_round, validation and reporting pipelines.

The node names come from the registered pipelines, so the test stays true as they evolve. It
needs Debian's Chromium at /usr/bin/chromium (`apt-get install chromium`; .ci/run installs it):
without it the test is skipped locally and fails in CI (env CI set).
"""

from __future__ import annotations

import contextlib
import json
import os
import random
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from tests.conftest import PROJECT_ROOT

pytestmark = pytest.mark.browser

CHROMIUM = Path("/usr/bin/chromium")
STAGES = ("planning", "training", "analysis", "next_round", "validation", "reporting")
REQUIRED = ("planning", "reporting")
STARTUP_TIMEOUT_S = 120
DRAW_TIMEOUT_MS = 60_000


def _unavailable(reason: str) -> None:
    if os.environ.get("CI"):
        pytest.fail(f"{reason} (required in CI)")
    pytest.skip(reason)


def _free_port() -> int:
    # kedro-viz refuses ports above 49151 and silently moves on from a busy one: pick a free
    # registered port ourselves.
    for _ in range(200):
        port = random.randint(20_000, 45_000)
        with socket.socket() as sock:
            try:
                sock.bind(("127.0.0.1", port))
            except OSError:
                continue
        return port
    raise RuntimeError("no free TCP port between 20000 and 45000")


def _expected_node_names() -> dict[str, set[str]]:
    from kedro.framework.project import pipelines
    from kedro.framework.startup import bootstrap_project

    bootstrap_project(PROJECT_ROOT)
    found = {stage: {node.name for node in pipelines[stage].nodes}
             for stage in STAGES if stage in pipelines}
    missing = [stage for stage in REQUIRED if not found.get(stage)]
    assert not missing, f"pipelines {missing} are not registered"
    return found


def _pages(expected: dict[str, set[str]]) -> list[tuple[str | None, set[str]]]:
    """(pipeline id or None for the default page, the node names it must draw)."""
    from kedro.framework.project import pipelines

    default = {node.name for node in pipelines["__default__"].nodes}
    on_default = set().union(*(names & default for names in expected.values()))
    return [(None, on_default)] + [(stage, names) for stage, names in expected.items()
                                   if names - default]


def _wait_until_serving(proc: subprocess.Popen, port: int, log: Path) -> dict:
    deadline = time.monotonic() + STARTUP_TIMEOUT_S
    while True:
        if proc.poll() is not None:
            raise AssertionError(f"kedro viz exited with {proc.returncode}:\n"
                                 f"{log.read_text()[-4000:]}")
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/api/main", timeout=5) as r:
                return json.load(r)
        except OSError:
            if time.monotonic() > deadline:
                raise AssertionError(f"kedro viz did not answer on port {port} within "
                                     f"{STARTUP_TIMEOUT_S} s:\n{log.read_text()[-4000:]}") from None
            time.sleep(0.5)


def _stop(proc: subprocess.Popen) -> None:
    """The server runs in a child of the `kedro` process: stop the whole process group."""
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=15)
    else:
        with contextlib.suppress(ProcessLookupError):  # the parent is gone; a child may listen
            os.killpg(proc.pid, signal.SIGTERM)


def test_viz_draws_the_nodes_of_every_pipeline(tmp_path):
    if not CHROMIUM.exists():
        _unavailable(f"{CHROMIUM} is missing (apt-get install -y chromium)")
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        _unavailable("the playwright Python package is not installed")

    expected = _expected_node_names()
    port = _free_port()
    log = tmp_path / "kedro-viz.log"
    with log.open("w") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "kedro", "viz", "run", "--no-browser",
             "--host", "127.0.0.1", "--port", str(port)],
            cwd=PROJECT_ROOT, stdout=out, stderr=subprocess.STDOUT, start_new_session=True,
            env={**os.environ, "KEDRO_DISABLE_TELEMETRY": "1"},
        )
    try:
        api = _wait_until_serving(proc, port, log)
        served = {p["id"] for p in api["pipelines"]}
        assert set(expected) <= served

        with sync_playwright() as pw:
            browser = pw.chromium.launch(
                executable_path=str(CHROMIUM),
                args=["--headless", "--no-sandbox", "--disable-gpu",
                      "--disable-background-networking"],
            )
            page = None
            drawn: set[str] = set()
            try:
                context = browser.new_context(viewport={"width": 1600, "height": 1000})
                # the onboarding hints cover part of the graph; raw names, not "pretty" ones
                context.add_init_script(
                    "window.localStorage.setItem('KedroViz', "
                    "JSON.stringify({showFeatureHints: false, isPrettyName: false}))")
                page = context.new_page()
                # the default pipeline first, then each pipeline it leaves out (next_round) on
                # its own page (kedro-viz selects a pipeline with ?pid=)
                for pid, names in _pages(expected):
                    page.goto(f"http://127.0.0.1:{port}/" + (f"?pid={pid}" if pid else ""))
                    page.wait_for_function(
                        """names => {
                            const drawn = new Set(Array.from(
                                document.querySelectorAll('svg text'), t => t.textContent));
                            return names.every(n => drawn.has(n));
                        }""",
                        arg=sorted(names), timeout=DRAW_TIMEOUT_MS,
                    )
                    drawn |= set(page.locator("svg text").all_text_contents())
            except Exception:
                drawn |= set(page.locator("svg text").all_text_contents()) if page else set()
                missing = {stage: sorted(names - drawn) for stage, names in expected.items()
                           if names - drawn}
                pytest.fail(f"node names not drawn within {DRAW_TIMEOUT_MS / 1000:.0f} s: "
                            f"{missing}")
            finally:
                browser.close()
    finally:
        _stop(proc)

    for stage, names in expected.items():
        assert names <= drawn, f"{stage}: {sorted(names - drawn)} not drawn"
