"""Model plugins: N, the size search on the meta device, and IsoFLOP planning for any model."""

from __future__ import annotations

import math
import pickle
import re

import pytest
import torch

from flops_fit.parameters.planning import PlanningConfig
from flops_fit.parameters.plugins import ModelPluginParams
from flops_fit.pipelines.planning.nodes import plan_isoflop_sweep, summarise_data
from flops_fit.planning.shapes import ModelShape, ShapeFamily, non_embedding_params, total_params
from flops_fit.planning.sweep import StudyModel, plan_sweep
from flops_fit.plugins import PluginError
from flops_fit.plugins.models import BUILTIN_GPT, ModelPlugin, count_params
from flops_fit.plugins.sizing import (
    FactorySizes,
    FlopsPerUnit,
    GPTLadder,
    resolve_formula,
    sizer_for,
)

from . import toy_plugins
from .toy_plugins import HERE, IN_FEATURES, NUM_CLASSES, make_study, mlp_params, training_params


def _plugin(name: str = "mlp", lo: int = 1, hi: int = 256, multiple: int = 1,
            **kwargs) -> ModelPlugin:
    return ModelPlugin(HERE + name, "width", kwargs, lo, hi, multiple)


# ---- N ------------------------------------------------------------------------------------


@pytest.mark.parametrize("width, depth", [(1, 1), (7, 2), (32, 3)])
def test_n_of_a_plain_mlp_is_every_parameter(width, depth):
    model = toy_plugins.mlp(width, depth)
    assert count_params(model) == mlp_params(width, depth) == sum(
        p.numel() for p in model.parameters())


def test_n_leaves_out_embedding_tables():
    model = toy_plugins.WithEmbedding(width=16, vocab=50)
    assert count_params(model) == 16 * NUM_CLASSES + NUM_CLASSES  # the head only
    assert sum(p.numel() for p in model.parameters()) == count_params(model) + 2 * 50 * 16


def test_n_is_num_params_when_the_model_defines_it():
    assert count_params(toy_plugins.with_num_params(8)) == 12345
    assert _plugin("with_num_params").size_of(8) == 12345


def test_sizes_are_counted_on_the_meta_device():
    plugin = _plugin()
    model = plugin.build({"width": 4096}, device="meta")  # 16.8M parameters, no memory
    assert all(p.is_meta for p in model.parameters())
    assert plugin.size_of(4096) == mlp_params(4096)
    assert plugin.size_of(4096) == count_params(plugin.build({"width": 4096}))  # same on CPU


def test_a_factory_that_returns_no_module():
    with pytest.raises(PluginError) as err:
        _plugin("not_a_module").build({"width": 8})
    assert str(err.value) == (f"params:training.model.factory ({HERE}not_a_module): returned a "
                              "dict for width=8, not a torch.nn.Module")


def test_the_plugin_is_picklable_and_resolves_where_it_is_used():
    plugin = _plugin(depth=1)
    plugin.size_of(8)
    copy = pickle.loads(pickle.dumps(plugin))
    assert copy.factory() is toy_plugins.mlp
    assert count_params(copy.build(copy.kwargs_for(8))) == mlp_params(8, depth=1)


def test_the_built_in_gpt_keeps_its_exact_non_embedding_count():
    plugin = ModelPlugin.from_params(ModelPluginParams())
    assert plugin.builtin and plugin.factory_path == BUILTIN_GPT
    ladder = GPTLadder(ShapeFamily(), plugin)
    for target in (3e3, 5e4, 8e5):
        planned = ladder.model_for(target)
        shape = ModelShape(**planned.kwargs)
        model = plugin.build(planned.kwargs, device="meta")
        assert planned.model_size == count_params(model) == non_embedding_params(shape)
        assert sum(p.numel() for p in model.parameters()) == total_params(shape)
        assert planned.fields["size_param"] is None and planned.label == (
            f"d{shape.d_model}-L{shape.num_layers}")


# ---- the size parameter must set N ----------------------------------------------------------


def test_a_size_parameter_that_does_not_change_n():
    with pytest.raises(PluginError) as err:
        FactorySizes(_plugin("fixed_size", 1, 100))
    message = str(err.value)
    assert message.startswith(f"params:training.model.size_param ({HERE}fixed_size): ")
    assert "changing width from 1 to 100 does not change N (always 467)" in message
    assert "not the argument that sets the model's size" in message


def test_n_must_increase_with_the_size_parameter():
    with pytest.raises(PluginError) as err:
        FactorySizes(_plugin("shrinking", 1, 200))
    message = str(err.value)
    assert message.startswith(f"params:training.model.size_param ({HERE}shrinking): ")
    assert re.search(r"N does not increase with width: width=1 gives N=\d+ but width=\d+ gives "
                     r"N=\d+; it must make a larger model for a larger value", message)


