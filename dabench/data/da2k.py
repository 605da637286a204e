"""DA-2K (Depth Anything V2's ordinal benchmark) and its synthetic stand-in.

On disk (DepthAnything/Depth-Anything-V2 ``DA-2K.md``): ``<data root>/da2k/annotations.json``, a JSON
object mapping an image path relative to ``<data root>/da2k/`` to a list of
``{"point1": [h, w], "point2": [h, w], "closer_point": "point1"}``; the scene type is the first
folder of the path (indoor, outdoor, non_real, transparent_reflective, adverse_style, aerial,
underwater, object).

The annotation file comes from outside: it is size-capped before parsing, every path must stay
inside the dataset folder (no absolute paths, no ``..``, no symlink leaving it), every point is a
pair of non-negative integers checked against the decoded image, and the image's pixel count is
read from its header and capped before it is decoded. Anything else is one ``DataError`` naming
the file and what was expected.

Sample: ``image`` uint8 H×W×3, ``pairs`` int64 N×4 ``(h1, w1, h2, w2)``, ``closer`` int64 N (0: point
1 is closer), ``scene`` str, ``name`` str.
"""
from __future__ import annotations

import json
from pathlib import Path, PurePosixPath

import numpy as np
import torch

from dabench.errors import ConfigError, DataError, MissingFileError, excerpt

SCENE_TYPES = ("indoor", "outdoor", "non_real", "transparent_reflective", "adverse_style", "aerial", "underwater",
               "object")
MAX_ANNOTATION_BYTES = 16 * 2**20  # the official file is well under 1 MiB


def _point(v, where: str) -> tuple[int, int]:
    if (not isinstance(v, list) or len(v) != 2
            or not all(isinstance(x, int) and not isinstance(x, bool) and 0 <= x < 2**31 for x in v)):
        raise DataError(f"{where}: expected [h, w], two non-negative integers (pixel rows/columns), got {excerpt(v)}")
    return int(v[0]), int(v[1])


def safe_relative_path(root: Path, rel, where: str) -> Path:
    """``root / rel`` when ``rel`` is a relative POSIX path that stays inside ``root`` (symlinks
    resolved); otherwise a ``DataError`` naming ``where``."""
    if not isinstance(rel, str) or not rel or "\\" in rel or "\x00" in rel:
        raise DataError(f"{where}: image path {excerpt(rel)} must be a non-empty relative POSIX path")
    p = PurePosixPath(rel)
    if p.is_absolute() or ".." in p.parts:
        raise DataError(f"{where}: image path {excerpt(rel)} must stay inside the dataset folder (no absolute path, no '..')")
    full = root / Path(*p.parts)
    try:
        inside = full.resolve().is_relative_to(root.resolve())
    except OSError:
        inside = False
    if not inside:
        raise DataError(f"{where}: image path {excerpt(rel)} leaves the dataset folder {root}")
    return full


def read_annotations(path: Path, root: Path) -> list[dict]:
    """Validated entries ``{"name", "path", "scene", "pairs" (N×4), "closer" (N)}`` of a DA-2K
    ``annotations.json``, in file order."""
    from dabench.safety import read_text_bounded

    path = Path(path)
    if not path.exists():
        raise MissingFileError(f"DA-2K annotation file {path} does not exist")
    text = read_text_bounded(path, "DA-2K annotation file", MAX_ANNOTATION_BYTES, expected="a JSON object")
    try:
        data = json.loads(text)
    except json.JSONDecodeError as e:
        raise DataError(f"{path}: not valid UTF-8 JSON ({e})") from None
    except RecursionError:
        raise DataError(f"{path}: not a DA-2K annotation file (JSON nested too deeply to read)") from None
    if not isinstance(data, dict):
        raise DataError(f"{path}: expected a JSON object mapping image paths to pair lists, got {type(data).__name__}")
    out = []
    for rel, pairs in data.items():
        where = f"{path}: {excerpt(rel)}"
        full = safe_relative_path(root, rel, f"{path}")
        parts = PurePosixPath(rel).parts
        if len(parts) < 2:
            raise DataError(f"{where}: expected <scene type>/<...>/<image>; the first folder names the scene type")
        if not isinstance(pairs, list) or not pairs:
            raise DataError(f"{where}: expected a non-empty list of point pairs")
        rows, closer = [], []
        for i, a in enumerate(pairs):
            if not isinstance(a, dict) or not {"point1", "point2", "closer_point"} <= set(a):
                raise DataError(f"{where} pair {i}: expected {{'point1': [h, w], 'point2': [h, w], "
                                f"'closer_point': 'point1'|'point2'}}")
            if a["closer_point"] not in ("point1", "point2"):
                raise DataError(f"{where} pair {i}: closer_point must be 'point1' or 'point2', got {excerpt(a['closer_point'])}")
            rows.append(_point(a["point1"], f"{where} pair {i} point1") + _point(a["point2"], f"{where} pair {i} point2"))
            closer.append(0 if a["closer_point"] == "point1" else 1)
        out.append({"name": rel, "path": full, "scene": parts[0], "pairs": np.asarray(rows, dtype=np.int64),
                    "closer": np.asarray(closer, dtype=np.int64)})
    if not out:
        raise DataError(f"{path}: no annotated images")
    return out


