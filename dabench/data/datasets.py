"""Dataset classes: one reader per benchmark layout, chosen by the card's ``reader`` field.

This module holds ``READERS``, ``build_dataset``, the synthetic reader and ``FileDepthDataset``, the
base of the file readers (the evaluation benchmarks' in ``eval_sets``, the training sets' in
``train_sets``, DA-2K in ``da2k``, ScanNet in ``scannet``).

``build_dataset`` loads the card, resolves the split and data root and hands them to the reader
registered in ``READERS``. File-based readers list their entries from the split file, check that
every file exists (missing -> ``MissingFileError`` naming the entry, or skipped and counted with
``skip_missing=True``) and read lazily in ``__getitem__``.
"""
from __future__ import annotations

import os

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from dabench.data.cards import load_card, read_split_file, resolve_split, split_file_path
from dabench.errors import ConfigError, DataError, MissingFileError, excerpt
from dabench.provenance import data_root as _data_root
from dabench.registry import Registry

READERS = Registry("dataset reader")


def build_dataset(name: str, split: str | None = None, data_root=None, limit: int | None = None,
                  skip_missing: bool = False, **kw: Any) -> torch.utils.data.Dataset:
    """The dataset ``name`` (a card in ``dabench/configs/datasets/``) for ``split`` (default: the card's).

    ``data_root``: folder holding the real datasets (default ``$DABENCH_DATA``); the card's ``root``
    is relative to it. ``limit``: keep the first N entries. ``skip_missing``: skip (and count in
    ``.skipped_missing``) split entries whose files are absent instead of raising. Extra keywords go
    to the reader (synthetic: ``num_samples``, ``size=(H, W)``, ``seed``, ``sparse``; file readers:
    ``depth_range=(min, max)`` or None to keep the reader's own validity only).
    """
    card = load_card(name)
    if card["task"] == "segmentation":
        raise ConfigError(
            f"dataset {excerpt(name)} is a segmentation set read through mmsegmentation, not build_dataset; "
            f"use `dabench finetune seg --dataset {name}` (layout: datasets/{name}.yaml notes)")
    if limit is not None and int(limit) < 0:
        raise ConfigError(f"limit must be >= 0, got {limit}")
    split = resolve_split(card, split)
    reader = READERS.get(card["reader"])
    return reader.from_card(card, split=split, data_root=data_root, limit=limit, skip_missing=skip_missing, **kw)


def dataset_available(name: str, data_root=None) -> bool:
    """True for synthetic sets; for real sets, whether the data root, the card's folder and the
    split files exist (files named in the splits are checked by ``dabench data check``)."""
    card = load_card(name)
    if card["reader"] == "synthetic":
        return True
    if card["task"] == "segmentation":
        root = _data_root(data_root)
        return bool(root and card["root"] and (root / card["root"]).is_dir())
    root = _data_root(data_root)
    if root is None or card["root"] is None or not (root / card["root"]).is_dir():
        return False
    if card.get("annotations") and not (root / card["root"] / card["annotations"]).is_file():
        return False
    return all(split_file_path(card, s).is_file() for s, f in card["split_file"].items() if f)


def dataset_root(card: dict, data_root=None) -> Path:
    """``<data root>/<card root>``; a ``MissingFileError`` naming both when it does not exist."""
    root = _data_root(data_root)
    if root is None:
        raise MissingFileError(
            f"dataset {excerpt(card['name'])} needs a data root: pass --data-root DIR or set DABENCH_DATA "
            f"(expected {card['root']}/ inside it)")
    path = root / card["root"]
    if not path.is_dir():
        raise MissingFileError(f"dataset {excerpt(card['name'])}: folder {path} does not exist (data root {root})")
    return path


# ----------------------------------------------------------------------------------------
# Synthetic
# ----------------------------------------------------------------------------------------

