"""What a stored run was trained under, and whether the current configuration still trains that.

A result is only reusable while it is what the configuration would train now. The plan record
that every result stores already says which model, how many units of D, in which batches; what
it does not say — the backend's own settings, the data and its held-out set, the loss, the seed
rule — is `training_settings`: a small flat mapping, parameter key -> JSON value, computed here
(`training_settings`) and stored in every record the sweep writes. `setting_changes` is the one
comparison: selection uses it to find stale completed runs, and the run store uses it to let a
retrained result replace its stale file.

A record written before settings were stored holds only some of them: its plan fields, its
seed and what the backend reported (`peak_lr`) are compared; the rest are unknown, and
selection says how many such runs it could only partly check.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping, Sequence
from typing import Any

from flops_fit.jsonsafe import json_safe
from flops_fit.planning.shapes import SHAPE_FIELDS

#: the record field that holds the settings a run was trained under
SETTINGS_FIELD = "training_settings"

#: how a run's seed follows from params:training.seed (flops_fit.execution.tasks.run_seed);
#: a new rule must get a new name, so results seeded by the old one are seen as changed
SEED_RULE = "sha256(seed:experiment_id:replica) mod 2**32"

#: plan fields that decide what a run trains: the model, the amount of data and its batches
TRAINED_PLAN_FIELDS: tuple[str, ...] = (
    "model_factory",
    "model_kwargs",
    *SHAPE_FIELDS,
    "model_size",
    "num_tokens",
    "units_per_example",
    "batch_size",
    "num_steps",
    "max_epochs",
    "warmup_steps",  # a branch's: its trunk's (a run of its own plans none)
)
#: ... and, compared even where one side lacks them (a run of its own has none), whether it is
#: a branch and of which trunk: a branch's seed and first steps are its trunk's
BRANCH_PLAN_FIELDS: tuple[str, ...] = ("trunk_id", "branch_step")

#: per backend: its parameter section and the parts of it that change what is trained (how it
#: runs — device, precision, threads, checkpoints, injected failures — does not)
BACKEND_SETTINGS: dict[str, tuple[str, dict[str, Any]]] = {
    "synthetic": (
        "training.synthetic",
        {"E": True, "A": True, "B": True, "alpha": True, "beta": True, "noise_sigma": True},
    ),
    "torch": (
        "torch_backend",
        {"optimizer": True, "schedule": True, "umup": True, "eval": {"heldout_tokens"}},
    ),
}

#: what a record stored before `training_settings` existed reports of its settings
LEGACY_FIELDS: dict[str, str] = {"peak_lr": "torch_backend.optimizer.lr"}

#: settings added after records first stored theirs, with the value every record without the
#: key was trained under: such a record is compared as if it held that value
ADDED_SETTINGS: dict[str, Any] = {"torch_backend.schedule.kind": "cosine"}


class SettingsChangedError(ValueError):
    """Completed results were trained under other settings, and `on_changed_settings` is error."""


def _flat(prefix: str, value: Any, out: dict[str, Any]) -> None:
    if isinstance(value, Mapping) and value:
        for key, item in value.items():
            _flat(f"{prefix}.{key}", item, out)
    else:
        out[prefix] = value


def heldout_digest(heldout: Mapping[str, Any]) -> str:
    """A short sha256 of a held-out set's tensors (names, dtypes, shapes and bytes)."""
    digest = hashlib.sha256()
    for name in sorted(heldout):
        value = heldout[name]
        if hasattr(value, "detach"):  # a torch tensor: its raw bytes, whatever the dtype
            value = value.detach().cpu().contiguous()
            digest.update(f"{name}:{value.dtype}:{tuple(value.shape)}".encode())
            digest.update(value.reshape(-1).view(dtype=_uint8()).numpy().tobytes())
        else:
            import numpy as np

            array = np.ascontiguousarray(value)
            digest.update(f"{name}:{array.dtype}:{array.shape}".encode())
            digest.update(array.tobytes())
    return digest.hexdigest()[:16]


def _uint8():
    import torch

    return torch.uint8


def data_settings(data: Any) -> dict[str, Any]:
    """What identifies a study's data beyond its parameters: the source's class, the size of
    its training set and a digest of its held-out set (a catalog entry has no parameters here,
    so these are all there is to tell two of them apart)."""
    kind = type(data)
    return {
        "data.source": f"{kind.__module__}.{kind.__qualname__}",
        "data.unit": getattr(data, "unit", None),
        "data.train_units": getattr(data, "train_units", None),
        "data.heldout": heldout_digest(data.heldout()),
    }


