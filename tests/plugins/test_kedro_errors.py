"""Bad plugins through real `kedro run`s: each fails with its named error before any training.

The toy plugins are imported as `tests.plugins.toy_plugins:...`: `python -m kedro` runs from the
project root, which is on its sys.path. Budgets are tiny; a failing run stops in seconds.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from .toy_plugins import HERE

#: one tiny budget, three sizes of the toy MLP on fresh random examples, trained in-process
TINY = {
    "planning.compute_budgets.values": "[1.0e+8]",
    "planning.model_sizes.num": 3,
    "planning.model_sizes.centre": "fixed_range",
    "planning.model_sizes.fixed_range.min": 300,
    "planning.model_sizes.fixed_range.max": 3000,
    "planning.batch_size": 8,
    "planning.timing_probe_steps": 1,
    "training.backend": "torch",
    "training.executor": "sequential",
    "training.show_progress": "false",
    "training.model.factory": HERE + "mlp",
    "training.model.size_param": "width",
    "training.model.size.max": 256,
    "training.data.factory": HERE + "fresh",
}


def _files(folder: Path, pattern: str = "*") -> list[Path]:
    return sorted(p for p in folder.rglob(pattern) if p.is_file()) if folder.exists() else []


def _run(kedro_run, **params):
    proc = kedro_run("--pipelines", "planning,training", params={**TINY, **params},
                     check=False, timeout=120)
    assert proc.returncode != 0, proc.stdout[-2000:]
    return proc.stdout + proc.stderr


def test_an_unresolved_factory_fails_before_any_node(kedro_run):
    output = _run(kedro_run, **{"training.model.factory": "tests.plugins.nope:mlp",
                                "training.loss": HERE + "NOT_CALLABLE"})
    assert "invalid parameters, nothing was run:" in output
    assert ("params:training.model.factory (tests.plugins.nope:mlp): cannot import module "
            "'tests.plugins.nope'") in output
    assert "PYTHONPATH? (given with --params)" in output
    assert (f"params:training.loss ({HERE}NOT_CALLABLE): is a int, not a callable (given with "
            "--params)") in output
    assert "Running node" not in output
    assert not _files(kedro_run.data_root / "02_intermediate")


@pytest.mark.slow  # a real kedro run (~8 s); the check is tested in process (test_contracts.py)
def test_a_factory_that_raises_fails_in_planning(kedro_run):
    output = _run(kedro_run, **{"training.model.factory": HERE + "mlp_up_to_64"})
    assert "Node plan_isoflop_sweep" in output  # planning, not training
    assert f"params:training.model.factory ({HERE}mlp_up_to_64): calling it with width=" in output
    assert "above the supported maximum 64" in output
    assert not (kedro_run.data_root / "02_intermediate" / "sweep_plan.json").exists()
    assert not _files(kedro_run.data_root / "03_primary" / "runs", "*.json")


@pytest.mark.slow  # a real kedro run (~8 s); the check is tested in process (test_contracts.py)
def test_a_loss_that_cannot_take_the_output_fails_in_planning(kedro_run):
    # the default flops_formula (auto: measured) checks the loss before counting FLOPs
    output = _run(kedro_run, **{"training.loss": HERE + "sequence_loss"})
    assert "Node plan_isoflop_sweep" in output
    assert (f"params:training.loss ({HERE}sequence_loss): cannot take the output of the model "
            "with width=") in output
    assert not (kedro_run.data_root / "02_intermediate" / "sweep_plan.json").exists()
    assert not _files(kedro_run.data_root / "03_primary" / "runs", "*.json")
