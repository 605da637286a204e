"""Segmentation sets on disk (Cityscapes, ADE20K), as mmseg reads them: for ``dabench data check``.

The card's ``segmentation`` block names each split's image and label folders (under the card's
``root``) and the file suffixes; an image ``<img_dir>/<rel><img_suffix>`` pairs with the label map
``<seg_dir>/<rel><seg_map_suffix>`` (mmseg's ``BaseSegDataset`` rule). Training and evaluation read
the files through mmseg itself (``dabench.finetune.seg``); this module only verifies them.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from dabench.errors import DabenchError, DataError, MissingFileError


def split_folders(card: dict, root: Path, split: str) -> tuple[Path, Path]:
    """``(image folder, label folder)`` of ``split`` under ``root`` (the dataset's own folder)."""
    img, ann = card["segmentation"]["folders"][split]
    return Path(root) / img, Path(root) / ann


def seg_pairs(card: dict, root: Path, split: str) -> list[tuple[Path, Path]]:
    """Every ``(image, label map)`` of ``split``, sorted as mmseg lists them (label paths may not exist)."""
    seg = card["segmentation"]
    img_dir, ann_dir = split_folders(card, root, split)
    if not img_dir.is_dir():
        raise MissingFileError(f"dataset {card['name']!r} split {split!r}: folder {img_dir} does not exist")
    out = []
    for img in sorted(img_dir.rglob(f"*{seg['img_suffix']}")):
        rel = str(img.relative_to(img_dir))[: -len(seg["img_suffix"])]
        out.append((img, ann_dir / (rel + seg["seg_map_suffix"])))
    return out


def check_seg_split(card: dict, root: Path, split: str, limit: int | None = None) -> dict:
    """Read every image and label map of ``split``: sizes agree, labels are single-channel ids inside the
    card's classes (after ``reduce_zero_label``) or 255. Returns counts, image sizes, the label ids seen
    and a list of problems (each naming its file)."""
    from dabench.data.datasets import read_image
    from dabench.data.formats import decode_png

    seg = card["segmentation"]
    n_classes, reduce_zero = int(seg["num_classes"]), bool(seg["reduce_zero_label"])
    pairs = seg_pairs(card, root, split)
    if limit is not None:
        pairs = pairs[: int(limit)]
    res = {"entries": len(pairs), "read": 0, "missing": 0, "unreadable": 0, "sizes": {}, "labelled": 0,
           "pixels": 0, "ids": set(), "problems": []}
    for img_path, ann_path in pairs:
        if not ann_path.is_file():
            res["missing"] += 1
            res["problems"].append(f"{split}: image {img_path} has no label map {ann_path}")
            continue
        try:
            img = read_image(img_path)
            lab = decode_png(ann_path, "label map")
            if lab.ndim != 2:
                raise DataError(f"label map {ann_path}: expected a single-channel PNG of class ids, got shape "
                                f"{lab.shape}")
            if lab.shape != img.shape[:2]:
                raise DataError(f"label map {ann_path}: size {lab.shape[1]}x{lab.shape[0]} differs from its image "
                                f"{img_path} ({img.shape[1]}x{img.shape[0]})")
        except DabenchError as e:
            res["unreadable"] += 1
            res["problems"].append(f"{split}: {e.message}")
            continue
        ids = lab.astype(np.int64)
        if reduce_zero:  # mmseg: 0 ("other") -> 255, the rest shift down by one
            ids = np.where(ids == 0, 255, ids - 1)
        present = set(np.unique(ids).tolist())
        bad = sorted(i for i in present if i != 255 and not 0 <= i < n_classes)
        if bad:
            res["problems"].append(f"{split}: label map {ann_path} holds class ids {bad[:10]} outside the "
                                   f"{n_classes} classes" + (" (after reduce_zero_label)" if reduce_zero else ""))
        res["read"] += 1
        h, w = img.shape[:2]
        res["sizes"][(h, w)] = res["sizes"].get((h, w), 0) + 1
        res["labelled"] += int((ids != 255).sum())
        res["pixels"] += ids.size
        res["ids"] |= present - {255}
    if not pairs:
        res["problems"].append(f"{split}: no image ending in {seg['img_suffix']!r} under "
                               f"{split_folders(card, root, split)[0]}")
    return res
