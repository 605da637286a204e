"""dabench's model zoo and the model contract: Depth Anything V1/V2 (timm DINOv2 + DPT), weight-free
baselines, Hugging Face ``hf:`` and ``diffusers:`` models, and models registered by users or plug-ins.

    from dabench.models import create_model, list_models, model_info
    model = create_model("da2_vits14", checkpoint="depth_anything_v2_vits.pth").eval()
    disparity = model(x)  # x: B×3×h×w preprocessed as model.data_config says -> B×h×w

Every model satisfies one contract (``dabench.models.contract``): ``forward(x)``, ``output_space``,
``is_metric``, ``data_config`` (or its own ``predict(images)``). Families register their builders with
``@register_model`` beside their ``_cfg`` data configs (timm's pattern); the family modules are imported
on the first registry lookup, and installed packages add models through the ``dabench.models``
entry-point group. ``HEADS`` maps non-relative head names (metric heads from fine-tuning) to builders
``builder(arch: str, config: dict) -> nn.Module``; checkpoints written by :func:`save_checkpoint`
name their head, and :func:`load_model_from_checkpoint` rebuilds the right module.
"""
from __future__ import annotations

import os
import sys
from functools import lru_cache
from typing import Any

from dabench.errors import CheckpointError, ConfigError
from dabench.models._registry import (ENTRY_POINT_GROUP, FAMILY_MODULES, HEADS, MODEL_SOURCES, MODELS,
                                      is_baseline, list_models, refresh_plugins, register_model)
from dabench.models.contract import DataConfig


def apply_contract(model, name: str, source: str | None = None):
    """Give a freshly built ``model`` the contract attributes its registration declares (when it does not
    set them itself): ``arch``, ``source``, ``family``, ``output_space``, ``is_metric``, ``data_config``."""
    meta = MODELS.meta(name)
    model.arch = name
    model.source = source or meta["source"]
    model.family = meta["family"]
    for attr in ("output_space", "is_metric", "data_config"):
        if getattr(model, attr, None) is None and meta.get(attr) is not None:
            setattr(model, attr, meta[attr])
    return model


def create_model(name: str, checkpoint: str | os.PathLike | None = None, **kwargs: Any):
    """Build model ``name``; with ``checkpoint`` load its weights strictly.

    ``checkpoint``: an official ``.pth``, a ``.safetensors`` (dabench's, or a transformers-format
    Depth Anything ``model.safetensors``) or a transformers snapshot folder holding one; transformers
    key names are converted to the official layout. A dabench safetensors file whose ``dabench.head``
    is not ``"relative"`` is built through ``HEADS`` (e.g. a metric-depth model) and must name the same
    ``dabench.arch``. Without a checkpoint the weights are random (baselines have none).
    """
    MODELS.check(name)
    if checkpoint is None:
        model = apply_contract(MODELS.get(name)(**kwargs), name)
        model.checkpoint_path = None
        return model
    from dabench.models import checkpoint as ckpt

    if is_baseline(name):
        raise ConfigError(f"model {name!r} is a weight-free baseline; it takes no checkpoint (got {checkpoint})")
    checkpoint = ckpt.weights_file(checkpoint)
    meta = ckpt.read_metadata(checkpoint)
    arch = meta.get(ckpt.META_ARCH)
    if arch is not None and arch != name:
        raise CheckpointError(f"checkpoint {checkpoint} was written for {arch!r}, not {name!r}; "
                              f"use --model {arch} (or load_model_from_checkpoint)")
    head = meta.get(ckpt.META_HEAD, ckpt.RELATIVE_HEAD)
    if head == ckpt.RELATIVE_HEAD:
        model = MODELS.get(name)(**kwargs)
    else:
        builder = HEADS.get(head)
        model = builder(name, ckpt.checkpoint_config(meta, checkpoint))
    apply_contract(model, name)
    sd = ckpt.read_state_dict(checkpoint, fits=model, arch=name)  # header checked against the model first
    ckpt.load_state_dict_strict(model, sd, checkpoint, arch=name)
    model.checkpoint_path = str(checkpoint)
    if meta.get(ckpt.META_INPUT_SIZE):
        model.input_size = ckpt.metadata_input_size(meta, checkpoint)
        if isinstance(getattr(model, "data_config", None), DataConfig):
            model.data_config = model.data_config.replace(input_size=model.input_size)
    return model


def load_model_from_checkpoint(path: str | os.PathLike):
    """Rebuild a model from a dabench safetensors file (its metadata names the arch and head)."""
    from dabench.models import checkpoint as ckpt

    meta = ckpt.read_metadata(path)
    arch = meta.get(ckpt.META_ARCH)
    if not arch:
        raise CheckpointError(f"checkpoint {path} has no {ckpt.META_ARCH} metadata (official .pth files do not "
                              "say which model they belong to); use create_model(NAME, checkpoint=path)")
    if arch not in MODELS:
        raise CheckpointError(f"checkpoint {path} names unknown model {arch!r}; known: {', '.join(MODELS.names())}")
    return create_model(arch, checkpoint=path)


def save_checkpoint(model, path: str | os.PathLike, arch: str, head: str = "relative", config: dict | None = None,
                    extra_metadata: dict | None = None):
    """Write ``model`` as safetensors with ``dabench.arch``/``dabench.head``/``dabench.config`` metadata (atomic)."""
    from dabench.models.checkpoint import save_checkpoint as _save

    return _save(model, path, arch, head=head, config=config, extra_metadata=extra_metadata)


def load_encoder_weights(model, path: str | os.PathLike) -> None:
    """Load DINOv2 / timm / Depth Anything encoder weights into ``model.pretrained`` (see
    ``dabench.models.checkpoint.load_encoder_weights``); the decoder is left as it is."""
    from dabench.models.checkpoint import load_encoder_weights as _load

    _load(model, path)


@lru_cache(maxsize=None)
def _param_count(name: str) -> int | None:
    import torch

    if is_baseline(name):
        return 0
    try:
        with torch.device("meta"):  # no memory, no init cost: ViT-G builds instantly
            model = MODELS.get(name)()
    except Exception:  # noqa: BLE001 - a plug-in that cannot build on the meta device: count unknown
        return None
    return int(sum(p.numel() for p in model.parameters()))


def model_info(name: str) -> dict[str, Any]:
    """Facts about a registered model: ``family``, ``source``, ``output_space``, ``is_metric``, ``params``
    (int, None when unknown), ``data_config`` (dict or None), ``encoder``, ``version``, ..."""
    meta = dict(MODELS.meta(name))
    cfg = meta.get("data_config")
    info: dict[str, Any] = {"name": name, "family": meta["family"], "source": meta["source"],
                            "version": meta.get("version"), "encoder": meta.get("encoder"),
                            "output_space": meta["output_space"],
                            "is_metric": meta["is_metric"], "description": meta["description"],
                            "test": meta["test"], "params": _param_count(name),
                            "data_config": cfg.as_dict() if cfg is not None else None}
    # a family file may describe its variants further (``family_info(name) -> dict``, e.g. taps, widths)
    family_info = getattr(sys.modules.get(getattr(MODELS.get(name), "__module__", "")), "family_info", None)
    if callable(family_info):
        info.update(family_info(name))
    return info


__all__ = ["MODELS", "HEADS", "DataConfig", "register_model", "refresh_plugins", "apply_contract", "create_model", "list_models", "model_info", "load_model_from_checkpoint",
           "save_checkpoint", "load_encoder_weights", "is_baseline"]
