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

Persistent render cache (opt-in): pass ``cache_dir=`` to ``render_batch`` / ``SyntheticWorld`` /
``SyntheticDataset``, or set ``DABENCH_SYNTHETIC_CACHE=<dir>``. Each rendered sample is stored once
as an uncompressed ``.npz`` under ``<dir>/<renderer version>/<family>-<H>x<W>[-sparse]/<seed>.npz``
(the version is a hash of this file, so a changed renderer never reads stale images) and read back
bit-identically afterwards. Only CPU rendering is cached.
"""
from __future__ import annotations

import functools
import hashlib
import math
import os
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from dabench.errors import ConfigError

SEMANTIC_CLASSES: tuple[str, ...] = (
    "floor",       # 0  indoor floor
    "wall",        # 1  indoor walls
    "ceiling",     # 2
    "box",         # 3  indoor boxes, cabinets and tables
    "sphere",      # 4  indoor balls
    "road",        # 5
    "sidewalk",    # 6
    "ground",      # 7  outdoor grass / terrain
    "building",    # 8
    "vegetation",  # 9  trees (trunk and crown) and hedges
    "vehicle",     # 10
    "pole",        # 11
    "sky",         # 12 (no depth)
)
CLASS_ID: dict[str, int] = {n: i for i, n in enumerate(SEMANTIC_CLASSES)}
IGNORE_INDEX = 255


@dataclass(frozen=True)
class FamilySpec:
    name: str
    min_depth: float      # metres; closer hits are marked invalid
    max_depth: float      # metres; farther hits (and sky) are marked invalid
    hfov_deg: tuple[float, float]


FAMILIES: dict[str, FamilySpec] = {
    "indoor": FamilySpec("indoor", 0.5, 10.0, (55.0, 70.0)),
    "outdoor": FamilySpec("outdoor", 1.0, 80.0, (70.0, 90.0)),
}

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


# ----------------------------------------------------------------------------------------
# Scene description
# ----------------------------------------------------------------------------------------

@dataclass
class Camera:
    """Pinhole camera. ``right``/``down``/``forward`` are the OpenCV camera axes in world
    coordinates (world: y up, floor/ground at y = 0)."""

    position: np.ndarray
    right: np.ndarray
    down: np.ndarray
    forward: np.ndarray
    hfov_deg: float

    def intrinsics(self, size: tuple[int, int]) -> np.ndarray:
        """3×3 K for an image of ``size = (H, W)`` pixels (square pixels, centred principal point)."""
        h, w = size
        f = (w / 2.0) / math.tan(math.radians(self.hfov_deg) / 2.0)
        return np.array([[f, 0.0, (w - 1) / 2.0], [0.0, f, (h - 1) / 2.0], [0.0, 0.0, 1.0]], dtype=np.float64)

    @staticmethod
    def from_angles(position, yaw_deg: float, pitch_deg: float, roll_deg: float, hfov_deg: float) -> "Camera":
        """Yaw about world up (+ turns right), pitch (+ looks up), roll about the optical axis."""
        yw, pt, rl = (math.radians(a) for a in (yaw_deg, pitch_deg, roll_deg))
        fwd = np.array([math.cos(pt) * math.sin(yw), math.sin(pt), math.cos(pt) * math.cos(yw)])
        r0 = np.array([math.cos(yw), 0.0, -math.sin(yw)])
        u0 = np.cross(fwd, r0)
        right = math.cos(rl) * r0 + math.sin(rl) * u0
        up = -math.sin(rl) * r0 + math.cos(rl) * u0
        return Camera(np.asarray(position, dtype=np.float64), right, -up, fwd, float(hfov_deg))


@dataclass
class Scene:
    """Everything needed to render one image: camera, light and primitives (world coordinates)."""

    family: str
    seed: int
    camera: Camera
    light: np.ndarray                     # unit vector towards the light
    planes: list[dict] = field(default_factory=list)   # {axis, offset, normal(3), cls, colour}
    boxes: list[dict] = field(default_factory=list)    # {min(3), max(3), cls, colour}
    spheres: list[dict] = field(default_factory=list)  # {centre(3), radius, cls, colour}
    params: dict = field(default_factory=dict)         # family specifics (room size, road, palette, ...)


def _jitter(rng, rgb, amount=0.08):
    return np.clip(np.asarray(rgb, dtype=np.float64) + rng.uniform(-amount, amount, 3), 0.02, 0.98)


def _hsv(h, s, v):
    import colorsys

    return np.array(colorsys.hsv_to_rgb(h % 1.0, s, v))


def _random_colour(rng, s=(0.3, 0.9), v=(0.35, 0.95)):
    return _hsv(rng.uniform(), rng.uniform(*s), rng.uniform(*v))


def _box(lo, hi, cls, colour):
    lo, hi = np.asarray(lo, float), np.asarray(hi, float)
    bmin, bmax = np.minimum(lo, hi), np.maximum(lo, hi)
    return {"min": bmin, "max": bmax, "cls": CLASS_ID[cls], "colour": np.asarray(colour, float),
            "_lo": bmin.tolist(), "_hi": bmax.tolist()}


def _overlaps(a, b, margin=0.05):
    a0, a1, b0, b1 = a["_lo"], a["_hi"], b["_lo"], b["_hi"]
    return all(a0[i] - margin < b1[i] and b0[i] - margin < a1[i] for i in range(3))


def _indoor_scene(seed: int) -> Scene:
    rng = np.random.default_rng([seed, 1])
    spec = FAMILIES["indoor"]
    width = rng.uniform(3.0, 6.0)
    depth_ahead = rng.uniform(3.5, 7.0)
    depth_behind = rng.uniform(0.3, 1.5)
    height = rng.uniform(2.4, 3.1)
    cam_x = rng.uniform(-0.3, 0.3) * (width - 1.0)
    cam_h = rng.uniform(1.0, 1.7)
    camera = Camera.from_angles([cam_x, cam_h, 0.0], yaw_deg=rng.uniform(-25, 25), pitch_deg=rng.uniform(-22, 4),
                                roll_deg=rng.uniform(-3, 3), hfov_deg=rng.uniform(*spec.hfov_deg))
    floor_col = _hsv(rng.uniform(0.03, 0.12), rng.uniform(0.2, 0.6), rng.uniform(0.3, 0.7))
    if rng.uniform() < 0.3:
        floor_col = _random_colour(rng, s=(0.05, 0.4), v=(0.3, 0.8))
    wall_col = _hsv(rng.uniform(), rng.uniform(0.0, 0.35), rng.uniform(0.6, 0.95))
    ceil_col = _jitter(rng, [0.9, 0.9, 0.88], 0.05)
    hw = width / 2
    planes = [
        {"axis": 1, "offset": 0.0, "normal": [0, 1, 0], "cls": CLASS_ID["floor"], "colour": floor_col},
        {"axis": 1, "offset": height, "normal": [0, -1, 0], "cls": CLASS_ID["ceiling"], "colour": ceil_col},
        {"axis": 0, "offset": -hw, "normal": [1, 0, 0], "cls": CLASS_ID["wall"], "colour": wall_col},
        {"axis": 0, "offset": hw, "normal": [-1, 0, 0], "cls": CLASS_ID["wall"], "colour": _jitter(rng, wall_col, 0.04)},
        {"axis": 2, "offset": depth_ahead, "normal": [0, 0, -1], "cls": CLASS_ID["wall"], "colour": _jitter(rng, wall_col, 0.04)},
        {"axis": 2, "offset": -depth_behind, "normal": [0, 0, 1], "cls": CLASS_ID["wall"], "colour": wall_col},
    ]
    boxes: list[dict] = []
    spheres: list[dict] = []
    z_lo = 1.0  # keep objects at least 1 m in front of the camera plane z = 0

    def free(candidate):
        return all(not _overlaps(candidate, b) for b in boxes)

    for _ in range(int(rng.integers(2, 8))):
        for _try in range(10):
            sx, sz = rng.uniform(0.3, 1.6), rng.uniform(0.3, 1.2)
            sy = rng.uniform(0.3, 2.0) if rng.uniform() < 0.8 else rng.uniform(0.3, 0.8)
            if rng.uniform() < 0.4:  # against a side or the back wall
                side = rng.choice([-1, 1, 2])
                if side == 2:
                    x0, z0 = rng.uniform(-hw, hw - sx), depth_ahead - sz
                else:
                    x0 = -hw if side < 0 else hw - sx
                    z0 = rng.uniform(z_lo, depth_ahead - sz)
            else:
                x0, z0 = rng.uniform(-hw, hw - sx), rng.uniform(z_lo, depth_ahead - sz)
            if z0 < z_lo or sx > width:
                continue
            cand = _box([x0, 0.0, z0], [x0 + sx, sy, z0 + sz], "box", _random_colour(rng))
            if free(cand):
                boxes.append(cand)
                break
    for _ in range(int(rng.integers(0, 3))):  # tables: a top slab on four legs
        for _try in range(10):
            sx, sz, th = rng.uniform(0.7, 1.8), rng.uniform(0.5, 1.0), rng.uniform(0.55, 0.8)
            x0, z0 = rng.uniform(-hw, hw - sx), rng.uniform(z_lo, depth_ahead - sz)
            if z0 < z_lo:
                continue
            col = _random_colour(rng, s=(0.2, 0.6), v=(0.25, 0.8))
            top = _box([x0, th - 0.04, z0], [x0 + sx, th, z0 + sz], "box", col)
            if not free(_box([x0, 0, z0], [x0 + sx, th, z0 + sz], "box", col)):
                continue
            leg = 0.05
            parts = [top] + [_box([x, 0.0, z], [x + leg, th - 0.04, z + leg], "box", col * 0.8)
                             for x in (x0, x0 + sx - leg) for z in (z0, z0 + sz - leg)]
            boxes.extend(parts)
            if rng.uniform() < 0.5:
                r = rng.uniform(0.08, 0.2)
                spheres.append({"centre": np.array([x0 + sx / 2, th + r, z0 + sz / 2]), "radius": r,
                                "cls": CLASS_ID["sphere"], "colour": _random_colour(rng)})
            break
    for _ in range(int(rng.integers(0, 4))):
        for _try in range(10):
            r = rng.uniform(0.1, 0.45)
            c = np.array([rng.uniform(-hw + r, hw - r), r, rng.uniform(z_lo + r, depth_ahead - r)])
            cand = _box(c - r, c + r, "sphere", [0, 0, 0])
            if free(cand) and all(np.linalg.norm(c - s["centre"]) > r + s["radius"] for s in spheres):
                spheres.append({"centre": c, "radius": r, "cls": CLASS_ID["sphere"], "colour": _random_colour(rng)})
                break
    # flat wall decorations (doors, windows, pictures): rectangles painted on the wall planes
    decor = []
    for _ in range(int(rng.integers(0, 5))):
        kind = rng.choice(["door", "window", "picture"], p=[0.3, 0.3, 0.4])
        plane = planes[int(rng.choice([2, 3, 4]))]
        span = (-hw, hw) if plane["axis"] == 2 else (0.0, depth_ahead)
        wdt = {"door": rng.uniform(0.8, 1.0), "window": rng.uniform(0.8, 1.8), "picture": rng.uniform(0.3, 1.2)}[kind]
        if span[1] - span[0] < wdt + 0.2:
            continue
        u0 = rng.uniform(span[0] + 0.1, span[1] - wdt - 0.1)
        y0, y1 = {"door": (0.0, 2.05), "window": (0.9, min(height - 0.3, 2.3)),
                  "picture": (1.2, 1.2 + rng.uniform(0.3, 0.9))}[kind]
        colour = {"door": _hsv(rng.uniform(0.05, 0.1), rng.uniform(0.3, 0.7), rng.uniform(0.25, 0.6)),
                  "window": _jitter(rng, [0.85, 0.9, 0.98], 0.05), "picture": _random_colour(rng)}[kind]
        decor.append({"axis": plane["axis"], "offset": plane["offset"], "u": (u0, u0 + wdt), "y": (y0, y1),
                      "colour": colour, "kind": str(kind)})
    light = np.array([rng.uniform(-0.5, 0.5), 1.0, rng.uniform(-0.6, 0.3)])
    params = {"decor": decor, "width": width, "depth_ahead": depth_ahead, "depth_behind": depth_behind, "height": height,
              "floor_pattern": int(rng.integers(0, 3)), "floor_period": rng.uniform(0.3, 0.9),
              "wall_stripes": bool(rng.uniform() < 0.3), "wall_period": rng.uniform(0.1, 0.4),
              "ambient": rng.uniform(0.3, 0.5), "diffuse": rng.uniform(0.5, 0.8), "gain": rng.uniform(0.9, 1.25)}
    return Scene("indoor", int(seed), camera, light / np.linalg.norm(light), planes, boxes, spheres, params)


def _outdoor_scene(seed: int) -> Scene:
    rng = np.random.default_rng([seed, 2])
    spec = FAMILIES["outdoor"]
    road_half = rng.uniform(3.0, 7.0)
    sidewalk = rng.uniform(1.5, 4.0)
    cam_x = rng.uniform(-road_half + 1.2, road_half - 1.2)
    camera = Camera.from_angles([cam_x, rng.uniform(1.4, 1.9), 0.0], yaw_deg=rng.uniform(-10, 10),
                                pitch_deg=rng.uniform(-8, 3), roll_deg=rng.uniform(-2, 2),
                                hfov_deg=rng.uniform(*spec.hfov_deg))
    boxes: list[dict] = []
    spheres: list[dict] = []
    kerb = road_half + sidewalk
    for side in (-1, 1):
        if rng.uniform() < 0.15:  # open field on this side: sky down to the horizon
            continue
        z = rng.uniform(-30, -5)
        facade = _random_colour(rng, s=(0.05, 0.45), v=(0.35, 0.9))
        while z < 200:
            length = rng.uniform(8, 25)
            setback = rng.uniform(0, 3)
            deep = rng.uniform(8, 20)
            h = rng.uniform(5, 30)
            x_in = side * (kerb + setback)
            boxes.append(_box([x_in, 0, z], [x_in + side * deep, h, z + length], "building",
                              _jitter(rng, facade, 0.12)))
            z += length + (rng.uniform(0, 10) if rng.uniform() < 0.4 else 0.0)
        if rng.uniform() < 0.5:  # hedge along the sidewalk
            z0 = rng.uniform(0, 30)
            x_in = side * (kerb - rng.uniform(0.3, 1.0))
            boxes.append(_box([x_in, 0, z0], [x_in + side * rng.uniform(0.5, 1.0), rng.uniform(0.6, 1.4),
                                              z0 + rng.uniform(10, 60)], "vegetation",
                              _hsv(rng.uniform(0.22, 0.38), rng.uniform(0.4, 0.8), rng.uniform(0.2, 0.45))))
    lanes = max(1, int(road_half // 3))
    for _ in range(int(rng.integers(0, 9))):  # cars: body + cabin
        parked = rng.uniform() < 0.5
        ln, lw, lh = rng.uniform(3.8, 5.0), rng.uniform(1.6, 2.0), rng.uniform(0.9, 1.1)
        if parked:
            side = rng.choice([-1, 1])
            xc = side * (road_half - lw / 2 - 0.2)
        else:
            xc = rng.uniform(-road_half + lw / 2 + 0.3, road_half - lw / 2 - 0.3)
            xc = (round((xc + road_half) / (2 * road_half / (2 * lanes)) - 0.5) + 0.5) * (2 * road_half / (2 * lanes)) - road_half
        zc = rng.uniform(6, 90)
        if abs(xc - cam_x) < lw and zc < 8:
            continue
        col = _random_colour(rng, s=(0.0, 0.9), v=(0.15, 0.95))
        body = _box([xc - lw / 2, 0.25, zc - ln / 2], [xc + lw / 2, 0.25 + lh, zc + ln / 2], "vehicle", col)
        if not all(not _overlaps(body, b) for b in boxes):
            continue
        boxes.append(body)
        boxes.append(_box([xc - lw / 2 + 0.1, 0.25 + lh, zc - ln / 4], [xc + lw / 2 - 0.1, 0.25 + lh + 0.5, zc + ln / 5],
                          "vehicle", col * 0.9))
        boxes.append(_box([xc - lw / 2 + 0.05, 0.0, zc - ln / 2 + 0.3], [xc + lw / 2 - 0.05, 0.25, zc + ln / 2 - 0.3],
                          "vehicle", [0.05, 0.05, 0.05]))
    for _ in range(int(rng.integers(0, 11))):  # trees on the sidewalk: trunk + crown
        side = rng.choice([-1, 1])
        xc = side * (road_half + rng.uniform(0.6, sidewalk - 0.4))
        zc = rng.uniform(3, 120)
        th, r = rng.uniform(1.8, 4.0), rng.uniform(1.2, 3.0)
        trunk = _box([xc - 0.15, 0, zc - 0.15], [xc + 0.15, th + r * 0.5, zc + 0.15], "vegetation",
                     _hsv(rng.uniform(0.05, 0.1), 0.5, rng.uniform(0.2, 0.35)))
        if not all(not _overlaps(trunk, b) for b in boxes):
            continue
        boxes.append(trunk)
        spheres.append({"centre": np.array([xc, th + r, zc]), "radius": r, "cls": CLASS_ID["vegetation"],
                        "colour": _hsv(rng.uniform(0.2, 0.36), rng.uniform(0.4, 0.8), rng.uniform(0.2, 0.5))})
    for _ in range(int(rng.integers(0, 7))):  # poles with a sign
        side = rng.choice([-1, 1])
        xc = side * (road_half + rng.uniform(0.2, 0.6))
        zc = rng.uniform(3, 100)
        ph = rng.uniform(2.5, 7.0)
        pole = _box([xc - 0.06, 0, zc - 0.06], [xc + 0.06, ph, zc + 0.06], "pole", [0.45, 0.45, 0.47])
        if not all(not _overlaps(pole, b) for b in boxes):
            continue
        boxes.append(pole)
        if rng.uniform() < 0.6:
            boxes.append(_box([xc - 0.35, ph - 0.7, zc - 0.04], [xc + 0.35, ph, zc + 0.04], "pole", _random_colour(rng)))
    sun_el, sun_az = math.radians(rng.uniform(20, 70)), rng.uniform(0, 2 * math.pi)
    light = np.array([math.cos(sun_el) * math.sin(sun_az), math.sin(sun_el), math.cos(sun_el) * math.cos(sun_az)])
    planes = [{"axis": 1, "offset": 0.0, "normal": [0, 1, 0], "cls": CLASS_ID["road"], "colour": [0.3, 0.3, 0.3]}]
    params = {"road_half": road_half, "sidewalk": sidewalk, "lanes": lanes,
              "road_col": np.array([0.28, 0.28, 0.3]) * rng.uniform(0.7, 1.3) + rng.uniform(-0.015, 0.015, 3),
              "sidewalk_col": _jitter(rng, [0.62, 0.6, 0.56], 0.08),
              "ground_col": _hsv(rng.uniform(0.12, 0.33), rng.uniform(0.3, 0.7), rng.uniform(0.25, 0.55)),
              "sky_zenith": _hsv(rng.uniform(0.55, 0.62), rng.uniform(0.3, 0.7), rng.uniform(0.6, 0.95)),
              "sky_horizon": _jitter(rng, [0.85, 0.88, 0.92], 0.06), "clouds": rng.uniform(0.0, 0.6),
              "window_period": (rng.uniform(2.0, 4.0), rng.uniform(2.8, 3.5)), "window_fill": rng.uniform(0.4, 0.7),
              "fog": rng.uniform(150, 600), "ambient": rng.uniform(0.3, 0.45), "diffuse": rng.uniform(0.6, 0.9),
              "gain": rng.uniform(0.85, 1.2), "paving": rng.uniform(0.4, 1.0)}
    return Scene("outdoor", int(seed), camera, light, planes, boxes, spheres, params)


def make_scene(family: str, seed: int) -> Scene:
    """The scene of ``family`` ("indoor" | "outdoor") for integer ``seed`` >= 0 (deterministic)."""
    if int(seed) < 0:
        raise ConfigError(f"synthetic scene seed must be >= 0, got {seed}")
    if family == "indoor":
        return _indoor_scene(int(seed))
    if family == "outdoor":
        return _outdoor_scene(int(seed))
    raise ConfigError(f"unknown synthetic family {family!r}; expected 'indoor' or 'outdoor'")


# ----------------------------------------------------------------------------------------
# Rendering
# ----------------------------------------------------------------------------------------

_EPS = 1e-4
# pixels × objects up to which all objects are intersected in one vectorised pass (see
# _Renderer.render). On CPU, per-object tests restricted to each object's projected rectangle are
# faster except for tiny images; on a GPU, a few large kernels beat many small ones.
VECTORISE_LIMIT = {"cpu": 50_000, "cuda": 20_000_000}
# fixed world-space noise basis: unit directions and phases (independent of the scene seed)
_NOISE_RNG = np.random.default_rng(12345)
_NOISE_DIRS = _NOISE_RNG.normal(size=(6, 3))
_NOISE_DIRS /= np.linalg.norm(_NOISE_DIRS, axis=1, keepdims=True)
_NOISE_FREQ = np.array([1.0, 1.7, 2.9, 4.3, 6.1, 8.9])
_NOISE_PHASE = _NOISE_RNG.uniform(0, 2 * math.pi, 6)


def _noise(p: torch.Tensor, scale: float, fp: torch.Tensor, offset: float = 0.0) -> torch.Tensor:
    """Band-limited world-space noise in about [-1, 1]; components finer than the pixel footprint
    ``fp`` (metres) fade out, so distant surfaces look smooth instead of aliased."""
    dirs = torch.as_tensor(_NOISE_DIRS, dtype=p.dtype, device=p.device)
    out = torch.zeros(p.shape[:-1], dtype=p.dtype, device=p.device)
    for k in range(len(_NOISE_FREQ)):
        w = 2 * math.pi * _NOISE_FREQ[k] * scale
        amp = torch.exp(-0.5 * (w * fp) ** 2) / math.sqrt(k + 1)
        out = out + amp * torch.sin(w * (p @ dirs[k]) + float(_NOISE_PHASE[k]) + offset)
    return out * 0.6


def _overlap(a0, a1, b0, b1):
    return (torch.minimum(a1, b1 if torch.is_tensor(b1) else torch.full_like(a1, b1))
            - torch.maximum(a0, b0 if torch.is_tensor(b0) else torch.full_like(a0, b0))).clamp_min(0)


def _lines(x: torch.Tensor, period: float, width: float, fp: torch.Tensor) -> torch.Tensor:
    """Coverage in [0, 1] of periodic lines ``[k * period, k * period + width)`` (metres) box-filtered
    over the pixel footprint ``fp``: far, sub-pixel lines blend to their mean coverage."""
    s = torch.remainder(x, period)
    half = (0.5 * fp).clamp(1e-6, period / 2)
    a0, a1 = s - half, s + half
    cov = (_overlap(a0, a1, 0.0, width) + _overlap(a0, a1, period, period + width)
           + _overlap(a0, a1, -period, -period + width)) / (2 * half)
    mix = (fp / period).clamp(0, 1)
    return cov.clamp(0, 1) * (1 - mix) + (width / period) * mix


def _band(x: torch.Tensor, lo: float, hi: float, fp: torch.Tensor) -> torch.Tensor:
    """Coverage in [0, 1] of the single band lo <= x < hi, box-filtered over the footprint ``fp``."""
    half = (0.5 * fp).clamp_min(1e-6)
    return _overlap(x - half, x + half, lo, hi) / (2 * half)


def _project_rects(points: np.ndarray, cam: Camera, K: np.ndarray, size) -> list:
    """Pixel rectangles (i0, i1, j0, j1) containing the projections of the convex hulls of N point
    sets (``points``: N×M×3), in one numpy pass: the full image for a set with a point behind the
    camera, None for one that is off-screen. Rectangles have a 1-2 pixel margin."""
    h, w = size
    if len(points) == 0:
        return []
    rel = points - cam.position
    z = rel @ cam.forward
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        x = K[0, 0] * (rel @ cam.right) / z + K[0, 2]
        y = K[1, 1] * (rel @ cam.down) / z + K[1, 2]
    behind = (z < 1e-3).any(1).tolist()
    bounds = np.stack([x.min(1), x.max(1), y.min(1), y.max(1)], 1).tolist()
    out: list = []
    for back, (x0, x1, y0, y1) in zip(behind, bounds):
        if back:
            out.append((0, h, 0, w))
            continue
        j0, j1 = max(0, int(math.floor(x0)) - 1), min(w, int(math.ceil(x1)) + 2)
        i0, i1 = max(0, int(math.floor(y0)) - 1), min(h, int(math.ceil(y1)) + 2)
        out.append(None if j0 >= j1 or i0 >= i1 else (i0, i1, j0, j1))
    return out


_CORNER_SEL = np.array([[x, y, z] for x in (0, 1) for y in (0, 1) for z in (0, 1)], dtype=bool)


def _corners_all(lo: np.ndarray, hi: np.ndarray) -> np.ndarray:
    """The 8 corners of each of N boxes (``lo``, ``hi``: N×3) as N×8×3."""
    return np.where(_CORNER_SEL[None], hi[:, None, :], lo[:, None, :])


def _hit_box(origin, direction, lo, hi, inv=None):
    """Ray parameter of the entry into box [lo, hi] (inf where missed); origin is outside.
    ``inv``: precomputed ``1 / direction``."""
    if inv is None:
        inv = 1.0 / direction
    t1 = (lo - origin) * inv
    t2 = (hi - origin) * inv
    tn = torch.minimum(t1, t2).amax(-1)
    tf = torch.maximum(t1, t2).amin(-1)
    hit = (tf >= tn) & (tn > _EPS)
    return torch.where(hit, tn, torch.full_like(tn, math.inf))


def _hit_sphere(origin, direction, centre, radius):
    oc = origin - centre
    a = (direction * direction).sum(-1)
    b = (direction * oc).sum(-1)
    c = (oc * oc).sum(-1) - radius * radius
    disc = b * b - a * c
    t = (-b - disc.clamp_min(0).sqrt()) / a
    hit = (disc >= 0) & (t > _EPS)
    return torch.where(hit, t, torch.full_like(t, math.inf))


def _smoothstep(e0, e1, x):
    t = ((x - e0) / (e1 - e0)).clamp(0, 1)
    return t * t * (3 - 2 * t)


class _Renderer:
    def __init__(self, scene: Scene, size: tuple[int, int], device):
        self.scene, self.size, self.device = scene, (int(size[0]), int(size[1])), torch.device(device)
        self.K = scene.camera.intrinsics(self.size)

    def t(self, x):
        return torch.as_tensor(np.asarray(x, dtype=np.float32), device=self.device)

    def render(self, sparse: bool = False) -> dict[str, torch.Tensor]:
        sc, (h, w), K, cam = self.scene, self.size, self.K, self.scene.camera
        dev = self.device
        jj = (torch.arange(w, device=dev, dtype=torch.float32) - K[0, 2]) / K[0, 0]
        ii = (torch.arange(h, device=dev, dtype=torch.float32) - K[1, 2]) / K[1, 1]
        yc, xc = torch.meshgrid(ii, jj, indexing="ij")
        d = xc[..., None] * self.t(cam.right) + yc[..., None] * self.t(cam.down) + self.t(cam.forward)
        o = self.t(cam.position)
        t_best = torch.full((h, w), math.inf, device=dev)
        obj = torch.full((h, w), -1, dtype=torch.long, device=dev)
        pl_origin = np.asarray(cam.position, dtype=np.float32)

        n_planes, n_boxes = len(sc.planes), len(sc.boxes)
        for k, pl in enumerate(sc.planes):
            a = pl["axis"]
            tp = (pl["offset"] - float(pl_origin[a])) / d[..., a]
            tp = torch.where(tp > _EPS, tp, torch.full_like(tp, math.inf))
            better = tp < t_best
            t_best = torch.where(better, tp, t_best)
            obj = torch.where(better, torch.full_like(obj, k), obj)

        inv_d = 1.0 / d

        def cast(kid, rect, fn):
            if rect is None:
                return
            i0, i1, j0, j1 = rect
            tt = fn(d[i0:i1, j0:j1], inv_d[i0:i1, j0:j1])
            cur = t_best[i0:i1, j0:j1]
            better = tt < cur
            t_best[i0:i1, j0:j1] = torch.where(better, tt, cur)
            ob = obj[i0:i1, j0:j1]
            obj[i0:i1, j0:j1] = torch.where(better, torch.full_like(ob, kid), ob)

        box_lo = [self.t(b["min"]) for b in sc.boxes]
        box_hi = [self.t(b["max"]) for b in sc.boxes]
        n_spheres = len(sc.spheres)
        if n_spheres:
            sph_c = self.t(np.array([s["centre"] for s in sc.spheres]))
            sph_r = self.t(np.array([s["radius"] for s in sc.spheres]))
        # Small images: test every pixel against all objects at once (few large tensor ops).
        # Large images: one object at a time, only inside its projected bounding rectangle.
        self.vectorised = h * w * (n_boxes + n_spheres) <= VECTORISE_LIMIT.get(dev.type, VECTORISE_LIMIT["cpu"])
        if self.vectorised:
            flat = d.reshape(-1, 1, 3)
            for first, tt in ((n_planes, _hit_box(o, flat, torch.stack(box_lo), torch.stack(box_hi)) if n_boxes else None),
                              (n_planes + n_boxes, _hit_sphere(o, flat, sph_c, sph_r) if n_spheres else None)):
                if tt is None:
                    continue
                tmin, arg = tt.min(1)
                tmin, arg = tmin.view(h, w), arg.view(h, w)
                better = tmin < t_best
                t_best = torch.where(better, tmin, t_best)
                obj = torch.where(better, arg + first, obj)
        else:
            # object-space bounds of boxes then spheres, their corners and screen rectangles in one pass
            obj_lo = np.array([b["min"] for b in sc.boxes] + [np.asarray(s["centre"]) - float(s["radius"])
                                                             for s in sc.spheres], dtype=np.float64).reshape(-1, 3)
            obj_hi = np.array([b["max"] for b in sc.boxes] + [np.asarray(s["centre"]) + float(s["radius"])
                                                             for s in sc.spheres], dtype=np.float64).reshape(-1, 3)
            obj_corners = _corners_all(obj_lo, obj_hi)
            rects = _project_rects(obj_corners, cam, K, self.size)
            for k in range(n_boxes):
                cast(n_planes + k, rects[k], lambda dd, ii, k=k: _hit_box(o, dd, box_lo[k], box_hi[k], ii))
            for k in range(n_spheres):
                cast(n_planes + n_boxes + k, rects[n_boxes + k],
                     lambda dd, ii, k=k: _hit_sphere(o, dd, sph_c[k], sph_r[k]))

        hit = torch.isfinite(t_best)
        depth = torch.where(hit, t_best, torch.zeros_like(t_best))
        p = o + depth[..., None] * d

        # per-object tables (last row: sky / no hit)
        objs = ([(pl["cls"], pl["colour"]) for pl in sc.planes] + [(b["cls"], b["colour"]) for b in sc.boxes]
                + [(s["cls"], s["colour"]) for s in sc.spheres] + [(CLASS_ID["sky"], (0, 0, 0))])
        n_obj = len(objs) - 1
        idx = torch.where(obj < 0, torch.full_like(obj, n_obj), obj)
        cls_table = torch.tensor([c for c, _ in objs], dtype=torch.long, device=dev)
        col_table = self.t(np.array([np.asarray(col, float) for _, col in objs]))
        labels = cls_table[idx]
        albedo = col_table[idx]

        # normals
        normal = torch.zeros_like(d)
        kind_plane = obj < n_planes
        kind_box = (obj >= n_planes) & (obj < n_planes + n_boxes)
        kind_sphere = obj >= n_planes + n_boxes
        kind_plane &= hit
        if n_planes:
            ntab = self.t(np.array([pl["normal"] for pl in sc.planes], dtype=float))
            normal = torch.where(kind_plane[..., None], ntab[obj.clamp(0, n_planes - 1)], normal)
        if n_boxes:
            bi = (obj - n_planes).clamp(0, n_boxes - 1)
            lo = torch.stack(box_lo)[bi]
            hi_ = torch.stack(box_hi)[bi]
            dist = torch.cat([(p - lo).abs(), (p - hi_).abs()], -1)
            face = dist.argmin(-1)
            eye = torch.cat([-torch.eye(3, device=dev), torch.eye(3, device=dev)])
            normal = torch.where(kind_box[..., None], eye[face], normal)
        if sc.spheres:
            si = (obj - n_planes - n_boxes).clamp(0, len(sc.spheres) - 1)
            cen = self.t(np.array([s["centre"] for s in sc.spheres]))[si]
            rad = self.t(np.array([s["radius"] for s in sc.spheres]))[si]
            normal = torch.where(kind_sphere[..., None], (p - cen) / rad[..., None], normal)

        dnorm = d.norm(dim=-1)
        cos_inc = (-(normal * d).sum(-1) / dnorm).abs().clamp_min(0.15)
        fp = depth * dnorm / float(K[0, 0]) / cos_inc  # metres covered by one pixel on the surface

        if sc.family == "outdoor":
            prm = sc.params
            ground = kind_plane & (labels == CLASS_ID["road"])
            ax = p[..., 0].abs()
            lab_ground = torch.where(ax < prm["road_half"], CLASS_ID["road"],
                                     torch.where(ax < prm["road_half"] + prm["sidewalk"], CLASS_ID["sidewalk"],
                                                 CLASS_ID["ground"]))
            labels = torch.where(ground, lab_ground.to(labels.dtype), labels)
        albedo = self._texture(labels, albedo, p, normal, fp)

        # lighting with cast shadows (occluders: boxes and spheres)
        light = self.t(sc.light)
        ndl = (normal * light).sum(-1).clamp_min(0)
        vis = torch.ones_like(depth)
        po = p + normal * 1e-3
        lit = hit & (ndl > 0)
        lvec = sc.light
        if self.vectorised:
            idx = lit.nonzero(as_tuple=True)
            if idx[0].numel():
                pl = po[idx].unsqueeze(1)
                blocked = torch.zeros(pl.shape[0], dtype=torch.bool, device=dev)
                if n_boxes:
                    blocked |= torch.isfinite(_hit_box(pl, light, torch.stack(box_lo), torch.stack(box_hi))).any(1)
                if n_spheres:
                    blocked |= torch.isfinite(_hit_sphere(pl, light, sph_c, sph_r)).any(1)
                vis[idx] = torch.where(blocked, torch.zeros_like(vis[idx]), vis[idx])
        else:
            # screen rectangles of every object's shadow volume (the object swept along -light down
            # to the ground, y = 0), all objects in one pass; the whole image for a grazing light
            if lvec[1] > 1e-3:
                sweep = obj_corners[..., 1:2] / lvec[1]
                shadow_rects = _project_rects(np.concatenate([obj_corners, obj_corners - sweep * lvec], 1),
                                              cam, K, self.size)
            else:
                shadow_rects = [(0, h, 0, w)] * (n_boxes + n_spheres)
            for k in range(n_boxes):
                self._shadow(vis, lit, po, shadow_rects[k], lambda oo, k=k: _hit_box(oo, light, box_lo[k], box_hi[k]))
            for k in range(n_spheres):
                self._shadow(vis, lit, po, shadow_rects[n_boxes + k],
                             lambda oo, k=k: _hit_sphere(oo, light, sph_c[k], sph_r[k]))
        prm = sc.params
        shade = prm["ambient"] + prm["diffuse"] * ndl * vis
        if sc.family == "indoor":
            shade = shade * (0.7 + 0.5 / (1 + (depth / 4.0) ** 2))
        rgb = albedo * shade[..., None] * prm["gain"]
        if sc.family == "outdoor":
            fog = torch.exp(-depth / prm["fog"])[..., None]
            rgb = rgb * fog + self.t(prm["sky_horizon"]) * (1 - fog)
            sky_px = ~hit
            if bool(sky_px.any()):
                rgb[sky_px] = self._sky(d[sky_px] / dnorm[sky_px][:, None])
        g = torch.Generator(device="cpu").manual_seed(int(sc.seed) % (2 ** 63))
        noise = torch.randn((h, w, 3), generator=g).to(dev) * (1.5 / 255)
        image = ((rgb + noise).clamp(0, 1) * 255 + 0.5).to(torch.uint8)

        spec = FAMILIES[sc.family]
        valid = hit & (depth >= spec.min_depth) & (depth <= spec.max_depth)
        sky = ~hit
        if sparse:
            valid &= self._lidar_mask(xc, yc, g)
        depth = torch.where(valid, depth, torch.zeros_like(depth))
        return {"image": image, "depth": depth, "valid": valid, "labels": labels, "sky": sky,
                "intrinsics": torch.as_tensor(K, dtype=torch.float32, device=dev)}

    def _shadow(self, vis, lit, po, rect, fn):
        """Occlusion of the light by one object, tested only inside ``rect``, the screen rectangle
        of its shadow volume (None: off-screen)."""
        if rect is None:
            return
        i0, i1, j0, j1 = rect
        m = lit[i0:i1, j0:j1]
        if not bool(m.any()):
            return
        tt = fn(po[i0:i1, j0:j1])
        blocked = m & torch.isfinite(tt)
        vis[i0:i1, j0:j1] = torch.where(blocked, torch.zeros_like(tt), vis[i0:i1, j0:j1])

    def _sky(self, dir_unit: torch.Tensor) -> torch.Tensor:
        """Sky radiance: horizon-to-zenith gradient with clouds on a plane high above."""
        prm = self.scene.params
        t_ = (dir_unit[..., 1] * 3.0).clamp(0, 1)[..., None]
        sky = self.t(prm["sky_horizon"]) * (1 - t_) + self.t(prm["sky_zenith"]) * t_
        up = dir_unit[..., 1].clamp_min(0.05)
        cp = dir_unit / up[..., None] * 2.0
        cloud = _smoothstep(0.1, 0.6, _noise(cp, 0.3, torch.zeros_like(up)) * prm["clouds"] * 2)[..., None]
        return sky * (1 - cloud) + 0.95 * cloud

    def _lidar_mask(self, xc, yc, g) -> torch.Tensor:
        """A 64-beam scanner (elevations −24.9°..+2°, like the HDL-64E behind KITTI's ground
        truth): pixels whose elevation is within half a pixel of a beam, 10% random drop-out."""
        el = torch.atan2(-yc, torch.sqrt(1 + xc * xc))
        beams = torch.linspace(math.radians(-24.9), math.radians(2.0), 64, device=xc.device)
        gap = (el[..., None] - beams).abs().amin(-1)
        on_beam = gap <= 0.5 / float(self.K[1, 1])
        keep = torch.rand(xc.shape, generator=g).to(xc.device) > 0.1
        return on_beam & keep

    def _texture(self, labels, albedo, p, n, fp):
        """Albedo × procedural pattern per class, evaluated only on that class's pixels."""
        sc, prm = self.scene, self.scene.params
        out = albedo.clone()
        dev = p.device

        def apply(name, fn):
            m = labels == CLASS_ID[name]
            if not bool(m.any()):
                return
            pm, nm, fm, am = p[m], n[m], fp[m], albedo[m]
            out[m] = fn(pm, nm, fm, am, pm[:, 0], pm[:, 1], pm[:, 2])

        if sc.family == "indoor":
            per = prm["floor_period"]

            def floor(p, n, fp, a, x, y, z):
                if prm["floor_pattern"] == 0:      # tiles with grout
                    grout = torch.maximum(_lines(x, per, 0.015, fp), _lines(z, per, 0.015, fp))
                    v = (1 + 0.08 * _noise(p, 2.0, fp)) * (1 - 0.45 * grout)
                elif prm["floor_pattern"] == 1:    # planks along z with grain
                    grout = _lines(x, per / 3, 0.006, fp)
                    grain = _noise(p * torch.tensor([8.0, 1.0, 0.5], device=dev), 1.0, fp * 8)
                    v = (1 + 0.18 * grain) * (1 - 0.4 * grout)
                else:                              # carpet
                    v = 1 + 0.25 * _noise(p, 6.0, fp)
                return a * v[:, None]

            def wall(p, n, fp, a, x, y, z):
                v = 1 + 0.05 * _noise(p, 1.5, fp)
                if prm["wall_stripes"]:
                    u = torch.where(n[:, 0].abs() > 0.5, z, x)
                    v = v * (1 - 0.12 * _lines(u, prm["wall_period"] * 2, prm["wall_period"], fp))
                v = v * (1 - 0.35 * _band(y, -1.0, 0.1, fp))  # skirting board
                out = a * v[:, None]
                for dec in prm["decor"]:
                    ax = dec["axis"]
                    on = (p[:, ax] - dec["offset"]).abs() < 1e-3
                    u = z if ax == 0 else x
                    cov = _band(u, *dec["u"], fp) * _band(y, *dec["y"], fp) * on.float()
                    if dec["kind"] == "window":  # bright panes with a cross bar
                        mid_u, mid_y = sum(dec["u"]) / 2, sum(dec["y"]) / 2
                        bar = torch.maximum(_band(u, mid_u - 0.03, mid_u + 0.03, fp), _band(y, mid_y - 0.03, mid_y + 0.03, fp))
                        col = self.t(dec["colour"]) * (1 - 0.6 * bar)[:, None] * 1.4
                    else:  # door / picture: a darker frame around the panel
                        inner = _band(u, dec["u"][0] + 0.05, dec["u"][1] - 0.05, fp) * _band(y, dec["y"][0] + 0.05, dec["y"][1] - 0.05, fp)
                        col = self.t(dec["colour"]) * (0.6 + 0.4 * inner)[:, None] * (1 + 0.1 * _noise(p, 3.0, fp))[:, None]
                    out = out * (1 - cov[:, None]) + col * cov[:, None]
                return out

            apply("floor", floor)
            apply("wall", wall)
            apply("ceiling", lambda p, n, fp, a, x, y, z: a * (1 + 0.03 * _noise(p, 1.0, fp))[:, None])
            apply("box", lambda p, n, fp, a, x, y, z: a * (1 + 0.12 * _noise(
                p * torch.tensor([1.0, 12.0, 1.0], device=dev), 1.0, fp * 12))[:, None])
            apply("sphere", lambda p, n, fp, a, x, y, z: a * (1 + 0.15 * _noise(p, 4.0, fp))[:, None])
        else:
            rh = prm["road_half"]

            def road(p, n, fp, a, x, y, z):
                base = self.t(prm["road_col"]) * (1 + 0.15 * _noise(p, 8.0, fp))[:, None]
                centre = _band(x, -0.075, 0.075, fp) * _lines(z, 6.0, 3.0, fp)
                edges = _band(x, rh - 0.35, rh - 0.2, fp) + _band(x, -rh + 0.2, -rh + 0.35, fp)
                mark = (centre + edges).clamp(0, 1)[:, None]
                return base * (1 - mark) + 0.9 * mark

            def sidewalk(p, n, fp, a, x, y, z):
                per = prm["paving"]
                grout = torch.maximum(_lines(x, per, 0.02, fp), _lines(z, per, 0.02, fp))
                v = (1 + 0.08 * _noise(p, 3.0, fp)) * (1 - 0.3 * grout)
                return self.t(prm["sidewalk_col"]) * v[:, None]

            def ground(p, n, fp, a, x, y, z):
                v = 1 + 0.35 * _noise(p, 5.0, fp) + 0.15 * _noise(p, 0.3, fp, 1.0)
                return self.t(prm["ground_col"]) * v[:, None]

            def building(p, n, fp, a, x, y, z):
                pw, ph = prm["window_period"]
                u = torch.where(n[:, 0].abs() > 0.5, z, x)
                win = _lines(u, pw, pw * prm["window_fill"], fp) * _lines(y - 3.5, ph, ph * 0.5, fp)
                win = win * (y > 3.0).float() * (n[:, 1].abs() < 0.5).float()
                glass = torch.tensor([0.15, 0.2, 0.28], device=dev) * (1 + 0.5 * _noise(p, 0.2, fp))[:, None]
                base = a * (1 + 0.06 * _noise(p, 2.0, fp))[:, None]
                return base * (1 - win[:, None]) + glass * win[:, None]

            apply("road", road)
            apply("sidewalk", sidewalk)
            apply("ground", ground)
            apply("building", building)
            apply("vegetation", lambda p, n, fp, a, x, y, z: a * (1 + 0.45 * _noise(p, 6.0, fp))[:, None])
            apply("vehicle", lambda p, n, fp, a, x, y, z: a * (1 + 0.05 * _noise(p, 2.0, fp))[:, None])
        return out.clamp(0, 1.5)