def test_a_factory_that_raises_while_sizing():
    with pytest.raises(PluginError) as err:
        FactorySizes(_plugin("mlp_up_to_64", 1, 256))
    message = str(err.value)
    assert message.startswith(f"params:training.model.factory ({HERE}mlp_up_to_64): calling it "
                              "with width=")
    assert "raised ValueError: width" in message and "above the supported maximum 64" in message


def test_a_size_param_the_factory_does_not_take():
    with pytest.raises(PluginError) as err:
        FactorySizes(ModelPlugin(HERE + "mlp", "size", {}, 1, 64))
    message = str(err.value)
    assert message.startswith(f"params:training.model.size_param ({HERE}mlp): the factory "
                              "does not take 'size'")
    assert "unexpected keyword argument 'size'" in message


def test_a_kwargs_key_the_factory_does_not_take():
    with pytest.raises(PluginError) as err:
        FactorySizes(ModelPlugin(HERE + "mlp", "width", {"dept": 3}, 1, 64))
    assert str(err.value).startswith(f"params:training.model.kwargs ({HERE}mlp): the factory "
                                     "does not take 'dept'")


# ---- nearest in log space -----------------------------------------------------------------


@pytest.mark.parametrize("multiple", [1, 8])
@pytest.mark.parametrize("target", [50.0, 300.0, 1234.5, 4.0e4, 6.0e4, 1.0e7])
def test_sizing_picks_the_value_nearest_in_log_space(target, multiple):
    plugin = _plugin(lo=4, hi=256, multiple=multiple)
    value, n = plugin.nearest(target)
    candidates = [v for v in range(4, 257) if v % multiple == 0]
    best = min(candidates, key=lambda v: abs(math.log(mlp_params(v)) - math.log(target)))
    assert value == best and n == mlp_params(best)


def test_the_planned_model_records_kwargs_and_exact_n():
    sizes = FactorySizes(_plugin(depth=3))
    planned = sizes.model_for(2.0e4)
    width = planned.kwargs["width"]
    assert planned.kwargs == {"depth": 3, "width": width}
    assert planned.model_size == mlp_params(width, 3) == count_params(toy_plugins.mlp(width, 3))
    assert planned.fields["size_param"] == "width" and planned.fields["size_value"] == width
    assert planned.fields["embedding_params"] == 0
    assert planned.fields["total_params"] == planned.model_size
    assert planned.label == f"width{width}"


# ---- IsoFLOP planning with a plugin -------------------------------------------------------


def _cfg(**kw) -> PlanningConfig:
    return PlanningConfig.from_params({
        "compute_budgets": {"values": [1.0e9]},
        "model_sizes": {"num": 6, "centre": "fixed_range",
                        "fixed_range": {"min": 300.0, "max": 3000.0}},
        "batch_size": 8, **kw})


def _study_model(study, cfg: PlanningConfig, formula: str = "measured") -> StudyModel:
    """As plan_isoflop_sweep builds it."""
    sizer = sizer_for(study.model, cfg.model_family)
    probe = study.data.train_batch(0, 1, 0) if formula == "measured" else None
    flops = FlopsPerUnit(sizer, formula, probe, study.loss_fn() if probe else None,
                         int(study.data.units_per_example))
    return StudyModel(sizer, flops, formula, study.data.unit, int(study.data.units_per_example),
                      study.data.train_units)


def test_plan_sweep_for_a_plugin_model():
    cfg = _cfg()
    study = make_study(size={"min": 16, "max": 256, "multiple": 16})
    records, dropped = plan_sweep(cfg, None, _study_model(study, cfg))
    # widths 16, 32, 48 have N = 467, 1443, 2931: six targets from 300 to 3000 land on three
    assert [r["model_kwargs"] for r in records] == [{"width": 16}, {"width": 32}, {"width": 48}]
    assert len(dropped) == 3
    assert {d["reason"] for d in dropped} == {"same model as a neighbouring target"}
    for r in records:
        width = r["model_kwargs"]["width"]
        assert re.fullmatch(rf"C1e9-width{width}-[0-9a-f]{{8}}", r["experiment_id"])
        assert r["model_factory"] == HERE + "mlp"
        assert (r["size_param"], r["size_value"]) == ("width", width)
        assert r["model_size"] == mlp_params(width)
        assert (r["data_unit"], r["units_per_example"]) == ("examples", 1)
        assert r["d_model"] is None and r["embedding_params"] == 0
        assert r["num_tokens"] == r["num_steps"] * r["batch_size"]
        assert r["flops_formula"] == "measured"
        # torch's counter: forward + backward of every matmul, less the first layer's input
        # gradient (the inputs need none): 6·Σ(in·out) − 2·in₀·out₀ per example
        matmuls = IN_FEATURES * width + width * width + width * NUM_CLASSES
        assert r["flops_per_token"] == 6 * matmuls - 2 * IN_FEATURES * width > 0
        assert r["planned_flops"] == pytest.approx(1.0e9, rel=0.01)
    assert len({r["experiment_id"] for r in records}) == len(records)


