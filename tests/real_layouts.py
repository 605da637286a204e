"""Tiny datasets written in the real on-disk layouts (not fixtures of dabench's own making):

- Cityscapes: ``leftImg8bit/{split}/<city>/<city>_<seq>_<frame>_leftImg8bit.png`` and
  ``gtFine/{split}/<city>/..._gtFine_labelTrainIds.png`` (19 train ids, 255 ignore); 2:1 frames.
- ADE20K: ``ADEChallengeData2016/{images,annotations}/{training,validation}/ADE_<split>_<n>.{jpg,png}``
  (0 = other, 1..150); landscape and portrait 4:3 images of different sizes.
- NYUv2: ``sync/<scene>/rgb_<n>.jpg`` + ``sync_depth_<n>.png`` (uint16 millimetres) and
  ``official_splits/test/<scene>/...`` with the card's split-list format, at NYU's real 480x640
  (the Eigen evaluation crop is defined only for that frame size).

Segmentation images are at most 98 px on a side; each image has a simple learnable structure (bands of classes or a
depth ramp coloured by depth) so a few training steps can move the numbers.
"""
from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

CITYSCAPES_HW = (48, 96)  # 1024x2048 scaled down: 2:1


def _write(path: Path, arr: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    assert cv2.imwrite(str(path), arr), path


def _banded(h: int, w: int, ids: list[int], palette: dict[int, tuple[int, int, int]], rng) -> tuple[np.ndarray, np.ndarray]:
    """An RGB image of horizontal bands (one class each, with noise) and its label map."""
    bounds = np.linspace(0, h, len(ids) + 1).round().astype(int)
    shift = int(rng.integers(-h // 10, h // 10 + 1))
    lab = np.zeros((h, w), np.uint8)
    for k, c in enumerate(ids):
        lab[max(0, bounds[k] + (shift if k else 0)):bounds[k + 1] + (shift if k < len(ids) - 1 else 0)] = c
    img = np.zeros((h, w, 3), np.float32)
    for c, rgb in palette.items():
        img[lab == c] = rgb
    img = np.clip(img + rng.normal(0, 12, img.shape), 0, 255).astype(np.uint8)
    return img, lab


def write_cityscapes(data_root: Path, counts: dict[str, int] | None = None, seed: int = 0) -> Path:
    """``<data_root>/cityscapes`` with ``counts`` frames per split (default train 6, val 2)."""
    rng = np.random.default_rng(seed)
    root = Path(data_root) / "cityscapes"
    palette = {10: (70, 130, 180), 2: (70, 70, 70), 0: (128, 64, 128)}  # sky, building, road
    for split, n in (counts or {"train": 6, "val": 2}).items():
        city = {"train": "aachen", "val": "frankfurt"}.get(split, "bonn")
        for i in range(n):
            img, lab = _banded(*CITYSCAPES_HW, [10, 2, 0], palette, rng)
            lab[:, :2] = 255  # a little ignore, as the ego-vehicle / borders are in real frames
            stem = f"{city}_{i:06d}_000019"
            _write(root / "leftImg8bit" / split / city / f"{stem}_leftImg8bit.png", img[..., ::-1])
            _write(root / "gtFine" / split / city / f"{stem}_gtFine_labelTrainIds.png", lab)
    return root


def write_ade20k(data_root: Path, counts: dict[str, int] | None = None, seed: int = 0) -> Path:
    """``<data_root>/ade/ADEChallengeData2016`` with ``counts`` images per split (default training 6,
    validation 2); sizes alternate 63x84 (landscape 4:3) and 84x63 (portrait)."""
    rng = np.random.default_rng(seed)
    root = Path(data_root) / "ade" / "ADEChallengeData2016"
    palette = {6: (240, 240, 230), 1: (120, 120, 90), 4: (80, 50, 50)}  # raw ids: ceiling, wall, floor
    for split, n in (counts or {"training": 6, "validation": 2}).items():
        tag = "train" if split == "training" else "val"
        for i in range(n):
            h, w = (63, 84) if i % 2 == 0 else (84, 63)
            img, lab = _banded(h, w, [6, 1, 4], palette, rng)
            lab[-2:, :] = 0  # "other": ignored after reduce_zero_label
            stem = f"ADE_{tag}_{i + 1:08d}"
            _write(root / "images" / split / f"{stem}.jpg", img[..., ::-1])
            _write(root / "annotations" / split / f"{stem}.png", lab)
    return root


def write_nyu(data_root: Path, train: int = 6, test: int = 2, hw: tuple[int, int] = (480, 640),
              seed: int = 0) -> tuple[list[list[str]], list[list[str]]]:
    """``<data_root>/nyu`` (BTS layout): returns the train and test split-list rows
    (``rgb depth focal``) to put in the card's split files. Depth: a floor-to-wall ramp in
    millimetres (1-6 m), the image brightness follows inverse depth, a few holes (0 = invalid)."""
    rng = np.random.default_rng(seed)
    root = Path(data_root) / "nyu"
    h, w = hw
    rows: dict[str, list[list[str]]] = {"train": [], "test": []}
    for split, n, base in (("train", train, "sync"), ("test", test, "official_splits/test")):
        for i in range(n):
            scene = f"kitchen_{i:04d}" if split == "train" else "bathroom"
            far = rng.uniform(3.0, 6.0)
            depth = np.linspace(1.0, far, h)[:, None] * np.ones((1, w))
            depth *= 1 + 0.1 * np.sin(np.linspace(0, 3, w))[None]
            mm = (depth * 1000).astype(np.uint16)
            mm[rng.random((h, w)) < 0.02] = 0
            shade = (255 / depth).clip(0, 255)
            img = np.stack([shade, shade * 0.8, 255 - shade], -1)
            img = np.clip(img + rng.normal(0, 6, img.shape), 0, 255).astype(np.uint8)
            rgb, dep = f"{scene}/rgb_{i:05d}.jpg", f"{scene}/sync_depth_{i:05d}.png"
            _write(root / base / rgb, img[..., ::-1])
            _write(root / base / dep, mm)
            rows[split].append([("/" + rgb) if split == "train" else rgb, ("/" + dep) if split == "train" else dep,
                                "518.8579"])
    return rows["train"], rows["test"]