CACHE_ENV = "DABENCH_SYNTHETIC_CACHE"
_CACHE_KEYS = ("image", "depth", "valid", "labels", "sky", "intrinsics")


@functools.lru_cache(maxsize=1)
def renderer_version() -> str:
    """Hash of this module's source: the render cache's namespace (any change invalidates it)."""
    return hashlib.sha256(Path(__file__).read_bytes()).hexdigest()[:16]


class RenderCache:
    """Rendered samples on disk, one uncompressed ``.npz`` per (family, size, sparse, seed)."""

    def __init__(self, root):
        self.root = Path(root).expanduser() / renderer_version()

    def path(self, family: str, seed: int, size: tuple[int, int], sparse: bool) -> Path:
        return self.root / f"{family}-{size[0]}x{size[1]}{'-sparse' if sparse else ''}" / f"{int(seed)}.npz"

    def load(self, family: str, seed: int, size: tuple[int, int], sparse: bool) -> dict[str, np.ndarray] | None:
        try:
            with np.load(self.path(family, seed, size, sparse), allow_pickle=False) as z:
                return {k: z[k] for k in _CACHE_KEYS}
        except FileNotFoundError:
            return None
        except (OSError, ValueError, KeyError, zipfile.BadZipFile, EOFError):
            return None  # unreadable / partial entry: render again (and overwrite it)

    def store(self, family: str, seed: int, size: tuple[int, int], sparse: bool, arrays: dict) -> None:
        path = self.path(family, seed, size, sparse)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.stem}.{os.getpid()}.tmp.npz")
        np.savez(tmp, **{k: arrays[k] for k in _CACHE_KEYS})
        os.replace(tmp, path)  # atomic: concurrent readers see the old entry or the whole new one


