"""Training configs: mmengine ``Config`` files composed through ``_base_``, validated against one
schema so an unknown key or a wrong type fails before anything runs, naming the key.

Presets live in ``dabench/configs/train/<preset>.py`` (``-`` in a preset name reads as ``_``):
``tiny`` (CPU minutes, synthetic world, ``da2_test``), ``tiny-ll`` / ``tiny-lu`` / ``tiny-strong``
(the Table 9 ablation rows; ``tiny`` is the full "+L_feat" row), ``paper`` (ViT-L at 518),
``paper-vitb``, ``paper-vits``. ``--config FILE`` may ``_base_`` on any of them; ``--set
key=value`` overrides single keys (``--set student.feat_alpha=0.7``).
"""
from __future__ import annotations

import copy
import json
import os
from pathlib import Path
from typing import Any, Mapping, Sequence

from dabench.errors import ConfigError, MissingFileError, excerpt

#: data keys that set how batches are made, not what they are
LOADER_KEYS = ("num_workers", "prefetch_factor")

# ---------------------------------------------------------------- schema
# A spec is: a type, a tuple of allowed types (None = may be null), a dict (nested section),
# a one-element list [spec] (list of items), or Pair(type) (two numbers).


class Pair:
    def __init__(self, typ):
        self.typ = typ


NUM = (int, float)
DATASET_SPEC = {"name": str, "split": (str, None), "limit": (int, None), "kwargs": dict,
                "follow_symlinks": (bool, None)}  # folder:/list: sources: read symlinks leading outside
PERTURB = {
    "brightness": NUM, "contrast": NUM, "saturation": NUM, "hue": NUM, "jitter_p": NUM, "grayscale_p": NUM,
    "blur_p": NUM, "blur_sigma": Pair(NUM), "cutmix_p": NUM, "cutmix_area": Pair(NUM), "cutmix_ratio": Pair(NUM),
}
OPTIM = {
    "steps": int, "lr": NUM, "head_lr_mult": NUM, "weight_decay": NUM, "schedule": str, "warmup_steps": int,
    "grad_clip": (int, float, None),
}
SCHEMA: dict[str, Any] = {
    "preset": (str, None),
    "run_name": (str, None),
    "seed": int,
    "model": {"arch": str, "encoder_weights": (str, None), "init_seed": int},
    "data": {"labelled": [DATASET_SPEC], "unlabelled": [DATASET_SPEC], "data_root": (str, None),
             "crop_size": int, "flip": bool, "flip_unlabelled": bool, "cache": bool,
             "num_workers": (int, None), "prefetch_factor": int},
    "teacher": {**OPTIM, "batch_size": int},
    "pseudo_label": {"batch_size": int, "shard_size": int, "input_size": (int, None)},
    "student": {**OPTIM, "batch_size": int, "unlabelled_ratio": int, "use_unlabelled": bool,
                "strong_perturb": bool, "feat_align": bool, "feat_alpha": NUM,
                "frozen_encoder_weights": (str, None), "perturb": PERTURB},
    "runtime": {"checkpoint_every": int, "keep_checkpoints": int, "log_every": int, "amp": str,
                "device": (str, None), "progress": bool, "tensorboard": bool},
    "evaluation": {"datasets": [DATASET_SPEC], "input_size": (int, None), "batch_size": int},
}

_CHOICES = {
    "runtime.amp": ("auto", "bf16", "none"),
    "teacher.schedule": ("linear", "poly", "cosine", "constant"),
    "student.schedule": ("linear", "poly", "cosine", "constant"),
}


def _typename(spec) -> str:
    if isinstance(spec, tuple):
        return " or ".join("null" if t is None else t.__name__ for t in spec)
    if isinstance(spec, Pair):
        return f"pair of {_typename(spec.typ)}"
    if isinstance(spec, dict):
        return "dict"
    if isinstance(spec, list):
        return "list"
    return spec.__name__