class _SyntheticReader:
    @staticmethod
    def from_card(card, split, data_root=None, limit=None, skip_missing=False, **kw):
        from dabench.data.synthetic import SyntheticDataset

        allowed = {"num_samples", "size", "seed", "sparse"}
        unknown = set(kw) - allowed
        if unknown:
            raise ConfigError(f"synthetic dataset {excerpt(card['name'])}: unknown option(s) {', '.join(sorted(unknown))}; "
                              f"valid: {', '.join(sorted(allowed))}")
        n = kw.get("num_samples")
        n = int(card["num_samples"][split] if n is None else n)
        if limit is not None:
            n = min(n, int(limit))
        size = tuple(kw.get("size") or card.get("size") or (98, 126))
        seed = int(kw.get("seed", card.get("seed", 0)) or 0)
        sparse = bool(kw.get("sparse", card.get("sparse", False)))
        card = dict(card, num_samples=dict(card["num_samples"], **{split: n}), size=list(size), seed=seed, sparse=sparse)
        return SyntheticDataset(card["family"], num_samples=n, size=size, seed=seed, split=split, sparse=sparse, card=card)


READERS.register("synthetic", _SyntheticReader)


# ----------------------------------------------------------------------------------------
# File-based readers
# ----------------------------------------------------------------------------------------

@dataclass
class Entry:
    """One split entry: the files of one sample (absolute paths) and what the split knows."""

    name: str
    image: Path
    depth: tuple[Path, ...]
    intrinsics: np.ndarray | None = None
    extra: dict = field(default_factory=dict)

    def files(self) -> list[Path]:
        return [self.image, *self.depth]


def read_image(path: Path) -> np.ndarray:
    """RGB uint8 H×W×3 from a PNG/JPEG/...: the header is checked against the pixel cap
    (``dabench.data.formats.max_pixels``) before the image is decoded, once; ``DataError`` naming the
    file when it is too large or cannot be decoded."""
    import cv2

    from dabench.data.formats import decode_image_file

    img = decode_image_file(path, cv2.IMREAD_COLOR, "image file")
    return cv2.cvtColor(img, cv2.COLOR_BGR2RGB)  # the same bytes as img[..., ::-1], in one SIMD pass


def _leaves(path: Path, root: Path) -> bool:
    """``path`` lies outside ``root`` lexically (``..``, absolute elsewhere). Symlinks are not resolved:
    a dataset folder may link to another disk."""
    rel = os.path.relpath(os.path.abspath(path), os.path.abspath(root))
    return rel == ".." or rel.startswith(".." + os.sep) or os.path.isabs(rel)


