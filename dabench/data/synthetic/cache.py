"""Persistent render cache (opt-in): one uncompressed ``.npz`` per rendered sample under
``<dir>/<renderer version>/<family>-<H>x<W>[-sparse]/<seed>.npz``, read back bit-identically."""
from __future__ import annotations

import functools
import hashlib
import os
import zipfile
from pathlib import Path

import numpy as np
import torch

from dabench.data.synthetic.render import render_scene
from dabench.data.synthetic.scenes import make_scene

CACHE_ENV = "DABENCH_SYNTHETIC_CACHE"
CACHE_KEYS = ("image", "depth", "valid", "labels", "sky", "intrinsics", "instances", "n_planes")
# the modules (in this package) whose code decides a rendered sample
RENDER_SOURCES = ("geometry.py", "scenes.py", "render.py", "cache.py")


@functools.lru_cache(maxsize=1)
def renderer_version() -> str:
    """Hash of the sources that decide a cached sample's bytes (geometry, scenes, renderer and this
    cache's format): the render cache's namespace, so any change to them invalidates it."""
    h = hashlib.sha256()
    for name in RENDER_SOURCES:
        h.update(name.encode())
        h.update((Path(__file__).parent / name).read_bytes())
    return h.hexdigest()[:16]


class RenderCache:
    """Rendered samples on disk, one uncompressed ``.npz`` per (family, size, sparse, seed)."""

    def __init__(self, root):
        self.root = Path(root).expanduser() / renderer_version()

    def path(self, family: str, seed: int, size: tuple[int, int], sparse: bool) -> Path:
        return self.root / f"{family}-{size[0]}x{size[1]}{'-sparse' if sparse else ''}" / f"{int(seed)}.npz"

    def load(self, family: str, seed: int, size: tuple[int, int], sparse: bool) -> dict[str, np.ndarray] | None:
        try:
            with np.load(self.path(family, seed, size, sparse), allow_pickle=False) as z:
                return {k: z[k] for k in CACHE_KEYS}
        except FileNotFoundError:
            return None
        except (OSError, ValueError, KeyError, zipfile.BadZipFile, EOFError):
            return None  # unreadable / partial entry: render again (and overwrite it)

    def store(self, family: str, seed: int, size: tuple[int, int], sparse: bool, arrays: dict) -> None:
        path = self.path(family, seed, size, sparse)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.stem}.{os.getpid()}.tmp.npz")
        np.savez(tmp, **{k: arrays[k] for k in CACHE_KEYS})
        os.replace(tmp, path)  # atomic: concurrent readers see the old entry or the whole new one


def resolve_cache(cache_dir=None) -> RenderCache | None:
    """``cache_dir`` (a path, or False to disable), else ``$DABENCH_SYNTHETIC_CACHE``, else no cache."""
    if cache_dir is False:
        return None
    if cache_dir is None:
        cache_dir = os.environ.get(CACHE_ENV) or None
    return RenderCache(cache_dir) if cache_dir else None


def render_arrays(family: str, seed: int, size: tuple[int, int], sparse: bool, device,
                  cache: RenderCache | None) -> dict[str, np.ndarray]:
    """One rendered sample as numpy arrays, read from / written to ``cache`` (CPU rendering only)."""
    use = cache is not None and torch.device(device).type == "cpu"
    if use:
        hit = cache.load(family, seed, size, sparse)
        if hit is not None:
            return hit
    out = render_scene(make_scene(family, seed), size, sparse=sparse, device=device)
    arrays = {k: v.cpu().numpy() for k, v in out.items()}
    if use:
        cache.store(family, seed, size, sparse, arrays)
    return arrays
