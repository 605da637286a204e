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
import warnings
from functools import lru_cache
from typing import Any, Callable

from dabench.errors import CheckpointError, ConfigError
from dabench.models.contract import OUTPUT_SPACES, DataConfig, as_data_config
from dabench.registry import Registry

#: The built-in family modules (each registers its variants on import).
FAMILY_MODULES = ("dabench.models.depth_anything", "dabench.models.baselines")
#: Entry-point group through which installed packages add models (``name = "pkg.module:factory"``).
ENTRY_POINT_GROUP = "dabench.models"
#: Where a model comes from (records name it): dabench's own, transformers, diffusers, user/plug-in.
MODEL_SOURCES = ("dabench", "hf", "diffusers", "plugin")


class _ModelRegistry(Registry):
    """The model registry: imports the family modules and the plug-ins on first use (not at import)."""

    def __init__(self, kind: str):
        super().__init__(kind)
        self._loaded = False

    def _ensure_loaded(self) -> None:
        if self._loaded:
            return
        self._loaded = True  # first: the family modules call register_model while they import
        import importlib

        for mod in FAMILY_MODULES:
            importlib.import_module(mod)
        _load_plugins(self)

    def get(self, name: str) -> Any:
        self._ensure_loaded()
        return super().get(name)

    def names(self) -> list[str]:
        self._ensure_loaded()
        return super().names()

    def __contains__(self, name: object) -> bool:
        self._ensure_loaded()
        return super().__contains__(name)

    def __len__(self) -> int:
        self._ensure_loaded()
        return super().__len__()


MODELS = _ModelRegistry("model")
HEADS = Registry("head")

# Metric heads are implemented by the fine-tuning code; registered lazily so nothing is imported here.
HEADS.register("metric_zoe", "dabench.finetune.metric_heads:build_metric_model")
HEADS.register("metric_simple", "dabench.finetune.metric_heads:build_metric_model")


def register_model(name: str | Callable | None = None, factory: Callable | None = None, *,
                   data_config: DataConfig | dict | None = None, output_space: str | None = None,
                   is_metric: bool | None = None, family: str | None = None, source: str | None = None,
                   description: str | None = None, test: bool = False, **meta: Any):
    """Register a model ``factory(**kwargs) -> nn.Module`` under ``name``; usable three ways::

        register_model("mynet", build_mynet, data_config=DataConfig(...), output_space="depth")
        @register_model                      # name = the function's name (timm's pattern)
        def mynet(**kwargs): ...
        @register_model(test=True)
        def mynet_tiny(**kwargs): ...

    Unset ``data_config``/``output_space``/``is_metric``/``family`` are read from the factory's module
    (``default_cfgs[name]``, ``OUTPUT_SPACE``, ``IS_METRIC``, ``FAMILY``), as timm reads ``_cfg``s.
    ``data_config`` may be None for a model that brings its own ``predict(images)``.
    ``source`` defaults to ``"dabench"`` for dabench's modules and ``"plugin"`` for anything else.
    """
    if callable(name) and factory is None:  # bare @register_model
        return register_model(None, name, data_config=data_config, output_space=output_space, is_metric=is_metric,
                              family=family, source=source, description=description, test=test, **meta)
    if factory is None:
        def deco(fn):
            register_model(name, fn, data_config=data_config, output_space=output_space, is_metric=is_metric,
                           family=family, source=source, description=description, test=test, **meta)
            return fn
        return deco
    if not callable(factory):
        raise ConfigError(f"register_model: the factory for {name!r} must be callable, got {type(factory).__name__}")
    key = name or getattr(factory, "__name__", None)
    if not key or not isinstance(key, str):
        raise ConfigError(f"register_model: cannot infer a model name for {factory!r}; pass one")
    if ":" in key or "/" in key or key.startswith("."):
        raise ConfigError(f"register_model: model names may not contain ':' or '/' (got {key!r}); "
                          "'hf:' and 'diffusers:' prefixes select those libraries")
    module = sys.modules.get(getattr(factory, "__module__", "") or "")
    cfgs = getattr(module, "default_cfgs", None) or {}
    data_config = as_data_config(data_config if data_config is not None else cfgs.get(key))
    output_space = output_space or getattr(module, "OUTPUT_SPACE", None) or getattr(factory, "output_space", None)
    if output_space not in OUTPUT_SPACES:
        raise ConfigError(f"register_model({key!r}): output_space must be one of {', '.join(OUTPUT_SPACES)}, "
                          f"got {output_space!r}")
    if is_metric is None:
        is_metric = bool(getattr(module, "IS_METRIC", getattr(factory, "is_metric", False)))
    family = family or getattr(module, "FAMILY", None) or key
    if source is None:
        source = "dabench" if str(getattr(factory, "__module__", "")).startswith("dabench.") else "plugin"
    if source not in MODEL_SOURCES:
        raise ConfigError(f"register_model({key!r}): source must be one of {', '.join(MODEL_SOURCES)}, got {source!r}")
    doc = (factory.__doc__ or "").strip().splitlines()
    description = description or (doc[0].rstrip(".") if doc else key)
    meta.setdefault("version", None)
    meta.setdefault("encoder", None)
    MODELS.register(key, factory, kind=family, family=family, source=source, output_space=output_space,
                    is_metric=bool(is_metric), data_config=data_config, description=description, test=bool(test),
                    **meta)
    return factory


