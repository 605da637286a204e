"""The synthetic world as dabench samples: ``render_batch`` (the fast path used by training),
``SyntheticWorld`` (one family at one size) and ``SyntheticDataset`` (a registered split as a torch
``Dataset``; split seeds never overlap)."""
from __future__ import annotations

import torch

from dabench.data.synthetic.cache import CACHE_KEYS, render_arrays, resolve_cache
from dabench.data.synthetic.geometry import point_map
from dabench.data.synthetic.render import render_scene
from dabench.data.synthetic.scenes import FAMILIES, Scene, make_scene
from dabench.errors import ConfigError

# Seeds of the registered splits: scene seed = SPLIT_OFFSET[split] + seed * SEED_STRIDE + index,
# so train / val / test never share a scene (for index < SEED_STRIDE and seed < 2**20).
SPLIT_OFFSET = {"train": 0, "val": 1 << 50, "test": 2 << 50}
SEED_STRIDE = 1 << 28


def split_seed(split: str, seed: int, index: int) -> int:
    """The scene seed of sample ``index`` of a registered split (disjoint across splits)."""
    if split not in SPLIT_OFFSET:
        raise ConfigError(f"unknown synthetic split {split!r}; expected one of {', '.join(SPLIT_OFFSET)}")
    if not 0 <= index < SEED_STRIDE:
        raise ConfigError(f"synthetic sample index {index} out of range [0, {SEED_STRIDE})")
    return SPLIT_OFFSET[split] + int(seed) * SEED_STRIDE + int(index)


def render_batch(family: str, seeds, size: tuple[int, int] = (98, 126), *, sparse: bool = False,
                 device=None, as_tensor: bool = False, cache_dir=None) -> dict:
    """Render the scenes of ``seeds`` and stack them.

    Returns ``image`` uint8 B×H×W×3, ``depth`` float32 B×H×W (planar metres, 0 where invalid),
    ``valid`` bool, ``labels`` int64 (ids into ``SEMANTIC_CLASSES``), ``sky`` bool,
    ``intrinsics`` float32 B×3×3 (pixels; principal point at ``((W-1)/2, (H-1)/2)``), ``instances`` int32
    (the primitive each pixel sees: planes first, then boxes and spheres; -1 for sky), ``n_planes``
    int32 B (ids below it are the room / street planes) and ``seeds`` int64 B. numpy arrays by default; torch tensors on
    ``device`` with ``as_tensor=True`` (rendering itself runs on ``device``, default CPU).
    ``sparse=True`` keeps only LiDAR-like pixels of the outdoor ground truth. ``cache_dir``: the
    persistent render cache (see the module doc; default ``$DABENCH_SYNTHETIC_CACHE``, False: none).
    """
    if family not in FAMILIES:
        raise ConfigError(f"unknown synthetic family {family!r}; expected one of {', '.join(FAMILIES)}")
    size = _check_size(size)
    dev = device or "cpu"
    cache = resolve_cache(cache_dir)
    if cache is not None and torch.device(dev).type == "cpu":
        for s in seeds:
            if int(s) < 0:
                raise ConfigError(f"synthetic scene seed must be >= 0, got {s}")
        arrs = [render_arrays(family, int(s), size, sparse, dev, cache) for s in seeds]
        if not arrs:
            raise ConfigError("render_batch needs at least one seed")
        outs = [{k: torch.from_numpy(a[k]) for k in CACHE_KEYS} for a in arrs]
    else:
        outs = [render_scene(make_scene(family, s), size, sparse=sparse, device=dev) for s in seeds]
    if not outs:
        raise ConfigError("render_batch needs at least one seed")
    batch = {k: torch.stack([o[k] for o in outs]) for k in outs[0]}
    batch["seeds"] = torch.tensor([int(s) for s in seeds], dtype=torch.int64)
    if as_tensor:
        return batch
    return {k: v.cpu().numpy() for k, v in batch.items()}


def _check_size(size) -> tuple[int, int]:
    try:
        h, w = (int(v) for v in size)
    except (TypeError, ValueError):
        raise ConfigError(f"synthetic size must be (H, W) integers, got {size!r}") from None
    if h < 8 or w < 8 or h > 4096 or w > 4096:
        raise ConfigError(f"synthetic size {size!r} out of range: H and W must be within 8..4096 pixels")
    return h, w


class SyntheticWorld:
    """A family of scenes at one image size: ``world.scene(seed)``, ``world.sample(seed)``."""

    def __init__(self, family: str = "indoor", size: tuple[int, int] = (98, 126), *, sparse: bool = False,
                 device="cpu", cache_dir=None):
        if family not in FAMILIES:
            raise ConfigError(f"unknown synthetic family {family!r}; expected one of {', '.join(FAMILIES)}")
        self.family, self.size, self.sparse, self.device = family, _check_size(size), bool(sparse), device
        self.spec = FAMILIES[family]
        self.cache = resolve_cache(cache_dir)

    def scene(self, seed: int) -> Scene:
        return make_scene(self.family, seed)

    def sample(self, seed: int, name: str | None = None) -> dict:
        """One dabench sample dict (numpy arrays) for scene ``seed``: the ``render_batch`` arrays of one
        scene plus ``points`` (H×W×3 float32, camera frame, exact) and ``sharp_boundary`` (True)."""
        if int(seed) < 0:
            raise ConfigError(f"synthetic scene seed must be >= 0, got {seed}")
        s = render_arrays(self.family, int(seed), self.size, self.sparse, self.device, self.cache)
        s["name"] = name or f"synthetic-{self.family}-{seed}"
        s["points"] = point_map(s["depth"], s["intrinsics"])  # exact, from the rays cast (0 where invalid)
        s["sharp_boundary"] = True  # ray-cast: depth jumps between neighbouring pixels, never blended
        return s


class SyntheticDataset(torch.utils.data.Dataset):
    """``num_samples`` rendered scenes of a split; sample ``i`` is scene ``split_seed(split, seed, i)``."""

    def __init__(self, family: str = "indoor", num_samples: int = 32, size: tuple[int, int] = (98, 126),
                 seed: int = 0, split: str = "test", *, sparse: bool = False, card: dict | None = None,
                 cache_dir=None):
        if int(num_samples) < 0:
            raise ConfigError(f"num_samples must be >= 0, got {num_samples}")
        self.world = SyntheticWorld(family, size, sparse=sparse, cache_dir=cache_dir)
        self.family, self.num_samples, self.seed, self.split = family, int(num_samples), int(seed), split
        split_seed(split, self.seed, 0)  # validates split
        self.card = dict(card or {})
        self.skipped_missing = 0

    def __len__(self) -> int:
        return self.num_samples

    def scene_seed(self, index: int) -> int:
        return split_seed(self.split, self.seed, index)

    def __getitem__(self, index: int) -> dict:
        if not -self.num_samples <= index < self.num_samples:
            raise IndexError(f"index {index} out of range for {self.num_samples} samples")
        index %= max(self.num_samples, 1)
        return self.world.sample(self.scene_seed(index), name=f"synthetic-{self.family}/{self.split}/{index:06d}")