def training_settings(
    config: Any, backend_params: Any, data: Any = None, loss: str | None = None
) -> dict[str, Any]:
    """The settings that define what a run of this configuration trains, beyond its plan record.

    `config` is the validated `params:training`, `backend_params` what the backend's
    `validate_params` returned; `data` and `loss` are the study's (backends that train on data).
    """
    settings: dict[str, Any] = {
        "training.backend": config.backend,
        "training.seed": config.seed,
        "seed_rule": SEED_RULE,
    }
    section, include = BACKEND_SETTINGS.get(config.backend, ("", None))
    if include is not None and hasattr(backend_params, "model_dump"):
        include = dict(include)
        if config.backend == "torch" and not config.model.builtin:
            include.pop("umup")  # u-μP shapes the built-in GPT only
        _flat(section, backend_params.model_dump(mode="json", include=include), settings)
    if data is not None:
        settings["training.data.factory"] = config.data.factory
        settings["training.data.kwargs"] = dict(config.data.kwargs)
        settings.update(data_settings(data))
    if loss is not None:
        settings["training.loss"] = loss
    return json_safe(settings)


def _same(old: Any, new: Any) -> bool:
    return json.dumps(json_safe(old), sort_keys=True) == json.dumps(json_safe(new), sort_keys=True)


def setting_changes(
    stored: Mapping[str, Any],
    plan_record: Mapping[str, Any],
    settings: Mapping[str, Any],
    seed: int,
) -> list[tuple[str, Any, Any]]:
    """(setting, stored value, current value) for every difference between what a stored record
    was trained under and what `plan_record` under `settings` with `seed` would train.

    Only what both sides hold is compared: a setting a record does not store is unknown, unless
    it was added later (`ADDED_SETTINGS`: the value the record was trained under).
    """
    changes = [
        (f"sweep_plan {key}", stored[key], plan_record[key])
        for key in TRAINED_PLAN_FIELDS
        if key in stored and key in plan_record and not _same(stored[key], plan_record[key])
    ] + [
        (f"sweep_plan {key}", stored.get(key), plan_record.get(key))
        for key in BRANCH_PLAN_FIELDS
        if not _same(stored.get(key), plan_record.get(key))
    ]
    old = stored.get(SETTINGS_FIELD)
    if isinstance(old, Mapping):
        old = {**{k: v for k, v in ADDED_SETTINGS.items() if k in settings}, **old}
        changes += [
            (key, old[key], value)
            for key, value in settings.items()
            if key in old and not _same(old[key], value)
        ]
    else:
        if "seed" in stored and not _same(stored["seed"], seed):
            changes.append(("the run's seed", stored["seed"], seed))
        changes += [
            (key, stored[field], settings[key])
            for field, key in LEGACY_FIELDS.items()
            if field in stored and key in settings and not _same(stored[field], settings[key])
        ]
    return changes


def _shown(value: Any) -> str:
    text = json.dumps(json_safe(value), sort_keys=True)
    return text if len(text) <= 80 else text[:77] + "..."


def describe_changes(changed: Sequence[tuple[str, list[tuple[str, Any, Any]]]]) -> list[str]:
    """One line per changed setting: `key: old → new (k runs)`, at most three value pairs."""
    pairs: dict[str, dict[tuple[str, str], int]] = {}
    for _, changes in changed:
        for key, old, new in changes:
            shown = pairs.setdefault(key, {})
            pair = (_shown(old), _shown(new))
            shown[pair] = shown.get(pair, 0) + 1
    lines = []
    for key, counts in pairs.items():
        items = list(counts.items())
        if len(items) <= 3:
            text = ", ".join(f"{old} → {new} ({_runs(n)})" for (old, new), n in items)
        else:  # a per-run value (a seed, a plan field): one example stands for them all
            (old, new), _ = items[0]
            text = f"{old} → {new} and {len(items) - 1} other values ({_runs(sum(counts.values()))})"
        lines.append(f"{key}: {text}")
    return lines


def _runs(n: int) -> str:
    return f"{n} run{'s' if n != 1 else ''}"


def settings_check_document(
    on_changed: str, completed: int, changed: Sequence[tuple[str, list[tuple[str, Any, Any]]]]
) -> dict[str, Any]:
    """What training found when it compared the completed runs with the configuration, and what
    it did (`params:training.on_changed_settings`): the `settings_check` the report reads."""
    return {
        "on_changed_settings": on_changed,
        "completed_runs": int(completed),
        "changed_runs": sorted(key for key, _ in changed),
        "differences": describe_changes(changed),
        "reused": on_changed == "reuse" and bool(changed),
    }


def changed_settings_message(
    changed: Sequence[tuple[str, list[tuple[str, Any, Any]]]], completed: int
) -> str:
    """The error that stops training when completed results no longer match the configuration."""
    lines = "\n".join(f"  {line}" for line in describe_changes(changed))
    return (
        f"{len(changed)} of {completed} completed run(s) were trained under other settings than "
        f"the configuration gives now:\n{lines}\n"
        "Their results no longer match the configuration. Nothing was trained. Either:\n"
        "  --params training.on_changed_settings=retrain   train them again (each old result is "
        "replaced when its new one is saved)\n"
        "  --params training.on_changed_settings=reuse     keep the old results (the log says so)\n"
        "  --params data_root=<another folder>             a new study beside this one"
    )