def read_capped_image(path: Path) -> np.ndarray:
    """RGB uint8 of ``path``; its header's pixel count is checked before decoding."""
    from dabench.data.datasets import read_image

    return read_image(path)  # header checked against the pixel cap (dabench.data.formats.max_pixels) first


class Da2kDataset(torch.utils.data.Dataset):
    """DA-2K images with their annotated pairs (see the module doc)."""

    def __init__(self, card: dict, split: str, root: Path, entries: list[dict], limit=None, skip_missing=False):
        self.card, self.split, self.root = card, split, Path(root)
        if limit is not None:
            entries = entries[: int(limit)]
        self.missing = [e["name"] for e in entries if not e["path"].is_file()]
        if self.missing and not skip_missing:
            raise MissingFileError(f"dataset {excerpt(card['name'])}: image {self.root / self.missing[0]} listed in the "
                                   "annotations does not exist (pass --skip-missing to skip and count such images)")
        self.entries = [e for e in entries if e["path"].is_file()]
        self.skipped_missing = len(self.missing)

    @classmethod
    def from_card(cls, card, split, data_root=None, limit=None, skip_missing=False, **kw):
        from dabench.data.datasets import dataset_root

        kw.pop("depth_range", None)  # no dense depth here
        if kw:
            raise ConfigError(f"dataset {excerpt(card['name'])}: unknown option(s) {', '.join(sorted(kw))}")
        root = dataset_root(card, data_root)
        entries = read_annotations(root / card.get("annotations", "annotations.json"), root)
        return cls(card, split, root, entries, limit=limit, skip_missing=skip_missing)

    def __len__(self) -> int:
        return len(self.entries)

    def __getitem__(self, index: int) -> dict:
        e = self.entries[index]
        image = read_capped_image(e["path"])
        h, w = image.shape[:2]
        p = e["pairs"]
        if p[:, [0, 2]].max() >= h or p[:, [1, 3]].max() >= w:
            raise DataError(f"{self.root / 'annotations.json'}: {excerpt(e['name'])} has a point outside its {h}x{w} image "
                            "(points are [h, w], 0-based)")
        return {"image": image, "pairs": p, "closer": e["closer"], "scene": e["scene"], "name": e["name"]}


class SyntheticPairs(torch.utils.data.Dataset):
    """Pairs sampled from a synthetic dataset's exact depth: the stand-in when DA-2K is absent.

    Per image, ``pairs_per_image`` pairs of valid pixels whose depths differ by at least
    ``min_ratio`` (so the order is unambiguous, as DA-2K's annotators only kept clear pairs); point 1
    is the closer one, as in DA-2K. Deterministic in (``seed``, index)."""

    def __init__(self, base, pairs_per_image: int = 8, min_ratio: float = 1.05, seed: int = 0, scene: str | None = None):
        self.base, self.k, self.min_ratio, self.seed = base, int(pairs_per_image), float(min_ratio), int(seed)
        self.scene = scene or str((getattr(base, "card", None) or {}).get("name", "synthetic"))
        self.card = getattr(base, "card", None)
        self.skipped_missing = 0

    def __len__(self) -> int:
        return len(self.base)

    def __getitem__(self, index: int) -> dict:
        s = self.base[index]
        depth = np.asarray(s["depth"], dtype=np.float64)
        valid = np.isfinite(depth) & (depth > 0)
        if s.get("valid") is not None:
            valid &= np.asarray(s["valid"], dtype=bool)
        ys, xs = np.nonzero(valid)
        rng = np.random.default_rng([self.seed, index])
        rows = []
        for _ in range(50 * self.k):  # rejection sampling of clearly ordered pairs
            if len(rows) == self.k or len(ys) < 2:
                break
            i, j = rng.integers(len(ys), size=2)
            d1, d2 = depth[ys[i], xs[i]], depth[ys[j], xs[j]]
            if max(d1, d2) < self.min_ratio * min(d1, d2):
                continue
            a, b = (i, j) if d1 < d2 else (j, i)  # point 1 = the closer one
            rows.append((ys[a], xs[a], ys[b], xs[b]))
        pairs = np.asarray(rows, dtype=np.int64).reshape(-1, 4)
        return {"image": s["image"], "pairs": pairs, "closer": np.zeros(len(pairs), dtype=np.int64),
                "scene": self.scene, "name": str(s.get("name", index))}
