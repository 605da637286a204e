"""Camera and ray geometry of the synthetic world: the pinhole camera, ray entry into boxes and
spheres, and the pixel rectangles that objects project to (used to cull per-object ray tests)."""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch

# smallest ray parameter (metres) counted as a hit: keeps rays from re-hitting the surface they leave
EPS = 1e-4


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


def point_map(depth: np.ndarray, K: np.ndarray) -> np.ndarray:
    """H×W×3 camera-frame points (OpenCV axes, metres) of a planar depth map: pixel ``(i, j)`` at depth
    ``z`` is ``z * ((j - cx) / fx, (i - cy) / fy, 1)``, the ray the renderer casts (computed in float64)."""
    h, w = depth.shape
    K = np.asarray(K, dtype=np.float64)
    x = (np.arange(w) - K[0, 2]) / K[0, 0]
    y = (np.arange(h) - K[1, 2]) / K[1, 1]
    z = np.asarray(depth, dtype=np.float64)
    return np.stack([z * x[None, :], z * y[:, None], z], -1).astype(np.float32)


def project_rects(points: np.ndarray, cam: Camera, K: np.ndarray, size) -> list:
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


def box_corners(lo: np.ndarray, hi: np.ndarray) -> np.ndarray:
    """The 8 corners of each of N boxes (``lo``, ``hi``: N×3) as N×8×3."""
    return np.where(_CORNER_SEL[None], hi[:, None, :], lo[:, None, :])


def hit_box(origin, direction, lo, hi, inv=None):
    """Ray parameter of the entry into box [lo, hi] (inf where missed); origin is outside.
    ``inv``: precomputed ``1 / direction``."""
    if inv is None:
        inv = 1.0 / direction
    t1 = (lo - origin) * inv
    t2 = (hi - origin) * inv
    tn = torch.minimum(t1, t2).amax(-1)
    tf = torch.maximum(t1, t2).amin(-1)
    hit = (tf >= tn) & (tn > EPS)
    return torch.where(hit, tn, torch.full_like(tn, math.inf))


def hit_sphere(origin, direction, centre, radius):
    oc = origin - centre
    a = (direction * direction).sum(-1)
    b = (direction * oc).sum(-1)
    c = (oc * oc).sum(-1) - radius * radius
    disc = b * b - a * c
    t = (-b - disc.clamp_min(0).sqrt()) / a
    hit = (disc >= 0) & (t > EPS)
    return torch.where(hit, t, torch.full_like(t, math.inf))