def _type_ok(value, spec) -> bool:
    types = spec if isinstance(spec, tuple) else (spec,)
    for t in types:
        if t is None and value is None:
            return True
        if t is None:
            continue
        if isinstance(value, bool) and t is not bool:
            continue  # True is an int in Python, never a number here
        if t is float and isinstance(value, int) and not isinstance(value, bool):
            return True
        if isinstance(value, t):
            return True
    return False


def _validate(value: Any, spec: Any, key: str) -> None:
    if isinstance(spec, dict):
        if not isinstance(value, Mapping):
            raise ConfigError(f"config key {excerpt(key)} must be a dict, got {type(value).__name__} {excerpt(value)}")
        for k in value:
            if k not in spec:
                raise ConfigError(f"unknown config key {excerpt((key + '.' if key else '') + str(k))}; "
                                  f"valid keys{' in ' + repr(key) if key else ''}: {', '.join(sorted(spec))}")
        for k, sub in spec.items():
            full = f"{key}.{k}" if key else k
            if k not in value:
                raise ConfigError(f"config key {excerpt(full)} is missing")
            _validate(value[k], sub, full)
        return
    if isinstance(spec, list):
        if not isinstance(value, (list, tuple)):
            raise ConfigError(f"config key {excerpt(key)} must be a list, got {type(value).__name__} {excerpt(value)}")
        for i, item in enumerate(value):
            item_spec = spec[0]
            if isinstance(item_spec, dict) and isinstance(item, Mapping):
                item = {**{k: None for k in ("split", "limit", "follow_symlinks")}, "kwargs": {}, **item}
            _validate(item, item_spec, f"{key}[{i}]")
        return
    if isinstance(spec, Pair):
        if not (isinstance(value, (list, tuple)) and len(value) == 2 and all(_type_ok(v, spec.typ) for v in value)):
            raise ConfigError(f"config key {excerpt(key)} must be a pair of numbers, got {excerpt(value)}")
        return
    if not _type_ok(value, spec):
        raise ConfigError(f"config key {excerpt(key)} must be {_typename(spec)}, got {type(value).__name__} {excerpt(value)}")
    if key in _CHOICES and value not in _CHOICES[key]:
        raise ConfigError(f"config key {excerpt(key)} must be one of {', '.join(_CHOICES[key])}, got {excerpt(value)}")


def normalise_dataset_specs(specs: Sequence[Mapping]) -> list[dict]:
    return [{"name": s["name"], "split": s.get("split"), "limit": s.get("limit"), "kwargs": dict(s.get("kwargs") or {}),
             **({"follow_symlinks": True} if s.get("follow_symlinks") else {})}  # absent by default: fingerprints unchanged
            for s in specs]


def validate(cfg: Mapping) -> dict:
    """Check ``cfg`` against ``SCHEMA`` (unknown key / wrong type / missing key -> ``ConfigError``
    naming it) and return it as a plain dict with dataset specs filled in."""
    d = copy.deepcopy(dict(cfg))
    _validate(d, SCHEMA, "")
    for sec, key in (("data", "labelled"), ("data", "unlabelled"), ("evaluation", "datasets")):
        d[sec][key] = normalise_dataset_specs(d[sec][key])
    for stage in ("teacher", "student"):
        for k in ("steps", "batch_size"):
            if d[stage][k] < 1:
                raise ConfigError(f"config key '{stage}.{k}' must be >= 1, got {d[stage][k]}")
    if d["student"]["unlabelled_ratio"] < 0:
        raise ConfigError("config key 'student.unlabelled_ratio' must be >= 0")
    from dabench.models.depth_anything import default_data_config

    multiple = default_data_config().multiple_of  # the Depth Anything data config's (the patch size)
    if d["data"]["crop_size"] % multiple:
        raise ConfigError(f"config key 'data.crop_size' must be a multiple of {multiple} (the patch size), got "
                          f"{d['data']['crop_size']}")
    if d["data"]["num_workers"] is not None and d["data"]["num_workers"] < 0:
        raise ConfigError("config key 'data.num_workers' must be >= 0 or null (automatic), got "
                          f"{d['data']['num_workers']}")
    if d["data"]["prefetch_factor"] < 1:
        raise ConfigError(f"config key 'data.prefetch_factor' must be >= 1, got {d['data']['prefetch_factor']}")
    if not 0 <= d["student"]["feat_alpha"] <= 1:
        raise ConfigError(f"config key 'student.feat_alpha' must be in [0, 1], got {d['student']['feat_alpha']}")
    return d