def _load_plugins(registry: Registry) -> None:
    """Register the factories of the ``dabench.models`` entry points (a broken plug-in warns, never breaks dabench)."""
    from importlib.metadata import entry_points

    for ep in entry_points(group=ENTRY_POINT_GROUP):
        if ep.name in registry:  # (the registry is marked loaded before plug-ins are read: no recursion)
            if registry.meta(ep.name).get("source") != "plugin":  # never replaces one of dabench's own models
                warnings.warn(f"dabench model plug-in {ep.name!r} ({ep.value}) was not registered: dabench already "
                              f"has a model named {ep.name!r}", stacklevel=2)
            continue
        try:
            factory = ep.load()
        except (Exception, SystemExit) as e:  # noqa: BLE001 - third-party code: report it, keep the rest working
            warnings.warn(f"dabench model plug-in {ep.name!r} ({ep.value}) failed to load: {e}", stacklevel=2)
            continue
        if ep.name in registry:  # the plug-in's module registered it itself on import
            continue
        try:
            register_model(ep.name, factory, data_config=getattr(factory, "data_config", None),
                           output_space=getattr(factory, "output_space", None),
                           family=getattr(factory, "family", None), source="plugin")
        except ConfigError as e:
            warnings.warn(f"dabench model plug-in {ep.name!r} ({ep.value}) was not registered: {e.message}",
                          stacklevel=2)


def refresh_plugins() -> None:
    """Scan the ``dabench.models`` entry points again (e.g. after installing a plug-in into a running process)."""
    MODELS._ensure_loaded()
    _load_plugins(MODELS)


def list_models(include_test: bool = True) -> list[str]:
    """Registered model names (sorted); ``include_test=False`` hides the tiny test variants and baselines."""
    names = MODELS.names()
    if not include_test:
        names = [n for n in names if not MODELS.meta(n).get("test")]
    return names


def is_baseline(name: str) -> bool:
    return MODELS.meta(name).get("kind") == "baseline"


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
    sd = ckpt.read_state_dict(checkpoint)
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
    info: dict[str, Any] = {"name": name, "kind": meta["kind"], "family": meta["family"], "source": meta["source"],
                            "version": meta.get("version"), "encoder": meta.get("encoder"),
                            "output_space": meta["output_space"], "output": meta["output_space"],
                            "is_metric": meta["is_metric"], "description": meta["description"],
                            "test": meta["test"], "params": _param_count(name),
                            "data_config": cfg.as_dict() if cfg is not None else None}
    if meta["kind"] == "depth_anything":
        from dabench.models.depth_anything import CONFIGS, official_tap_indices

        cfg = CONFIGS[name]
        info.update(version=cfg.version, encoder=cfg.encoder, taps=list(official_tap_indices(name)),
                    features=cfg.features, out_channels=list(cfg.out_channels))
    return info


__all__ = ["MODELS", "HEADS", "DataConfig", "register_model", "refresh_plugins", "apply_contract", "create_model", "list_models", "model_info", "load_model_from_checkpoint",
           "save_checkpoint", "load_encoder_weights", "is_baseline"]
