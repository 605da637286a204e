"""The model registry (timm's ``_registry.py`` pattern): family files import :func:`register_model` from
here, and the package ``__init__`` re-exports it, so nothing imports back into ``dabench.models``.

The built-in family modules and the ``dabench.models`` entry-point plug-ins are imported on the first
registry lookup, never at import time.
"""
from __future__ import annotations

import sys
import warnings
from typing import Any, Callable

from dabench.errors import ConfigError
from dabench.models.contract import OUTPUT_SPACES, DataConfig, as_data_config
from dabench.registry import Registry

#: The built-in family modules (each registers its variants on import).
FAMILY_MODULES = ("dabench.models.depth_anything", "dabench.models.depth_anything_3", "dabench.models.baselines")
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
    MODELS.register(key, factory, family=family, source=source, output_space=output_space,
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
    return MODELS.meta(name).get("family") == "baseline"
