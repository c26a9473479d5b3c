"""Every plugin contract, checked on a probe batch when planning and training start, never
hours into a sweep. Each failure is a PluginError that names the parameter, the import path
and what was wrong:

  data   a training batch and the held-out set are dicts of tensors with `inputs` and
         `targets`, finite, the held-out examples of the same shapes and dtypes as the
         training ones and at least one of them; `train_batch` is a pure function of (step,
         batch_size, seed); `unit`, `units_per_example` and `train_units` are what the plan
         needs;
  model  the factory builds every planned size (on the meta device: no memory), and the
         smallest one runs on the probe batch;
  loss   takes the model's output and the batch and returns a finite floating-point scalar
         that can be differentiated, on a training batch and on held-out examples (as the
         evaluation runs it); a one-element tensor of another shape, e.g. (1,), is squeezed
         with one warning; a `unit` it declares (what it measures) is a non-empty string.
(The size parameter must change N, and N must grow with it: `ModelPlugin.check_monotone`.)
"""

from __future__ import annotations

import logging
import math
from collections.abc import Mapping, Sequence
from typing import Any

from flops_fit.plugins.data import check_batch
from flops_fit.plugins.imports import PluginError, plugin_error
from flops_fit.plugins.study import Study

log = logging.getLogger(__name__)

PROBE_ROWS = 4
_SQUEEZE_WARNED: set[str] = set()  # losses already warned about: planning probes them twice


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
    bad = _non_finite(batch)  # before the purity check: NaN is never equal to itself
    if bad:
        raise fail(f"train_batch(0, {rows}, {seed}){bad}; training batches must be finite")
    if not all(torch.equal(batch[k], again[k]) for k in batch):
        raise fail("train_batch(step, batch_size, seed) returned different batches for the "
                   "same arguments; it must be a pure function of them so that a resumed "
                   "run sees the same data")
    bad = _non_finite(heldout)
    if bad:
        raise fail(f"heldout(){bad}; the held-out set must be finite, or every run's "
                   "held-out loss is NaN and no run can be fitted")
    for name in (k for k in batch if k in heldout):
        a, b = batch[name], heldout[name]
        if a.shape[1:] != b.shape[1:] or a.dtype != b.dtype:
            raise fail(f"heldout()[{name!r}] holds examples of shape {tuple(b.shape[1:])} "
                       f"({b.dtype}) where train_batch gives {tuple(a.shape[1:])} ({a.dtype}); "
                       "the held-out examples must look like the training ones")
    return batch


def _non_finite(batch: Mapping[str, Any]) -> str | None:
    """Where a batch holds NaN or infinite values, as `['name'] holds ...`; None if nowhere."""
    import torch

    for name, value in batch.items():
        if value.is_floating_point() or value.is_complex():
            nan = int(torch.isnan(value).sum())
            inf = int(torch.isinf(value).sum())
            if nan or inf:
                what = " and ".join(f"{n} {kind}" for n, kind in ((nan, "NaN"), (inf, "inf")) if n)
                return f"[{name!r}] holds {what} (of {value.numel()} values)"
    return None


def check_loss_value(study: Study, loss: Any, what: str, needs_grad: bool = True) -> float:
    import torch

    where = f"params:{study.loss_param} ({study.loss_path})"
    if not isinstance(loss, torch.Tensor):
        raise PluginError(f"{where}: returned a {type(loss).__name__} for {what}, "
                          "not a scalar torch.Tensor")
    if not loss.is_floating_point():
        kind = ("a boolean" if loss.dtype == torch.bool else
                "a complex" if loss.is_complex() else "an integer")
        raise PluginError(f"{where}: returned {kind} tensor ({loss.dtype}) for {what}; a loss "
                          "must be a floating-point tensor (nothing can be differentiated "
                          "through a count, a rounding or an argmax)")
    if loss.numel() != 1:
        raise PluginError(f"{where}: returned a tensor of shape {tuple(loss.shape)} for "
                          f"{what}; it must be a scalar (reduce over the batch)")
    if loss.dim() and study.loss_path not in _SQUEEZE_WARNED:
        # One element is one number: training squeezes it to shape () rather than fail.
        _SQUEEZE_WARNED.add(study.loss_path)
        log.warning("%s: returned a one-element tensor of shape %s for %s, not a scalar of "
                    "shape (); it is squeezed to a scalar here and in training (return "
                    "loss.squeeze() or reduce with .mean() to silence this)", where,
                    tuple(loss.shape), what)
    value = float(loss.detach().float().reshape(()))
    if not math.isfinite(value):
        raise PluginError(f"{where}: returned {value} for {what}; it must be finite")
    if needs_grad and not loss.requires_grad:
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
    loss = _model_then_loss(study, model, loss_fn, batch, what, "a batch of inputs", " with")
    if device == "meta":
        return math.nan
    value = check_loss_value(study, loss, what)
    loss.backward()
    check_heldout_on_model(study, model, loss_fn, what, len(batch["inputs"]))
    return value


def _model_then_loss(study: Study, model: Any, loss_fn: Any, batch: dict[str, Any], what: str,
                     inputs_are: str, targets_join: str) -> Any:
    """The model's output on `batch` and the loss of it, each failure a PluginError naming the
    factory or the loss and the shapes involved."""
    inputs = batch["inputs"]
    try:
        outputs = model(inputs)
    except Exception as exc:
        raise plugin_error("training.model.factory", study.model.factory_path,
                           f"{what} raised {type(exc).__name__} on {inputs_are} of shape "
                           f"{tuple(inputs.shape)} ({inputs.dtype}) from {study.data_where}: "
                           f"{exc}") from exc
    try:
        return loss_fn(outputs, batch)
    except Exception as exc:
        shape = tuple(outputs.shape) if hasattr(outputs, "shape") else type(outputs).__name__
        raise PluginError(
            f"params:{study.loss_param} ({study.loss_path}): cannot take the output of {what} "
            f"(shape {shape}){targets_join} targets of shape {tuple(batch['targets'].shape)}: "
            f"{type(exc).__name__}: {exc}") from exc


def check_heldout_on_model(study: Study, model: Any, loss_fn: Any, what: str,
                           rows: int = PROBE_ROWS) -> float:
    """The model and the loss on the first held-out examples, as the evaluation runs them
    (eval mode, no gradient): a held-out set only read after training must fail here."""
    import torch

    chunk = {k: v[:rows] for k, v in study.data.heldout().items()}
    inputs = chunk["inputs"]
    on = f"{len(inputs)} held-out example(s) of {study.data_where}"
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            loss = _model_then_loss(study, model, loss_fn, chunk, what, "held-out inputs",
                                    f" on {on},")
    finally:
        model.train(was_training)
    return check_loss_value(study, loss, f"{what} on {on}", needs_grad=False)


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
