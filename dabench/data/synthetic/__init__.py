"""A procedural, ray-cast synthetic world with exact metric ground truth.

Two scene families:

- ``indoor``: a room (floor, four walls, ceiling) with boxes, tables and balls; 0.5–10 m,
  dense ground truth, NYU-like field of view (55–70° horizontal).
- ``outdoor``: a street (road with lane markings, sidewalks, grass) lined with buildings,
  parked and moving cars, trees, hedges and poles; 1–80 m, sky without depth, optional sparse
  LiDAR-like ground truth (64 beams between −24.9° and +2°), KITTI-like field of view.

Every scene is drawn from ``numpy.random.default_rng(seed)`` (camera height, pitch, yaw, roll,
field of view, room/street dimensions, object count, placement and colours), then rendered by
exact ray casting against axis-aligned planes, boxes and spheres. Pixel ``(i, j)`` looks along
``x_c = (j - cx) / fx``, ``y_c = (i - cy) / fy``, ``z_c = 1`` in the OpenCV camera frame, so the
ray parameter of the first hit *is* the planar (z) depth in metres. Appearance: world-space
procedural textures filtered by the pixel footprint (so texture scale shrinks with distance
without aliasing), Lambert shading with cast shadows from a directional light, distance fog
outdoors, a mild light fall-off indoors and sensor noise.

``render_batch(family, seeds, size)`` is the fast path used by training;
``SyntheticDataset`` wraps it as a torch ``Dataset`` of dabench samples.

Modules, in the order data flows: ``geometry`` (camera, ray-box/sphere hits, projected rectangles)
-> ``scenes`` (classes, families, ``make_scene``) -> ``render`` (``render_scene``) -> ``cache`` (the
render cache) -> ``dataset`` (``render_batch``, ``SyntheticWorld``, ``SyntheticDataset``). Import
the public names from ``dabench.data.synthetic``.

Persistent render cache (opt-in): pass ``cache_dir=`` to ``render_batch`` / ``SyntheticWorld`` /
``SyntheticDataset``, or set ``DABENCH_SYNTHETIC_CACHE=<dir>``. Each rendered sample is stored once
as an uncompressed ``.npz`` under ``<dir>/<renderer version>/<family>-<H>x<W>[-sparse]/<seed>.npz``
(the version is a hash of the renderer's modules, so a changed renderer never reads stale images)
and read back bit-identically afterwards. Only CPU rendering is cached.
"""
from __future__ import annotations

from dabench.data.synthetic.geometry import Camera, point_map
from dabench.data.synthetic.scenes import (CLASS_ID, FAMILIES, IGNORE_INDEX, SEMANTIC_CLASSES, FamilySpec, Scene,
                                          make_scene)
from dabench.data.synthetic.render import VECTORISE_LIMIT, render_scene
from dabench.data.synthetic.cache import CACHE_ENV, RenderCache, renderer_version, resolve_cache
from dabench.data.synthetic.dataset import (SEED_STRIDE, SPLIT_OFFSET, SyntheticDataset, SyntheticWorld, render_batch,
                                           split_seed)

__all__ = [
    "CACHE_ENV",
    "CLASS_ID",
    "Camera",
    "FAMILIES",
    "FamilySpec",
    "IGNORE_INDEX",
    "RenderCache",
    "SEED_STRIDE",
    "SEMANTIC_CLASSES",
    "SPLIT_OFFSET",
    "Scene",
    "SyntheticDataset",
    "SyntheticWorld",
    "VECTORISE_LIMIT",
    "make_scene",
    "point_map",
    "render_batch",
    "render_scene",
    "renderer_version",
    "resolve_cache",
    "split_seed",
]
