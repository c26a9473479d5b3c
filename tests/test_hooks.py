"""Every parameter is checked before any node runs, with the file or --params it came from.

The checks themselves live in `flops_fit.parameters.sources` (called by `flops_fit.hooks`); these
tests run them on a copy of the project's conf folder, and through real `kedro run`s.
"""

from __future__ import annotations

import os
import shutil
import subprocess

import pytest
import yaml
from kedro.io import DataCatalog, MemoryDataset

from flops_fit.hooks import ImportedRunsError, check_imported_runs
from flops_fit.parameters.base import ParameterError
from flops_fit.parameters.sources import check_parameters, nest_dotted
from flops_fit.pipelines.analysis.datasets import RunsFileDataset
from flops_fit.pipelines.analysis.pipeline import create_pipeline as analysis
from flops_fit.pipelines.training.pipeline import create_pipeline as training

from .conftest import PROJECT_ROOT, kedro_command


def _write(path, text):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)


@pytest.fixture
def conf(tmp_path):
    shutil.copytree(PROJECT_ROOT / "conf", tmp_path / "conf")
    return tmp_path / "conf"


def _merged(conf, env, runtime=None):
    """base + env, soft-merged like the project's OmegaConfigLoader, plus runtime params."""
    from kedro.config import OmegaConfigLoader

    loader = OmegaConfigLoader(str(conf), base_env="base", default_run_env="local", env=env,
                               runtime_params=runtime or {},
                               merge_strategy={"parameters": "soft"})
    return loader["parameters"]


def _check(conf, env="local", runtime=None):
    runtime = nest_dotted(runtime or {})
    check_parameters(_merged(conf, env, runtime), conf, "base", env, runtime,
                     project_path=conf.parent)


def test_the_shipped_environments_are_valid(conf):
    for env in ("local", "mock", "imported", "dask", "gpu", "mnist1d", "slurm"):
        _check(conf, env)
    _check(conf, "local", {"data_root": "/x", "planning.batch_size": 8})


def test_unknown_key_names_key_and_file(conf):
    _write(conf / "mock/parameters_planning.yml", "planning:\n  model_sizes: {nmu: 9}\n")
    with pytest.raises(ParameterError) as err:
        _check(conf, "mock")
    message = str(err.value)
    assert "planning.model_sizes.nmu" in message
    assert "conf/mock/parameters_planning.yml" in message
    assert "did you mean 'planning.model_sizes.num'" in message
    assert "nothing was run" in message


def test_bad_value_names_key_value_and_file(conf):
    _write(conf / "mock/parameters_reporting.yml", "reporting:\n  style: fancy\n")
    with pytest.raises(ParameterError) as err:
        _check(conf, "mock")
    assert ("params:reporting.style: Input should be 'notebook' or 'paper', got 'fancy' in "
            "conf/mock/parameters_reporting.yml") in str(err.value)


def test_unknown_runtime_param(conf):
    with pytest.raises(ParameterError, match="planning.batchsize' given with --params"):
        _check(conf, "local", {"planning": {"batchsize": 3}})


def test_every_bad_parameter_is_listed_at_once(conf):
    with pytest.raises(ParameterError) as err:
        _check(conf, "local", {"analysis.confidence_level": 1.5,
                               "analysis.bootstrap.draws": -3, "reporting.style": "fancy"})
    lines = [line for line in str(err.value).splitlines() if line.startswith("- ")]
    assert len(lines) == 3
    assert all("given with --params" in line for line in lines)


def test_a_key_another_key_makes_unused_is_an_error(conf):
    with pytest.raises(ParameterError) as err:
        _check(conf, "local", {"planning.compute_budgets.max": 1e13})
    assert ("- planning.compute_budgets.max (1e+13) given with --params is not used while "
            "planning.compute_budgets.values is set (1e+11, 3e+11, 1e+12) in "
            "conf/base/parameters_planning.yml: set planning.compute_budgets.values=null to "
            "plan budgets from min, max and num") in str(err.value)
    _check(conf, "local", {"planning.compute_budgets.max": 1e13,
                           "planning.compute_budgets.values": None})
    with pytest.raises(ParameterError, match=r"planning.design is 'trunks' but "
                       r"torch_backend.schedule.kind is 'cosine'"):
        _check(conf, "local", {"planning.design": "trunks"})
    _check(conf, "local", {"planning.design": "trunks", "torch_backend.schedule.kind": "wsd"})


