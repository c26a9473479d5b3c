import pytest

from flops_fit.parameter_keys import ParameterKeyError, check_parameter_keys


def _write(path, text):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)


@pytest.fixture
def conf(tmp_path):
    _write(tmp_path / "base/parameters_planning.yml",
           "planning:\n  batch_size: 32\n  model_sizes: {num: 6}\n  columns: {}\n")
    _write(tmp_path / "base/catalog.yml",
           "plan:\n  type: json.JSONDataset\n"
           "  filepath: ${runtime_params:data_root,data}/plan.json\n")
    return tmp_path


def test_known_override_passes(conf):
    _write(conf / "mock/parameters_planning.yml", "planning:\n  model_sizes: {num: 9}\n")
    check_parameter_keys(conf, "base", "mock", {"planning.batch_size": 8, "data_root": "/x"})


def test_unknown_key_names_key_and_file(conf):
    _write(conf / "mock/parameters_planning.yml", "planning:\n  model_sizes: {nmu: 9}\n")
    with pytest.raises(ParameterKeyError) as err:
        check_parameter_keys(conf, "base", "mock")
    assert "planning.model_sizes.nmu" in str(err.value)
    assert "mock/parameters_planning.yml" in str(err.value)
    assert "did you mean 'planning.model_sizes.num'" in str(err.value)


def test_unknown_runtime_param(conf):
    with pytest.raises(ParameterKeyError, match="planning.batchsize' given with --params"):
        check_parameter_keys(conf, "base", "local", {"planning": {"batchsize": 3}})


def test_open_mappings_accept_any_key(conf):
    _write(conf / "imported/parameters.yml", "planning:\n  columns: {model_size: Model Size}\n")
    check_parameter_keys(conf, "base", "imported")


def test_invalid_yaml_names_file(conf):
    _write(conf / "mock/parameters_bad.yml", "planning: [unclosed\n")
    with pytest.raises(ParameterKeyError, match="parameters_bad.yml: not valid YAML"):
        check_parameter_keys(conf, "base", "mock")


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
    with pytest.raises(ParameterKeyError) as err:
        check_parameter_keys(conf, "base", "local", params)
    assert message in str(err.value)
    assert "'planing'" not in str(err.value)  # the leaf is named, not its parent too
