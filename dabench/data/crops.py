"""Evaluation crops of the depth benchmarks.

- ``garg`` (KITTI, Garg et al. 2016): rows 0.40810811·H–0.99189189·H, cols 0.03594771·W–0.96405229·W.
- ``eigen`` (NYUv2, Eigen et al. 2014): rows 45:471, cols 41:601 of a 480×640 image; other image
  sizes use the same fractions of H and W (images larger than 480×640 keep the absolute indices,
  as ZoeDepth/Depth Anything apply them to iBims, SUN RGB-D and HyperSim).
- ``kb`` (KITTI benchmark, Uhrig et al. 2017): the 352×1216 window at the bottom centre,
  top = H − 352, left = (W − 1216) // 2. ``kb+garg``: both (Garg on the full frame, as BTS/ZoeDepth
  evaluate a KB-cropped prediction pasted back into the full frame).
"""
from __future__ import annotations

import numpy as np

from dabench.errors import ConfigError, DataError

CROPS = ("none", "eigen", "garg", "kb", "kb+garg")
KB_HEIGHT, KB_WIDTH = 352, 1216
GARG_FRACTIONS = (0.40810811, 0.99189189, 0.03594771, 0.96405229)  # top, bottom, left, right
EIGEN_BOX_480x640 = (45, 471, 41, 601)                               # top, bottom, left, right


def garg_box(h: int, w: int) -> tuple[int, int, int, int]:
    t, b, l, r = GARG_FRACTIONS
    return int(t * h), int(b * h), int(l * w), int(r * w)


def eigen_box(h: int, w: int) -> tuple[int, int, int, int]:
    t, b, l, r = EIGEN_BOX_480x640
    if h >= 480 and w >= 640:
        return t, b, l, r
    return int(round(t / 480 * h)), int(round(b / 480 * h)), int(round(l / 640 * w)), int(round(r / 640 * w))


def kb_box(h: int, w: int) -> tuple[int, int, int, int]:
    if h < KB_HEIGHT or w < KB_WIDTH:
        raise DataError(f"KB crop needs an image of at least {KB_HEIGHT}x{KB_WIDTH}, got {h}x{w}")
    top, left = h - KB_HEIGHT, (w - KB_WIDTH) // 2
    return top, top + KB_HEIGHT, left, left + KB_WIDTH


def crop_mask(shape: tuple[int, int], crop: str) -> np.ndarray:
    """Bool H×W mask that is True inside the evaluation crop ``crop``."""
    h, w = int(shape[0]), int(shape[1])
    if crop not in CROPS:
        raise ConfigError(f"unknown eval crop {crop!r}; expected one of {', '.join(CROPS)}")
    mask = np.zeros((h, w), dtype=bool)
    if crop == "none":
        mask[:] = True
        return mask
    boxes = []
    if crop in ("kb", "kb+garg"):
        boxes.append(kb_box(h, w))
    if crop in ("garg", "kb+garg"):
        boxes.append(garg_box(h, w))
    if crop == "eigen":
        boxes.append(eigen_box(h, w))
    mask[:] = True
    for t, b, l, r in boxes:
        box = np.zeros((h, w), dtype=bool)
        box[t:b, l:r] = True
        mask &= box
    return mask


def apply_eval_crop(valid_mask: np.ndarray, crop: str):
    """``valid_mask`` restricted to the evaluation crop (numpy or torch, H×W or …×H×W)."""
    m = crop_mask(valid_mask.shape[-2:], crop)
    try:
        import torch

        if isinstance(valid_mask, torch.Tensor):
            return valid_mask & torch.as_tensor(m, device=valid_mask.device)
    except ImportError:  # pragma: no cover
        pass
    return np.asarray(valid_mask, dtype=bool) & m


def kb_crop(array):
    """The KITTI benchmark crop (352×1216, bottom centre) of an H×W or H×W×C array/tensor."""
    t, b, l, r = kb_box(array.shape[0], array.shape[1])
    return array[t:b, l:r]