@pytest.mark.parametrize(("env", "runtime", "message"), [
    ("local", {"planning.model_sizes.power_law.coefficient": 0.3},
     "- planning.model_sizes.power_law.coefficient (0.3) given with --params is not used while "
     "planning.model_sizes.centre is fixed_range in conf/base/parameters_planning.yml: set "
     "planning.model_sizes.centre=power_law"),
    ("mnist1d", {"planning.model_sizes.fixed_range.max": 1e6},
     "- planning.model_sizes.fixed_range.max (1e+06) given with --params is not used while "
     "planning.model_sizes.centre is power_law in conf/mnist1d/parameters_planning.yml"),
    # the mode and the key it ignores set in one place: the key still differs from its default
    ("local", {"planning.model_sizes.centre": "fixed_range",
               "planning.model_sizes.power_law.exponent": 0.4},
     "planning.model_sizes.power_law.exponent (0.4) given with --params is not used while "
     "planning.model_sizes.centre is fixed_range given with --params"),
    ("local", {"planning.compute_budgets.values": [1e11, 1e12],
               "planning.compute_budgets.num": 5},
     "planning.compute_budgets.num (5) given with --params is not used while "
     "planning.compute_budgets.values is set (1e+11, 1e+12) given with --params"),
])
def test_a_key_the_chosen_mode_does_not_read_is_an_error(conf, env, runtime, message):
    with pytest.raises(ParameterError) as err:
        _check(conf, env, runtime)
    assert message in str(err.value)


def test_span_factor_under_a_fixed_range_warns(conf, caplog, monkeypatch):
    """A study's later rounds read span_factor whatever the centre: a warning, not an error."""
    monkeypatch.setattr("flops_fit.parameters.sources._WARNED", set(), raising=False)
    with caplog.at_level("WARNING", logger="flops_fit.parameters.sources"):
        _check(conf, "local", {"planning.model_sizes.span_factor": 2})
        _check(conf, "local", {"planning.model_sizes.span_factor": 2})
    warnings = [r.getMessage() for r in caplog.records if r.levelname == "WARNING"]
    assert len(warnings) == 1  # once per process, though kedro study checks at every session
    assert warnings[0].startswith(
        "planning.model_sizes.span_factor (2) given with --params does not change the planned "
        "sizes while planning.model_sizes.centre is fixed_range in "
        "conf/base/parameters_planning.yml: only a study's later rounds read it")


def test_an_unread_key_at_its_default_or_under_a_mode_picked_later_passes(conf, caplog):
    # an environment restating base's defaults beside base's mode sets nothing
    _write(conf / "gpu/parameters_sizes.yml", "planning:\n  model_sizes:\n    span_factor: 8.0\n"
           "    power_law: {coefficient: 1.0, exponent: 0.5}\n")
    # mnist1d's power law and span are overridden by a centre picked with --params
    with caplog.at_level("WARNING", logger="flops_fit.parameters.sources"):
        _check(conf, "gpu")
        _check(conf, "mnist1d", {"planning.model_sizes.centre": "fixed_range"})
        _check(conf, "mock", {"planning.compute_budgets.values": [1e18, 1e19]})
    assert not [r for r in caplog.records if r.levelname == "WARNING"]


def test_open_mappings_accept_their_keys(conf):
    _write(conf / "mock/parameters_x.yml",
           "analysis:\n  columns: {model_size: Model Size}\n  filter: {condition: raw_loss}\n")
    _check(conf, "mock")


def test_invalid_yaml_names_file(conf):
    _write(conf / "mock/parameters_bad.yml", "planning: [unclosed\n")
    with pytest.raises(Exception, match="parameters_bad.yml"):
        _check(conf, "mock")


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"planing": {"batch_size": 5}},
         "unknown parameter 'planing.batch_size' given with --params "
         "(did you mean 'planning.batch_size'?)"),
        ({"data_roto": "/tmp/x"},
         "unknown parameter 'data_roto' given with --params (did you mean 'data_root'?)"),
    ],
)
def test_unknown_top_level_runtime_param_is_a_typo(conf, params, message):
    """A key outside every section passes only if a config file reads it as a runtime param."""
    with pytest.raises(ParameterError) as err:
        _check(conf, "local", params)
    assert message in str(err.value)
    assert "'planing'" not in str(err.value)  # the leaf is named, not its parent too


def test_every_section_of_base_has_a_model():
    from flops_fit.parameters.sections import SECTIONS

    sections = set()
    for path in (PROJECT_ROOT / "conf/base").glob("parameters*.yml"):
        sections |= set(yaml.safe_load(path.read_text()))
    assert sections == set(SECTIONS)


