"""Every plugin contract, checked on a probe batch when planning and training start, never
hours into a sweep. Each failure is a PluginError that names the parameter, the import path
and what was wrong:

  data   a training batch and the held-out set are dicts of tensors with `inputs` and
         `targets`; `train_batch` is a pure function of (step, batch_size, seed); `unit`,
         `units_per_example` and `train_units` are what the plan needs;
  model  the factory builds every planned size (on the meta device: no memory), and the
         smallest one runs on the probe batch;
  loss   takes the model's output and the batch and returns a finite scalar that can be
         differentiated; a `unit` it declares (what it measures) is a non-empty string.
(The size parameter must change N, and N must grow with it: `ModelPlugin.check_monotone`.)
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

from flops_fit.plugins.data import check_batch
from flops_fit.plugins.imports import PluginError, plugin_error
from flops_fit.plugins.study import Study

PROBE_ROWS = 4


def check_data(study: Study, batch_size: int, seed: int = 0) -> dict[str, Any]:
    """The probe batch, after checking the data source; raises PluginError."""
    import torch

    data, where = study.data, study.data_where

    def fail(problem: str) -> PluginError:
        return PluginError(f"{where}: {problem} (see docs/guides/bring-your-own-model.md)")

    unit = getattr(data, "unit", None)
    if not isinstance(unit, str) or not unit:
        raise fail(f"its DataSource has unit {unit!r}; it must name what D counts "
                   "('tokens' or 'examples')")
    per = getattr(data, "units_per_example", None)
    if isinstance(per, bool) or not isinstance(per, int) or per < 1:
        raise fail(f"units_per_example is {per!r}; it must be a positive integer")
    size = getattr(data, "train_units", None)
    if size is not None and (isinstance(size, bool) or not isinstance(size, int) or size < 1):
        raise fail(f"train_units is {size!r}; it must be a positive integer or None")
    rows = max(1, min(PROBE_ROWS, int(batch_size)))
    try:
        batch = data.train_batch(0, rows, seed)
        again = data.train_batch(0, rows, seed)
        heldout = data.heldout()
    except PluginError:
        raise
    except Exception as exc:
        raise fail(f"reading a probe batch raised {type(exc).__name__}: {exc}") from exc
    check_batch(batch, f"{where}: train_batch(0, {rows}, {seed})")
    check_batch(heldout, f"{where}: heldout()")
    if len(batch["inputs"]) != rows:
        raise fail(f"train_batch(0, {rows}, {seed}) returned {len(batch['inputs'])} "
                   f"examples, not {rows}")
    if not all(torch.equal(batch[k], again[k]) for k in batch):
        raise fail("train_batch(step, batch_size, seed) returned different batches for the "
                   "same arguments; it must be a pure function of them so that a resumed "
                   "run sees the same data")
    return batch


def check_loss_value(study: Study, loss: Any, what: str) -> float:
    import torch

    where = f"params:{study.loss_param} ({study.loss_path})"
    if not isinstance(loss, torch.Tensor):
        raise PluginError(f"{where}: returned a {type(loss).__name__} for {what}, "
                          "not a scalar torch.Tensor")
    if loss.numel() != 1:
        raise PluginError(f"{where}: returned a tensor of shape {tuple(loss.shape)} for "
                          f"{what}; it must be a scalar (reduce over the batch)")
    value = float(loss.detach().float())
    if not math.isfinite(value):
        raise PluginError(f"{where}: returned {value} for {what}; it must be finite")
    if not loss.requires_grad:
        raise PluginError(f"{where}: its value for {what} does not depend on the model's "
                          "parameters (no gradient)")
    return value


def check_model_on_batch(study: Study, kwargs: Mapping[str, Any], batch: dict[str, Any],
                         device: str | None = None) -> float:
    """Forward the batch through the model of `kwargs`, apply the loss, check the value."""
    loss_fn = study.loss_fn()
    model = study.model.build(dict(kwargs), device=device)
    if device == "meta":
        batch = {k: v.to("meta") for k, v in batch.items()}
    what = f"the model with {_shown(kwargs)}"
    try:
        outputs = model(batch["inputs"])
    except Exception as exc:
        raise plugin_error("training.model.factory", study.model.factory_path,
                           f"{what} raised {type(exc).__name__} on a batch of inputs of shape "
                           f"{tuple(batch['inputs'].shape)} ({batch['inputs'].dtype}) from "
                           f"{study.data_where}: {exc}") from exc
    try:
        loss = loss_fn(outputs, batch)
    except Exception as exc:
        shape = tuple(outputs.shape) if hasattr(outputs, "shape") else type(outputs).__name__
        raise PluginError(
            f"params:{study.loss_param} ({study.loss_path}): cannot take the "
            f"output of {what} (shape {shape}) with targets of shape "
            f"{tuple(batch['targets'].shape)}: {type(exc).__name__}: {exc}") from exc
    if device == "meta":
        return math.nan
    value = check_loss_value(study, loss, what)
    loss.backward()
    return value


def check_study(study: Study, model_kwargs: Sequence[Mapping[str, Any]], batch_size: int,
                seed: int = 0) -> dict[str, Any]:
    """All contracts for the planned models; returns a small report for logs and tests."""
    study.loss_unit()  # the import path resolves and any declared unit is a word
    batch = check_data(study, batch_size, seed)
    distinct = list({repr(sorted(k.items())): dict(k) for k in model_kwargs}.values())
    for kwargs in distinct:  # every planned size builds (meta: no memory)
        study.model.build(kwargs, device="meta")
    if not distinct:
        return {"models": 0}
    loss = check_model_on_batch(study, distinct[0], batch)
    if len(distinct) > 1:  # the largest one takes the batch too (shapes only)
        check_model_on_batch(study, distinct[-1], batch, device="meta")
    return {"models": len(distinct), "probe_loss": loss, "probe_rows": len(batch["inputs"])}


def check_plan(study: Study, plan: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """`check_study` for the models of a sweep plan, smallest first (planning and training)."""
    from flops_fit.plugins.study import model_kwargs

    ordered = sorted(plan, key=lambda r: float(r["model_size"]))
    if not ordered:
        return {"models": 0}
    return check_study(study, [model_kwargs(r) for r in ordered], int(ordered[0]["batch_size"]))


def _shown(kwargs: Mapping[str, Any]) -> str:
    text = ", ".join(f"{k}={v!r}" for k, v in kwargs.items() if k != "umup")
    return text if len(text) < 160 else text[:160] + "..."
