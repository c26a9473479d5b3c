"""The model, data and loss of one study, resolved from parameters and the catalog.

Planning and training build the same `Study`: planning to size the models and count their
FLOPs, training to ship it to every run. Only picklable values travel (the model's import path
and kwargs, the loss's import path, the data source); each worker resolves the imports itself.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from flops_fit.parameters.training import TrainingConfig
from flops_fit.plugins.data import DataSource, as_source
from flops_fit.plugins.imports import plugin_error, resolve_callable
from flops_fit.plugins.models import ModelPlugin
from flops_fit.schema import DEFAULT_LOSS_UNIT

LOSS_KEY = "training.loss"


@dataclass
class Study:
    model: ModelPlugin
    data: DataSource
    loss_path: str
    loss_key: str = LOSS_KEY  # where loss_path came from (the data's default when null)
    data_where: str = "the training_data catalog entry"  # where the data came from

    @property
    def loss_param(self) -> str:
        """The parameter key alone (loss_key may add why the data's default is used)."""
        return self.loss_key.split(" ")[0]

    def loss_fn(self):
        return resolve_callable(self.loss_path, self.loss_param)

    def loss_unit(self) -> str:
        """What the loss measures (its `unit`: "nats" for cross entropy, "mse", ...), or
        "loss" when it declares none; PluginError for a unit that is not a non-empty string."""
        return declared_loss_unit(self.loss_fn(), self.loss_param, self.loss_path)


def declared_loss_unit(loss_fn: Any, key: str = LOSS_KEY, path: str | None = None) -> str:
    """The `unit` attribute of a loss callable, trimmed; DEFAULT_LOSS_UNIT when it has none.

    The unit is named in the plan, the results, scaling_laws and the report's loss labels, so
    a mean squared error is never called nats."""
    unit = getattr(loss_fn, "unit", None)
    if unit is None:
        return DEFAULT_LOSS_UNIT
    if not isinstance(unit, str) or not unit.strip():
        raise plugin_error(key, path, f"the loss declares unit {unit!r}; it must be a non-empty "
                           "string naming what the loss measures (e.g. 'nats', 'mse'), or be "
                           "left out")
    return unit.strip()


def data_source(training_data: Any, training: TrainingConfig, corpus_params: Any = None,
                context_length: int | None = None, heldout_tokens: int | None = None
                ) -> DataSource:
    """The study's DataSource: from `params:training.data.factory`, else the `training_data`
    catalog entry (text is the built-in byte corpus, cut into windows of `context_length`)."""
    spec = training.data
    if spec.factory is not None:
        factory = resolve_callable(spec.factory, "training.data.factory")
        try:
            value = factory(**spec.kwargs)
        except Exception as exc:
            raise plugin_error("training.data.factory", spec.factory,
                               f"calling it with kwargs {dict(spec.kwargs)} raised "
                               f"{type(exc).__name__}: {exc}") from exc
        return as_source(value, f"params:training.data.factory ({spec.factory})", spec.unit)
    if isinstance(training_data, (str, bytes)):
        from flops_fit.data.corpus import prepare_corpus
        from flops_fit.data.text import ByteWindows

        if corpus_params is None or context_length is None or heldout_tokens is None:
            raise ValueError("the byte corpus needs params:corpus, the context length and "
                             "params:torch_backend.eval.heldout_tokens")
        return ByteWindows(prepare_corpus(training_data, corpus_params), int(context_length),
                           int(heldout_tokens))
    if training_data is None:
        raise plugin_error("training.data.factory", None,
                           "is null and the training_data catalog entry gave nothing: name a "
                           "data factory or declare training_data in the catalog")
    shown = type(training_data).__name__
    return as_source(training_data, f"the training_data catalog entry ({shown})", spec.unit)


def build_study(training_data: Any, training: TrainingConfig, *, umup: Any = None,
                corpus_params: Any = None, context_length: int | None = None,
                heldout_tokens: int | None = None) -> Study:
    source = data_source(training_data, training, corpus_params, context_length,
                         heldout_tokens)
    model = ModelPlugin.from_params(training.model, umup=umup)
    where = (f"params:training.data.factory ({training.data.factory})"
             if training.data.factory else
             f"the training_data catalog entry ({type(training_data).__name__})")
    if training.loss is not None:
        return Study(model, source, training.loss, LOSS_KEY, where)
    default = getattr(source, "default_loss", None)
    if not isinstance(default, str):
        raise plugin_error(LOSS_KEY, None, f"is null and the data source "
                           f"({type(source).__name__}) names no default_loss: give a loss")
    return Study(model, source, default, f"{LOSS_KEY} (null: the data's default_loss)", where)


def plan_context_length(records: list[Mapping[str, Any]]) -> int | None:
    """The window length the plan was made for (one per study), from its records."""
    lengths = {int(r["units_per_example"]) for r in records if r.get("units_per_example")}
    lengths |= {int(r["context_length"]) for r in records
                if r.get("context_length") and not r.get("units_per_example")}
    if len(lengths) > 1:
        raise ValueError(f"the sweep plan mixes context lengths {sorted(lengths)}; re-plan it")
    return lengths.pop() if lengths else None


def model_kwargs(record: Mapping[str, Any]) -> dict[str, Any]:
    """A plan record's model kwargs (a GPT plan from before they were recorded: its shape)."""
    if isinstance(record.get("model_kwargs"), Mapping):
        return dict(record["model_kwargs"])
    from flops_fit.planning.shapes import ModelShape

    return ModelShape.from_record(dict(record)).to_dict()