def test_late_sections_fail_before_planning_writes_a_file(kedro_run):
    """Analysis and reporting run last, but their parameters are checked before planning."""
    params = {"analysis.confidence_level": 1.5, "analysis.bootstrap.draws": -3,
              "reporting.style": "fancy", "planning.model_sizes.nmu": 3}
    proc = kedro_run(env="mock", params=params, check=False, timeout=120)
    assert proc.returncode == 1
    for key in params:
        assert key in proc.stderr + proc.stdout
    assert not kedro_run.data_root.exists() or not any(kedro_run.data_root.rglob("*.*"))
    # the message alone, as one Error: line and its list, without Kedro's traceback above it
    assert "Error: invalid parameters, nothing was run:\n- " in proc.stderr
    assert "Traceback" not in proc.stderr and "FLOPS_FIT_TRACEBACK=1 shows" in proc.stderr


def test_every_params_input_is_annotated_with_its_section_model():
    """So Kedro validates each section before the run (a plain dict annotation would not)."""
    import importlib
    import inspect
    import typing

    from flops_fit.parameters.sections import SECTIONS
    from flops_fit.pipeline_registry import STAGES

    seen = set()
    nodes = [node for stage in STAGES for node in importlib.import_module(
        f"flops_fit.pipelines.{stage}.pipeline").create_pipeline().nodes]
    for node in nodes:
        names = list(inspect.signature(node.func).parameters)
        hints = typing.get_type_hints(node.func)
        for arg, dataset in zip(names, node.inputs, strict=False):
            if dataset.startswith("params:"):
                section = dataset.removeprefix("params:")
                assert hints.get(arg) is SECTIONS[section], (node.name, arg)
                seen.add(section)
    assert seen == set(SECTIONS)


def test_an_unwritable_data_root_is_one_clear_line_before_any_node(kedro_run, tmp_path):
    (tmp_path / "a_file").write_text("not a folder")
    root = tmp_path / "a_file" / "x"
    proc = kedro_run(env="mock", params={"data_root": root}, check=False, timeout=120)
    output = proc.stdout + proc.stderr
    assert proc.returncode != 0
    assert f"data root {root} is not a writable folder: Not a directory (ENOTDIR)" in output
    assert "Cannot save versioned dataset" not in output and "Running node" not in output


def _without_root_override(cmd):
    """As root, drop CAP_DAC_OVERRIDE so that folder permissions apply to the kedro run."""
    if os.geteuid() != 0:
        return cmd
    if shutil.which("setpriv") is None:
        pytest.skip("running as root without setpriv: a read-only folder would be writable")
    return ["setpriv", "--inh-caps=-dac_override", "--bounding-set=-dac_override", *cmd]


def test_a_read_only_runs_folder_is_found_before_planning(tmp_path):
    data_root = tmp_path / "data"
    runs = data_root / "03_primary" / "runs"
    runs.mkdir(parents=True)
    runs.chmod(0o555)
    try:
        proc = subprocess.run(
            _without_root_override(kedro_command(data_root, "--pipelines", "planning,training",
                                                 env="mock")),
            cwd=PROJECT_ROOT, capture_output=True, text=True, timeout=120,
            env={**os.environ, "KEDRO_DISABLE_TELEMETRY": "1"},
        )
    finally:
        runs.chmod(0o755)
    output = proc.stdout + proc.stderr
    assert proc.returncode != 0
    assert f"runs folder {runs} is not a writable folder: Permission denied (EACCES)" in output
    assert "Running node" not in output
    assert not (data_root / "02_intermediate").exists() or not any(
        (data_root / "02_intermediate").iterdir())  # planning wrote nothing


def test_a_section_outside_the_selected_pipelines_is_checked_too(kedro_run):
    """Kedro 1.7 loads (and validates) only the pipelines named with --pipelines."""
    proc = kedro_run("--pipelines", "planning", env="mock", params={"reporting.style": "fancy"},
                     check=False, timeout=120)
    assert proc.returncode != 0
    assert "params:reporting.style" in proc.stderr + proc.stdout
    assert not kedro_run.data_root.exists() or not any(kedro_run.data_root.rglob("*.*"))


def _imported_catalog(runs_path: str):
    return DataCatalog({"results": RunsFileDataset(filepath=runs_path)})


