"""A cached index of ``dabench.models.model_info`` for every registered model, so that ``dabench ls models`` starts
without importing torch, timm and every family file (seconds) when nothing changed since the last listing.

The index lives in ``<dabench cache>/model_index-<key>.json``; ``key`` hashes what the listing depends on:
dabench's version, the name, size and modification time of every file of ``dabench/models`` (the family
files, the registry, the architectures parameter counts come from) and the ``dabench.models`` entry points
with their distributions' versions (plug-ins). Any change gives a new key, and the listing is rebuilt from
the registry (and written again, atomically). A damaged or foreign file is rebuilt over, never trusted.
"""
from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

INDEX_FORMAT = "dabench.model_index/1"
#: ``dabench.models._registry.ENTRY_POINT_GROUP`` (spelled out: importing the models package costs numpy)
ENTRY_POINT_GROUP = "dabench.models"


def index_key() -> str:
    """The hash of what the model listing depends on (module doc); needs no heavy import."""
    import os

    import dabench

    h = hashlib.sha256(f"{INDEX_FORMAT}|{dabench.__version__}".encode())
    folder = Path(__file__).resolve().parent / "models"
    for root, dirs, files in os.walk(folder):
        dirs[:] = sorted(d for d in dirs if d != "__pycache__")
        for f in sorted(files):
            if f.endswith(".py"):
                st = os.stat(os.path.join(root, f))
                h.update(f"{os.path.relpath(os.path.join(root, f), folder)}|{st.st_size}|{st.st_mtime_ns}".encode())
    try:
        from importlib.metadata import entry_points

        for ep in sorted(entry_points(group=ENTRY_POINT_GROUP), key=lambda e: (e.name, e.value)):
            dist = getattr(ep, "dist", None)
            h.update(f"{ep.name}={ep.value}|{getattr(dist, 'version', '')}".encode())
    except Exception:  # noqa: BLE001 - no metadata: the key still covers dabench's own models
        pass
    return h.hexdigest()[:24]


def _path(key: str) -> Path:
    from dabench.provenance import cache_dir

    return cache_dir() / f"model_index-{key}.json"


def _read(path: Path) -> list[dict[str, Any]] | None:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if not isinstance(data, dict) or data.get("format") != INDEX_FORMAT or not isinstance(data.get("models"), list):
        return None
    models = data["models"]
    if not all(isinstance(m, dict) and isinstance(m.get("name"), str) and isinstance(m.get("test"), bool)
               for m in models):
        return None
    return models


def model_infos(include_test: bool = True) -> list[dict[str, Any]]:
    """``model_info`` of each registered model (sorted by name; ``include_test=False`` as ``list_models``),
    from the index when it is current, else from the registry (and the index is written)."""
    key = index_key()
    path = _path(key)
    models = _read(path)
    if models is None:
        from dabench.models import list_models, model_info

        models = [model_info(n) for n in list_models(include_test=True)]
        try:
            from dabench.provenance import atomic_write_text

            path.parent.mkdir(parents=True, exist_ok=True)
            atomic_write_text(path, json.dumps({"format": INDEX_FORMAT, "key": key, "models": models}, default=str))
        except OSError:  # a read-only cache: list without remembering
            pass
    return [m for m in models if include_test or not m["test"]]


__all__ = ["model_infos", "index_key"]
