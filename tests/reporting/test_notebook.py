"""notebooks/explore_scaling_laws.ipynb runs the mock study from Python (a KedroSession with
runtime parameters) and reads it back through the catalog, headless."""

from __future__ import annotations

import nbformat
import pytest
from nbclient import NotebookClient

from tests.conftest import PROJECT_ROOT

NOTEBOOK = PROJECT_ROOT / "notebooks" / "explore_scaling_laws.ipynb"


def test_notebook_ships_without_outputs():
    nb = nbformat.read(NOTEBOOK, as_version=4)
    assert all(not c.get("outputs") for c in nb.cells if c.cell_type == "code")
    assert "%load_ext kedro.ipython" in nb.cells[1].source


@pytest.mark.slow  # ~35 s of notebook: analyse(), which it calls, equals the pipeline (test_api)
def test_notebook_runs_the_study_from_python(tmp_path, monkeypatch):
    data_root = tmp_path / "study"
    monkeypatch.setenv("FLOPS_FIT_DATA_ROOT", str(data_root))
    monkeypatch.setenv("FLOPS_FIT_ENV", "mock")
    monkeypatch.delenv("FLOPS_FIT_SKIP_RUN", raising=False)
    monkeypatch.setenv("KEDRO_DISABLE_TELEMETRY", "1")
    nb = nbformat.read(NOTEBOOK, as_version=4)
    client = NotebookClient(nb, timeout=240, kernel_name="python3",
                            resources={"metadata": {"path": str(NOTEBOOK.parent)}})
    client.execute()  # raises CellExecutionError, with the cell and traceback, on any error

    # the session wrote the whole study under the runtime data root
    assert (data_root / "07_model_output" / "scaling_laws.json").exists()
    assert (data_root / "08_reporting" / "report.html").exists()
    outputs = [o for c in nb.cells if c.cell_type == "code" for o in c.outputs]
    text = "".join(o.get("text", "") for o in outputs if o.output_type == "stream")
    assert f"study 'mock' in {data_root}" in text
    assert "refit:    N_opt" in text and "At 1e24 FLOPs: N ≈" in text
    images = [o for o in outputs if "image/png" in o.get("data", {})]
    assert len(images) == 1, "the re-plotted IsoFLOP figure is displayed"