def test_the_experiment_id_depends_on_every_kwarg():
    cfg = _cfg()
    ids = []
    for depth in (2, 3):
        study = make_study(kwargs={"depth": depth})
        records, _ = plan_sweep(cfg, None, _study_model(study, cfg))
        ids.append({r["experiment_id"] for r in records})
    assert not ids[0] & ids[1]


def test_the_gpt_plan_keeps_its_fields():
    cfg = PlanningConfig.from_params({"compute_budgets": {"values": [1.0e12]}})
    records, _ = plan_sweep(cfg)
    assert records
    for r in records:
        shape = ModelShape(**r["model_kwargs"])
        assert r["model_factory"] == BUILTIN_GPT and r["size_param"] is None
        assert r["model_size"] == non_embedding_params(shape)
        assert (r["data_unit"], r["units_per_example"]) == ("tokens", 128)
        assert r["flops_formula"] == "full"  # what auto means for the GPT
        assert re.fullmatch(rf"C1e12-d{shape.d_model}-L{shape.num_layers}-[0-9a-f]{{8}}",
                            r["experiment_id"])


def test_auto_is_measured_for_a_plugin_and_full_for_the_gpt():
    assert resolve_formula("auto", _plugin().builtin) == "measured"
    assert resolve_formula("auto", ModelPlugin.from_params(ModelPluginParams()).builtin) == "full"
    assert resolve_formula("6nd", _plugin().builtin) == "6nd"


# ---- the planning node ---------------------------------------------------------------------


def _plan_node(planning: dict, training: dict):
    summary = summarise_data(None, {}, training, planning, {})
    return plan_isoflop_sweep(planning["compute_budgets"]["values"], summary, None, planning,
                              training, {}, {})


PLANNING = {"compute_budgets": {"values": [1.0e9]}, "batch_size": 8,
            "model_sizes": {"num": 3, "centre": "fixed_range",
                            "fixed_range": {"min": 300.0, "max": 3000.0}}}


def test_full_with_a_plugin_model_names_planning_flops_formula():
    with pytest.raises(PluginError) as err:
        _plan_node({**PLANNING, "flops_formula": "full"}, training_params())
    message = str(err.value)
    assert message.startswith("params:planning.flops_formula: 'full' is the built-in GPT's "
                              "analytic count")
    assert f"a plugin model ({HERE}mlp) needs 'measured'" in message


@pytest.mark.parametrize("formula", ["auto", "measured", "6nd"])
def test_the_node_plans_a_plugin_model(formula):
    records, dropped = _plan_node({**PLANNING, "flops_formula": formula}, training_params())
    assert len(records) == 3 and not dropped
    expected = "measured" if formula == "auto" else formula
    assert {r["flops_formula"] for r in records} == {expected}
    for r in records:
        assert r["flops_per_token"] > 0
        if formula == "6nd":
            assert r["flops_per_token"] == 6 * r["model_size"]


def test_the_node_plans_on_arrays_with_their_epochs():
    planning = {**PLANNING, "compute_budgets": {"values": [2.0e7]},
                "model_sizes": {**PLANNING["model_sizes"],
                                "fixed_range": {"min": 300.0, "max": 1000.0}}}
    records, _ = _plan_node(planning, training_params(data="arrays",
                                                      data_kwargs={"n_train": 4096}))
    for r in records:
        assert r["corpus_epochs"] == pytest.approx(r["num_tokens"] / 4096)
        assert r["corpus_epochs"] <= r["max_epochs"] == 4


def test_measured_flops_on_a_tiny_batch_match_the_meta_count():
    """The probe batch is only shapes: counting on 1 row and on 4 rows agrees per example."""
    from flops_fit.nn.flop_count import training_flops_per_example
    from flops_fit.nn.losses import classification_cross_entropy

    source = toy_plugins.fresh()
    counts = [training_flops_per_example(lambda: toy_plugins.mlp(24), source.train_batch(0, b, 0),
                                         classification_cross_entropy) for b in (1, 4)]
    assert counts[0] == counts[1] > 0
    assert torch.get_default_device().type == "cpu"  # counting left the default device alone