class FileDepthDataset(torch.utils.data.Dataset):
    """Base class of the readers of real benchmarks. Subclasses implement ``entries(card, split,
    root)`` and ``read_depth(entry) -> (depth, valid)``."""

    def __init__(self, card: dict, split: str, root: Path, entries, limit=None,
                 skip_missing: bool = False, depth_range="card"):
        self.card, self.split, self.root = card, split, Path(root)
        # readers may return (entries, counts), e.g. KITTI's rows without ground truth
        entries, self.counts = entries if isinstance(entries, tuple) else (entries, {})
        if limit is not None:
            entries = entries[: int(limit)]
        kept, self.missing = [], []
        for e in entries:
            outside = [p for p in e.files() if _leaves(p, self.root)]
            if outside:  # a split list naming ../../x: never read files outside the dataset folder
                raise DataError(f"dataset {excerpt(card['name'])} split {excerpt(split)}: entry {excerpt(e.name)} names {outside[0]}, "
                                f"outside the dataset folder {self.root} (split lists hold paths relative to it, "
                                "without '..')")
            missing = [p for p in e.files() if not p.is_file()]
            if missing:
                if not skip_missing:
                    raise MissingFileError(
                        f"dataset {excerpt(card['name'])} split {excerpt(split)}: entry {excerpt(e.name)} lacks file {missing[0]} "
                        f"(pass --skip-missing to skip and count such entries)")
                self.missing.append((e.name, missing[0]))
                continue
            kept.append(e)
        self.entries = kept
        self.skipped_missing = len(self.missing)
        if depth_range == "card":
            depth_range = (float(card["min_depth"]), float(card["max_depth"]))
        self.depth_range = depth_range

    @classmethod
    def from_card(cls, card, split, data_root=None, limit=None, skip_missing=False, depth_range="card", **kw):
        if kw:
            raise ConfigError(f"dataset {excerpt(card['name'])}: unknown option(s) {', '.join(sorted(kw))}")
        root = dataset_root(card, data_root)
        return cls(card, split, root, cls.entries(card, split, root), limit=limit, skip_missing=skip_missing,
                   depth_range=depth_range)

    @classmethod
    def entries(cls, card: dict, split: str, root: Path) -> list[Entry] | tuple[list[Entry], dict]:
        raise NotImplementedError

    def read_depth(self, entry: Entry) -> tuple[np.ndarray, np.ndarray]:
        raise NotImplementedError

    def read_sample(self, entry: Entry) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray | None]:
        """``(image, depth, valid, intrinsics or None)`` of one entry."""
        image = read_image(entry.image)
        depth, valid = self.read_depth(entry)
        return image, depth, valid, entry.intrinsics

    def __len__(self) -> int:
        return len(self.entries)

    def __getitem__(self, index: int) -> dict:
        e = self.entries[index]
        image, depth, valid, K = self.read_sample(e)
        if image.shape[:2] != depth.shape:
            raise DataError(f"dataset {excerpt(self.card['name'])} entry {excerpt(e.name)}: image {e.image} is "
                            f"{image.shape[0]}x{image.shape[1]} but depth {e.depth[0]} is "
                            f"{depth.shape[0]}x{depth.shape[1]} (H x W)")
        if self.depth_range is not None:
            lo, hi = self.depth_range
            valid = valid & (depth >= lo) & (depth <= hi)
        depth = np.where(valid, np.asarray(depth, dtype=np.float32), np.float32(0.0))
        sample = {"image": image, "depth": depth, "valid": valid, "name": e.name}
        if K is not None:
            sample["intrinsics"] = np.asarray(K, dtype=np.float32)
        return sample


def intrinsics_matrix(fx: float, fy: float, cx: float, cy: float) -> np.ndarray:
    """The 3×3 pinhole K (float32) of focal lengths and principal point in pixels."""
    return np.array([[fx, 0, cx], [0, fy, cy], [0, 0, 1]], dtype=np.float32)


def split_rows(card: dict, split: str) -> list[list[str]]:
    """The rows (whitespace-separated fields) of the card's split list for ``split``."""
    return read_split_file(split_file_path(card, split))


def scan_files(root: Path, pattern: str) -> list[Path]:
    """Files under ``root`` matching the glob ``pattern``, sorted (a stable sample order)."""
    return sorted(root.glob(pattern))


def relative_name(path: Path, root: Path) -> str:
    """``path`` relative to ``root`` in POSIX form (the sample name), or the whole path outside it."""
    try:
        return path.relative_to(root).as_posix()
    except ValueError:
        return path.as_posix()


def listed_or_scanned(card: dict, split: str, root: Path, pattern: str) -> list[str]:
    """Image names (relative to ``root``): the split file's first column when the card has one for
    ``split``, else every ``root.glob(pattern)`` match; ``MissingFileError`` naming the folder if none."""
    if card["split_file"].get(split):
        names = [r[0] for r in split_rows(card, split)]
    else:
        names = [relative_name(p, root) for p in scan_files(root, pattern)]
    if not names:
        raise MissingFileError(f"dataset {excerpt(card['name'])}: no {pattern} under {root}")
    return names


# The evaluation benchmarks' readers (dabench/data/eval_sets.py), imported on first use.
for _name, _cls in (("kitti", "KittiDataset"), ("nyu", "NyuDataset"), ("sintel", "SintelDataset"),
                    ("eth3d", "Eth3dDataset"), ("diode", "DiodeDataset"), ("ddad", "DdadDataset"),
                    ("sunrgbd", "SunRgbdDataset"), ("ibims", "IbimsDataset"), ("hypersim", "HypersimDataset"),
                    ("vkitti2", "Vkitti2Dataset")):
    READERS.register(_name, f"dabench.data.eval_sets:{_cls}")
READERS.register("da2k", "dabench.data.da2k:Da2kDataset")
READERS.register("scannet", "dabench.data.scannet:ScannetDataset")
