"""notebooks/explore_scaling_laws.ipynb executes headless after `kedro run --env mock`."""

from __future__ import annotations

import nbformat
from nbclient import NotebookClient

from tests.conftest import PROJECT_ROOT

NOTEBOOK = PROJECT_ROOT / "notebooks" / "explore_scaling_laws.ipynb"


def test_notebook_ships_without_outputs():
    nb = nbformat.read(NOTEBOOK, as_version=4)
    assert all(not c.get("outputs") for c in nb.cells if c.cell_type == "code")
    assert "%load_ext kedro.ipython" in nb.cells[1].source


def test_notebook_executes_after_a_mock_run(kedro_run, monkeypatch):
    kedro_run(env="mock", timeout=240)
    assert (kedro_run.data_root / "07_model_output" / "scaling_laws.json").exists()
    monkeypatch.setenv("FLOPS_FIT_DATA_ROOT", str(kedro_run.data_root))
    monkeypatch.setenv("KEDRO_DISABLE_TELEMETRY", "1")
    nb = nbformat.read(NOTEBOOK, as_version=4)
    client = NotebookClient(nb, timeout=120, kernel_name="python3",
                            resources={"metadata": {"path": str(NOTEBOOK.parent)}})
    client.execute()  # raises CellExecutionError, with the cell and traceback, on any error

    outputs = [o for c in nb.cells if c.cell_type == "code" for o in c.outputs]
    text = "".join(o.get("text", "") for o in outputs if o.output_type == "stream")
    assert "refit:    N_opt" in text and "At 1e24 FLOPs: N ≈" in text
    images = [o for o in outputs if "image/png" in o.get("data", {})]
    assert len(images) == 1, "the re-plotted IsoFLOP figure is displayed"
