"""``DabenchLoadAnnotations``: mmseg's ``LoadAnnotations`` plus the checks that turn bad data into
one clear error naming the file (instead of a CUDA assert deep inside the loss):

- a missing annotation file → :class:`~dabench.errors.MissingFileError`;
- a label map that is not single-channel, whose size differs from its image, or that holds class
  ids outside ``[0, num_classes)`` other than the ignore index → :class:`~dabench.errors.DataError`.

Ids are checked after mmseg's ``reduce_zero_label``/``label_map`` remapping, i.e. on the ids the
model trains on (Cityscapes labelTrainIds 0–18 + 255, ADE20K 0–149 + 255).
"""
from __future__ import annotations

import os

import numpy as np

from dabench.errors import DataError, MissingFileError
from dabench.finetune.seg.mmcv_compat import ensure_mmcv_ops

ensure_mmcv_ops()
from mmseg.datasets.transforms import LoadAnnotations  # noqa: E402
from mmseg.registry import TRANSFORMS  # noqa: E402


@TRANSFORMS.register_module()
class DabenchLoadAnnotations(LoadAnnotations):
    """Load a semantic label map and validate it (see module docstring)."""

    def __init__(self, num_classes: int | None = None, ignore_index: int = 255, **kwargs):
        super().__init__(**kwargs)
        self.num_classes = num_classes
        self.ignore_index = ignore_index

    def _load_seg_map(self, results: dict) -> None:
        path = results.get("seg_map_path")
        if path is None:
            raise MissingFileError(f"image {results.get('img_path')} has no annotation file")
        if "://" not in str(path) and not os.path.isfile(path):
            raise MissingFileError(f"annotation file {path} does not exist (image {results.get('img_path')})")
        try:
            super()._load_seg_map(results)
        except (OSError, ValueError, TypeError, AttributeError) as e:
            raise DataError(f"annotation file {path} could not be read as a label image ({e})") from None
        seg = results["gt_seg_map"]
        if seg.ndim != 2:
            raise DataError(f"annotation file {path}: expected a single-channel label map (class ids), "
                            f"got shape {seg.shape}")
        ori = results.get("ori_shape")
        if ori is not None and tuple(seg.shape[:2]) != tuple(ori[:2]):
            raise DataError(f"annotation file {path}: label size {seg.shape[1]}x{seg.shape[0]} does not match "
                            f"its image {results.get('img_path')} ({ori[1]}x{ori[0]})")
        if self.num_classes is not None:
            ids = np.unique(seg)
            bad = ids[(ids != self.ignore_index) & (ids >= self.num_classes)]
            if bad.size:
                raise DataError(f"annotation file {path}: class ids {bad.tolist()[:10]} are outside the "
                                f"{self.num_classes} classes (valid: 0..{self.num_classes - 1}, "
                                f"ignore {self.ignore_index})")