def test_runs_trained_elsewhere_are_analysed_never_trained(tmp_path):
    runs = tmp_path / "runs.csv"
    runs.write_text("params,tokens,loss\n1,2,3\n")
    catalog = _imported_catalog(str(runs))
    with pytest.raises(ImportedRunsError, match=r"trains nothing, and the pipelines asked for "
                       r"include training. Nothing was run; analyse the file with `kedro run "
                       r"--env imported --pipelines analysis,reporting"):
        check_imported_runs(training() + analysis(), catalog, {"runs_path": str(runs)})
    check_imported_runs(analysis(), catalog, {"runs_path": str(runs)})
    with pytest.raises(ImportedRunsError, match=r"runs file .*missing.csv does not exist "
                       r"\(runs_path\). Nothing was run"):
        check_imported_runs(analysis(), _imported_catalog(str(tmp_path / "missing.csv")), {})
    own = DataCatalog({"results": MemoryDataset()})
    with pytest.raises(ImportedRunsError, match=r"runs_path=/x.csv is read by the imported "
                       r"environment only"):
        check_imported_runs(analysis(), own, {"runs_path": "/x.csv"})
    check_imported_runs(training() + analysis(), own, {})


def test_a_runs_path_under_home_is_expanded_after_kedro_made_it_absolute(tmp_path, monkeypatch):
    monkeypatch.setenv("HOME", str(tmp_path))
    (tmp_path / "runs.csv").write_text("params,tokens,loss\n1,2,3\n")
    for given in ("~/runs.csv", "/some/project/~/runs.csv"):
        assert RunsFileDataset(filepath=given).check() == tmp_path / "runs.csv"


def test_a_runs_file_that_cannot_be_read_is_a_user_error(tmp_path):
    """Found only when the analysis loads it (after the hook's check): still one Error: line,
    through Kedro's wrapping of the dataset's error."""
    from kedro.io import DatasetError

    from flops_fit.cli_errors import user_error

    path = tmp_path / "runs.json"
    path.write_text('{"runs": 5')
    with pytest.raises(DatasetError) as err:
        RunsFileDataset(filepath=str(path)).load()
    wrapped = DatasetError("Failed while loading data from dataset results")
    wrapped.__cause__ = err.value
    assert user_error(wrapped) is err.value
    assert str(err.value).startswith(f"{path}: not valid JSON")


def test_a_user_error_is_one_line_anything_else_keeps_its_traceback(capsys, monkeypatch):
    from flops_fit.cli_errors import TRACEBACK_VARIABLE, excepthook, user_error

    monkeypatch.delenv(TRACEBACK_VARIABLE, raising=False)
    wrapped = RuntimeError("node failed")
    wrapped.__cause__ = ParameterError("params:x: bad")
    assert user_error(wrapped) is wrapped.__cause__
    excepthook(RuntimeError, wrapped, None)
    assert capsys.readouterr().err == ("Error: params:x: bad\n"
                                       f"({TRACEBACK_VARIABLE}=1 shows the traceback)\n")
    bug = KeyError("a bug")
    assert user_error(bug) is None
    excepthook(KeyError, bug, None)
    assert "KeyError: 'a bug'" in capsys.readouterr().err
    monkeypatch.setenv(TRACEBACK_VARIABLE, "1")
    excepthook(RuntimeError, wrapped, None)
    assert "RuntimeError: node failed" in capsys.readouterr().err


def test_a_pipeline_name_the_project_lacks_is_named_with_the_ones_it_has():
    from flops_fit.cli_errors import unknown_pipeline

    kedros = "An error occurred while importing the 'flops_fit.pipelines.{}' module."
    assert unknown_pipeline(ImportError(kedros.format("analyis"))) == (
        "--pipelines: no pipeline named 'analyis' (did you mean 'analysis'?); the pipelines are "
        "analysis, next_round, planning, reporting, training, validation. Nothing was run")
    assert unknown_pipeline(ImportError(kedros.format("analysis"))) is None  # a real failure
    assert unknown_pipeline(ImportError("No module named 'torch'")) is None


def test_misshapen_and_empty_parameter_files_name_the_file_and_key(conf):
    from flops_fit.parameters.sources import merge_conflicts

    assert merge_conflicts(conf, "base", "mock") == []
    _write(conf / "mock/parameters_analysis.yml", "analysis:\n  - 1\n")
    (problem,) = merge_conflicts(conf, "base", "mock")
    assert problem.startswith("analysis is a mapping in ")
    assert problem.endswith("conf/mock/parameters_analysis.yml: one of them is misshapen")
    _write(conf / "mock/parameters_analysis.yml", "- 1\n")
    (problem,) = merge_conflicts(conf, "base", "mock")
    assert problem.endswith("parameters_analysis.yml: expected a mapping of parameters at the "
                            "top level, got a list")
    _write(conf / "mock/parameters_analysis.yml", "analysis:\n")
    with pytest.raises(ParameterError, match=r"params:analysis in "
                       r"conf/mock/parameters_analysis.yml is empty: give it keys, or remove it"):
        _check(conf, "mock")