def resolve_cache(cache_dir=None) -> RenderCache | None:
    """``cache_dir`` (a path, or False to disable), else ``$DABENCH_SYNTHETIC_CACHE``, else no cache."""
    if cache_dir is False:
        return None
    if cache_dir is None:
        cache_dir = os.environ.get(CACHE_ENV) or None
    return RenderCache(cache_dir) if cache_dir else None


def _render_numpy(family: str, seed: int, size: tuple[int, int], sparse: bool, device,
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


def render_scene(scene: Scene, size: tuple[int, int], *, sparse: bool = False, device="cpu") -> dict[str, torch.Tensor]:
    """Render one scene at ``size = (H, W)``; returns torch tensors (see ``render_batch``)."""
    return _Renderer(scene, size, device).render(sparse=sparse)


def render_batch(family: str, seeds, size: tuple[int, int] = (98, 126), *, sparse: bool = False,
                 device=None, as_tensor: bool = False, cache_dir=None) -> dict:
    """Render the scenes of ``seeds`` and stack them.

    Returns ``image`` uint8 B×H×W×3, ``depth`` float32 B×H×W (planar metres, 0 where invalid),
    ``valid`` bool, ``labels`` int64 (ids into ``SEMANTIC_CLASSES``), ``sky`` bool,
    ``intrinsics`` float32 B×3×3 and ``seeds`` int64 B. numpy arrays by default; torch tensors on
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
        arrs = [_render_numpy(family, int(s), size, sparse, dev, cache) for s in seeds]
        if not arrs:
            raise ConfigError("render_batch needs at least one seed")
        outs = [{k: torch.from_numpy(a[k]) for k in _CACHE_KEYS} for a in arrs]
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
        """One dabench sample dict (numpy arrays) for scene ``seed``."""
        if int(seed) < 0:
            raise ConfigError(f"synthetic scene seed must be >= 0, got {seed}")
        s = _render_numpy(self.family, int(seed), self.size, self.sparse, self.device, self.cache)
        s["name"] = name or f"synthetic-{self.family}-{seed}"
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
