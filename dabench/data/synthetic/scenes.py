"""Scene description of the synthetic world: semantic classes, the two families (indoor rooms,
outdoor streets) and ``make_scene(family, seed)``, which draws a camera, a light and primitives from
``numpy.random.default_rng(seed)``."""
from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from dabench.data.synthetic.geometry import Camera
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
