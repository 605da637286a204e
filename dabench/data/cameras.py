"""Camera files of the benchmarks: intrinsics (and Sintel's extrinsics) in dabench's convention (3×3 K
in pixels, integer coordinates at pixel centres). Every read is a regular file with a size cap; a corrupt
or truncated file raises ``DataError`` naming it."""
from __future__ import annotations

import struct

import numpy as np

from dabench.data.formats import SINTEL_TAG, existing_file, read_data_file
from dabench.errors import DataError


def read_sintel_cam(path) -> tuple[np.ndarray, np.ndarray]:
    """MPI Sintel ``.cam``: tag, then 3×3 intrinsics K and 3×4 extrinsics [R|t] as float64 row-major."""
    p = existing_file(path)
    data = read_data_file(p, "Sintel camera")
    if len(data) < 4 + 8 * 21:
        raise DataError(f"Sintel camera {p} is truncated: {len(data)} bytes, expected {4 + 8 * 21}")
    (tag,) = struct.unpack("<f", data[:4])
    if tag != np.float32(SINTEL_TAG):
        raise DataError(f"Sintel camera {p} has tag {tag!r}, expected {SINTEL_TAG}")
    vals = np.frombuffer(data, dtype="<f8", count=21, offset=4)
    return vals[:9].reshape(3, 3).copy(), vals[9:].reshape(3, 4).copy()


COLMAP_MAX_BYTES = 64 << 20  # a calibration text file larger than this is refused before reading


def read_colmap_intrinsics(cameras_txt, images_txt) -> dict[str, np.ndarray]:
    """``{image name: 3×3 K}`` from a COLMAP text model (ETH3D's ``cameras.txt`` + ``images.txt``).

    ``cameras.txt`` rows: ``CAMERA_ID MODEL WIDTH HEIGHT PARAMS...``; every model ETH3D ships (PINHOLE,
    THIN_PRISM_FISHEYE, ...) starts its parameters with ``fx fy cx cy`` (COLMAP's pixel-corner
    convention: dabench's K puts integer coordinates at pixel centres, so 0.5 is subtracted from cx, cy).
    ``images.txt``: ``IMAGE_ID QW QX QY QZ TX TY TZ CAMERA_ID NAME`` lines, each followed by a line of
    2-D points."""
    def lines(path):
        from dabench.safety import read_bounded

        p = existing_file(path)
        text = read_bounded(p, "COLMAP file", COLMAP_MAX_BYTES).decode("utf-8", "replace")  # regular, capped
        rows = [ln.strip() for ln in text.splitlines()]
        return p, rows

    p, rows = lines(cameras_txt)
    cams: dict[str, np.ndarray] = {}
    for ln in rows:
        if not ln or ln.startswith("#"):
            continue
        f = ln.split()
        try:
            fx, fy, cx, cy = (float(v) for v in f[4:8])
        except (ValueError, IndexError):
            raise DataError(f"{p}: expected 'CAMERA_ID MODEL WIDTH HEIGHT fx fy cx cy ...', got {ln!r}") from None
        if f[1] in ("SIMPLE_PINHOLE", "SIMPLE_RADIAL", "RADIAL", "SIMPLE_RADIAL_FISHEYE", "RADIAL_FISHEYE"):
            fy, cx, cy = fx, float(f[5]), float(f[6])  # one focal length: f cx cy ...
        cams[f[0]] = np.array([[fx, 0.0, cx - 0.5], [0.0, fy, cy - 0.5], [0.0, 0.0, 1.0]])
    p, rows = lines(images_txt)
    body = [ln for ln in rows if not ln.startswith("#")]
    out: dict[str, np.ndarray] = {}
    for ln in body[0::2]:  # every other line is the image's 2-D points
        f = ln.split()
        if len(f) < 10:
            continue
        if f[8] not in cams:
            raise DataError(f"{p}: image {f[9]!r} names camera {f[8]} that {cameras_txt} does not define")
        out[f[9]] = cams[f[8]]
    return out
