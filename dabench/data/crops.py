"""Evaluation crops of the depth benchmarks: the one list of crop names (``CROPS``) and their boxes.

Each crop is defined for some frame sizes only; any other size is a ``DataError`` naming the crop,
the size and what it expects (a crop never silently rescales to a frame it was not made for).

- ``none``: every pixel.
- ``eigen`` (NYUv2, Eigen et al. 2014): rows 45:471, cols 41:601 of a 480×640 frame; any other size
  is refused.
- ``eigen_zoedepth``: the same absolute window on a frame of any size, clipped at its border, as
  ZoeDepth's ``compute_metrics`` applies it to SUN RGB-D (427×561 up to 531×730 frames), iBims and
  HyperSim (768×1024) (isl-org/ZoeDepth zoedepth/utils/misc.py:239-241, the size assert commented
  out). Refused only when the window would be empty.
- ``garg`` (KITTI, Garg et al. 2016): rows ``int(0.40810811·H):int(0.99189189·H)``, cols
  ``int(0.03594771·W):int(0.96405229·W)`` (ZoeDepth misc.py:231-232). Fractions of a landscape
  frame (W > H): KITTI, and the wide frames ZoeDepth also crops with it (DDAD, DIODE outdoor).
- ``kitti_eigen`` (KITTI, Eigen et al. 2014): rows ``int(0.3324324·H):int(0.91351351·H)``, cols
  ``int(0.0359477·W):int(0.96405229·W)`` (ZoeDepth misc.py:237-238 with dataset kitti; Marigold
  src/dataset/kitti_dataset.py:124-128). Landscape frames only.
- ``kb`` (KITTI benchmark, Uhrig et al. 2017): the 352×1216 window at the bottom centre,
  top = H − 352, left = int((W − 1216) / 2). Needs a frame of at least 352×1216.
- ``kb+garg`` (ZoeDepth; Depth Anything's metric tables): the frame is first cut to the KB window
  (ZoeDepth zoedepth/data/data_mono.py:408-417, vkitti2.py:139-149), then the Garg fractions are
  taken *of that 352×1216 window* (misc.py:226-232 runs on the cropped ground truth).
- ``kb+garg_bts`` (cleinc/bts utils/eval_with_pngs.py:186-199): the KB window, scored with the Garg
  box of the *full* frame (BTS pastes the KB-cropped prediction back into the full frame before
  cropping; on KITTI-sized frames that box lies inside the window). dabench's earlier ``kb+garg``.
- ``kb+kitti_eigen`` (Marigold's ``kitti_bm_crop: true, valid_mask_crop: eigen``,
  config/dataset_depth/data_kitti_eigen_test.yaml): the KB window, then the KITTI Eigen fractions
  of the window.

Crops whose name starts with ``kb`` change what the network sees: the runner cuts image, depth and
mask to the KB window before inference (``window_box``) and scores with ``window_crop_mask``.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from dabench.errors import ConfigError, DataError

KB_HEIGHT, KB_WIDTH = 352, 1216
GARG_FRACTIONS = (0.40810811, 0.99189189, 0.03594771, 0.96405229)        # top, bottom, left, right
KITTI_EIGEN_FRACTIONS = (0.3324324, 0.91351351, 0.0359477, 0.96405229)   # top, bottom, left, right
EIGEN_BOX_480x640 = (45, 471, 41, 601)                                   # top, bottom, left, right
NYU_SIZE = (480, 640)


@dataclass(frozen=True)
class CropSpec:
    """One named evaluation crop: what it is, for which frames, and where it comes from."""

    name: str
    description: str
    frames: str   # the frame sizes it is defined for, in words (shown by `dabench ls protocols`)
    source: str


CROP_SPECS: dict[str, CropSpec] = {s.name: s for s in (
    CropSpec("none", "every pixel", "any", "-"),
    CropSpec("eigen", "NYUv2 Eigen crop, rows 45:471, cols 41:601", "480x640",
             "isl-org/ZoeDepth zoedepth/utils/misc.py:241; prs-eth/Marigold src/dataset/nyu_dataset.py:64-68"),
    CropSpec("eigen_zoedepth", "rows 45:471, cols 41:601 clipped to the frame (ZoeDepth on non-NYU frames)",
             "> 45x41", "isl-org/ZoeDepth zoedepth/utils/misc.py:239-241"),
    CropSpec("garg", "Garg crop, fractions of H and W", "landscape (W > H)",
             "isl-org/ZoeDepth zoedepth/utils/misc.py:231-232"),
    CropSpec("kitti_eigen", "KITTI Eigen crop, fractions of H and W", "landscape (W > H)",
             "isl-org/ZoeDepth zoedepth/utils/misc.py:237-238; prs-eth/Marigold src/dataset/kitti_dataset.py:124-128"),
    CropSpec("kb", "KITTI benchmark window 352x1216, bottom centre", ">= 352x1216",
             "isl-org/ZoeDepth zoedepth/data/data_mono.py:408-417"),
    CropSpec("kb+garg", "KB window, then the Garg fractions of the window (ZoeDepth)", ">= 352x1216",
             "isl-org/ZoeDepth zoedepth/data/data_mono.py:408-417 + zoedepth/utils/misc.py:226-232"),
    CropSpec("kb+garg_bts", "KB window, scored with the full frame's Garg box (BTS)", ">= 352x1216",
             "cleinc/bts utils/eval_with_pngs.py:186-199 (prediction pasted into the full frame)"),
    CropSpec("kb+kitti_eigen", "KB window, then the KITTI Eigen fractions of the window (Marigold)", ">= 352x1216",
             "prs-eth/Marigold src/dataset/kitti_dataset.py:70-80,111-131"),
)}
CROPS: tuple[str, ...] = tuple(CROP_SPECS)


def check_crop(crop: str) -> str:
    """``crop`` if it is a known crop name, else a ``ConfigError`` listing the valid ones."""
    if crop not in CROP_SPECS:
        raise ConfigError(f"unknown eval crop {crop!r}; expected one of {', '.join(CROPS)}")
    return crop


def _fraction_box(h: int, w: int, fractions, crop: str) -> tuple[int, int, int, int]:
    if not w > h:
        raise DataError(f"eval crop {crop!r} is defined for landscape KITTI-like frames (W > H); got {h}x{w} (HxW)")
    t, b, l, r = fractions
    return int(t * h), int(b * h), int(l * w), int(r * w)


def garg_box(h: int, w: int) -> tuple[int, int, int, int]:
    """(top, bottom, left, right) of the Garg crop of an H×W frame (pixels, end exclusive)."""
    return _fraction_box(h, w, GARG_FRACTIONS, "garg")


def kitti_eigen_box(h: int, w: int) -> tuple[int, int, int, int]:
    """(top, bottom, left, right) of the KITTI Eigen crop of an H×W frame."""
    return _fraction_box(h, w, KITTI_EIGEN_FRACTIONS, "kitti_eigen")


def eigen_box(h: int, w: int) -> tuple[int, int, int, int]:
    """(top, bottom, left, right) of the NYU Eigen crop; frames other than 480×640 are refused."""
    if (h, w) != NYU_SIZE:
        hint = ("KITTI frames: use kitti_eigen or kb+kitti_eigen" if w > 2 * h else
                "ZoeDepth's absolute window on other frames: eigen_zoedepth")
        raise DataError(f"eval crop 'eigen' (NYUv2, rows 45:471, cols 41:601) is defined for 480x640 frames; "
                        f"got {h}x{w} (HxW) ({hint})")
    return EIGEN_BOX_480x640


def eigen_zoedepth_box(h: int, w: int) -> tuple[int, int, int, int]:
    """The NYU Eigen window at absolute indices, clipped to an H×W frame (ZoeDepth's slicing)."""
    t, b, l, r = EIGEN_BOX_480x640
    if h <= t or w <= l:
        raise DataError(f"eval crop 'eigen_zoedepth' (rows 45:471, cols 41:601) is empty on a {h}x{w} frame")
    return t, min(b, h), l, min(r, w)


def kb_box(h: int, w: int) -> tuple[int, int, int, int]:
    """(top, bottom, left, right) of the 352×1216 KITTI benchmark window (bottom centre)."""
    if h < KB_HEIGHT or w < KB_WIDTH:
        raise DataError(f"KB crop needs an image of at least {KB_HEIGHT}x{KB_WIDTH}, got {h}x{w}")
    top, left = h - KB_HEIGHT, int((w - KB_WIDTH) / 2)
    return top, top + KB_HEIGHT, left, left + KB_WIDTH


_SCORE_BOX = {"garg": garg_box, "kitti_eigen": kitti_eigen_box, "eigen": eigen_box,
              "eigen_zoedepth": eigen_zoedepth_box}


def is_window_crop(crop: str) -> bool:
    """True for the crops that cut the frame to the KB window before inference."""
    return check_crop(crop).startswith("kb")


def _box_mask(h: int, w: int, box) -> np.ndarray:
    t, b, l, r = box
    m = np.zeros((h, w), dtype=bool)
    m[t:b, l:r] = True
    return m


def window_crop_mask(shape: tuple[int, int], crop: str) -> np.ndarray:
    """Bool 352×1216 mask of the scored pixels *inside the KB window* of a full frame of ``shape``."""
    h, w = int(shape[0]), int(shape[1])
    t, b, l, r = kb_box(h, w)
    inner = check_crop(crop).partition("+")[2]
    if not is_window_crop(crop):
        raise ConfigError(f"eval crop {crop!r} does not cut the KB window")
    if inner == "":
        return np.ones((KB_HEIGHT, KB_WIDTH), dtype=bool)
    if inner == "garg_bts":  # the full frame's Garg box, seen through the window
        return _box_mask(h, w, garg_box(h, w))[t:b, l:r]
    return _box_mask(KB_HEIGHT, KB_WIDTH, _SCORE_BOX[inner](KB_HEIGHT, KB_WIDTH))


def crop_mask(shape: tuple[int, int], crop: str) -> np.ndarray:
    """Bool H×W mask that is True on the pixels the crop ``crop`` scores, in full-frame coordinates
    (for ``kb*`` crops: the window's scored pixels, False outside the window)."""
    h, w = int(shape[0]), int(shape[1])
    check_crop(crop)
    if crop == "none":
        return np.ones((h, w), dtype=bool)
    if is_window_crop(crop):
        t, b, l, r = kb_box(h, w)
        mask = np.zeros((h, w), dtype=bool)
        mask[t:b, l:r] = window_crop_mask((h, w), crop)
        return mask
    return _box_mask(h, w, _SCORE_BOX[crop](h, w))


def apply_eval_crop(valid_mask, crop: str):
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