# ---------------------------------------------------------------- loading
def preset_names() -> list[str]:
    """Training presets, shipped (``dabench/configs/train``) and from ``$DABENCH_CONFIG_PATH``."""
    from dabench import configs

    return sorted(n.replace("_", "-") for n in configs.names("train"))


def preset_path(name: str) -> Path:
    from dabench import configs

    p = None if name.startswith("_") else configs.find("train", name.replace("-", "_"))
    if p is None:
        raise ConfigError(f"unknown preset {excerpt(name)}; valid presets: {', '.join(preset_names())}")
    return p


def parse_overrides(items: Sequence[str] | None) -> dict[str, Any]:
    """``--set key=value`` items -> ``{"key": value}``, parsed as ``--cfg-option`` is
    (``dabench.overrides``: JSON, then mmengine's ``DictAction``)."""
    from dabench.overrides import parse_cfg_options

    return parse_cfg_options(items, flag="--set", example="student.feat_alpha=0.7")


def _check_override_keys(overrides: Mapping[str, Any]) -> None:
    for key in overrides:
        spec: Any = SCHEMA
        parts = key.split(".")
        for i, part in enumerate(parts):
            if not isinstance(spec, dict) or part not in spec:
                where = ".".join(parts[:i]) or "the top level"
                valid = ", ".join(sorted(spec)) if isinstance(spec, dict) else "(not a section)"
                raise ConfigError(f"unknown config key {excerpt(key)} in --set ({excerpt(part)} is not in {where}; valid: {valid})")
            spec = spec[part]


def load_config(config: str | os.PathLike | None = None, preset: str | None = None,
                overrides: Mapping[str, Any] | None = None) -> dict:
    """Compose a training config: a config file (which may ``_base_`` on presets), else a preset
    (default ``tiny``), then ``overrides`` (``{"student.feat_alpha": 0.7}``); validated."""
    from mmengine.config import Config

    from dabench.safety import load_config_file

    if config is not None and preset is not None:
        raise ConfigError("give either --config or --preset, not both (a config file can _base_ on a preset)")
    if config is not None:
        path = Path(config)
        if not path.is_file():
            raise MissingFileError(f"config file {path} does not exist")
    else:
        preset = preset or "tiny"
        path = preset_path(preset)
    try:
        cfg = load_config_file(path)
    except ConfigError:
        raise
    except Exception as e:  # noqa: BLE001 - mmengine raises many types for a bad file
        raise ConfigError(f"cannot read config {path}: {e}") from e
    d = cfg.to_dict()
    if preset is not None and d.get("preset") is None:
        d["preset"] = preset
    if overrides:
        _check_override_keys(overrides)
        c = Config(d)
        c.merge_from_dict(dict(overrides))
        d = c.to_dict()
    return validate(d)


def dump_config(cfg: Mapping, path: str | os.PathLike) -> None:
    """Write ``cfg`` as an mmengine-readable ``.py`` config (atomic)."""
    from mmengine.config import Config

    from dabench.provenance import atomic_write_text

    atomic_write_text(path, Config(dict(cfg)).pretty_text)


def stage_fingerprint(cfg: Mapping, stage: str) -> dict:
    """What a resume of ``stage`` must match: the model and the settings that shape its training
    (not checkpoint/log cadence or progress display)."""
    # how batches are produced (worker count, prefetch) does not change them: not part of a resume's match
    data = {k: v for k, v in cfg["data"].items() if k not in LOADER_KEYS}
    fp = {"model": cfg["model"], "seed": cfg["seed"], "data": data}
    if stage == "teacher":
        fp["teacher"] = cfg["teacher"]
    elif stage == "student":
        fp["student"] = cfg["student"]
    return json.loads(json.dumps(fp, default=str))
