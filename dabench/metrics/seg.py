"""Segmentation metrics from per-class areas pooled over the dataset (as mmseg's ``IoUMetric``).

State: four float64 vectors of length ``num_classes`` — intersection, union, predicted area and
label area — summed over images (and over DDP ranks). From them:

    IoU_c = intersect_c / union_c      Acc_c = intersect_c / label_c
    mIoU  = mean over classes with union > 0 (NaN classes ignored, as mmseg's nanmean)
    mAcc  = mean over classes with label_c > 0
    aAcc  = sum intersect / sum label

All three are reported in percent (the paper's and mmseg's convention). Pixels whose label is
``ignore_index`` (255) are not counted. A *predicted* class id outside ``[0, num_classes)`` is a wrong
pixel: it adds to its label's area and to no class's predicted area, as mmseg's
``IoUMetric.intersect_and_union`` (``torch.histc`` over ``[0, num_classes - 1]`` drops it) scores it. Out-of-range *labels* are a ``DataError`` (the data is wrong).
"""
from __future__ import annotations

from typing import Sequence

import numpy as np

from dabench.errors import DataError
from dabench.metrics.depth import all_reduce_sum, to_numpy


def seg_areas(pred, label, num_classes: int, ignore_index: int = 255, *, name: str = "sample"):
    """Per-class (intersect, union, pred_area, label_area) of one label map (int arrays H×W)."""
    pred = to_numpy(pred)
    label = to_numpy(label)
    if pred.shape != label.shape:
        raise DataError(f"{name}: prediction shape {pred.shape} does not match label shape {label.shape}")
    keep = label != ignore_index
    p = pred[keep].astype(np.int64)
    g = label[keep].astype(np.int64)
    if g.size and (g.min() < 0 or g.max() >= num_classes):
        raise DataError(f"{name}: label values must be in [0, {num_classes}) or {ignore_index}; "
                        f"found {int(g.min())}..{int(g.max())}")
    hit = p[p == g]  # an out-of-range prediction never equals an in-range label
    inter = np.bincount(hit, minlength=num_classes).astype(np.float64)
    in_range = p[(p >= 0) & (p < num_classes)]  # out-of-range predictions: wrong, in no class's area
    area_p = np.bincount(in_range, minlength=num_classes).astype(np.float64)
    area_g = np.bincount(g, minlength=num_classes).astype(np.float64)
    return inter, area_p + area_g - inter, area_p, area_g


def _ratio(num: np.ndarray, den: np.ndarray) -> np.ndarray:
    out = np.full(num.shape, np.nan, dtype=np.float64)
    np.divide(num, den, out=out, where=den > 0)
    return out


class SegMetricState:
    """Streaming mIoU / mAcc / aAcc (percent) and per-class IoU, exact across batches and ranks."""

    def __init__(self, num_classes: int, ignore_index: int = 255, class_names: Sequence[str] | None = None):
        if class_names is not None and len(class_names) != num_classes:
            raise DataError(f"{len(class_names)} class names given for {num_classes} classes")
        self.num_classes = int(num_classes)
        self.ignore_index = ignore_index
        self.class_names = list(class_names) if class_names is not None else [str(i) for i in range(num_classes)]
        self.reset()

    def reset(self) -> None:
        self.areas = np.zeros((4, self.num_classes), dtype=np.float64)  # intersect, union, pred, label
        self.n_images = 0.0

    def update(self, pred, label, *, name: str = "sample") -> None:
        """Add one predicted label map (int H×W) against its ground-truth labels."""
        self.areas += np.stack(seg_areas(pred, label, self.num_classes, self.ignore_index, name=name))
        self.n_images += 1

    def update_areas(self, intersect, union, pred_area, label_area) -> None:
        """Add per-class areas computed elsewhere (e.g. mmseg's ``intersect_and_union``)."""
        arr = np.stack([to_numpy(a).astype(np.float64).reshape(-1) for a in (intersect, union, pred_area, label_area)])
        if arr.shape != self.areas.shape:
            raise DataError(f"per-class areas have shape {arr.shape[1:]}, expected ({self.num_classes},)")
        self.areas += arr
        self.n_images += 1

    def iou(self) -> np.ndarray:
        return _ratio(self.areas[0], self.areas[1])

    def compute(self) -> dict[str, float]:
        iou = self.iou()
        acc = _ratio(self.areas[0], self.areas[3])
        total = self.areas[3].sum()
        nanmean = lambda a: float(np.nanmean(a) * 100) if np.any(~np.isnan(a)) else float("nan")  # noqa: E731
        return {"miou": nanmean(iou), "macc": nanmean(acc),
                "aacc": float(self.areas[0].sum() / total * 100) if total > 0 else float("nan")}

    def per_class_iou(self) -> dict[str, float | None]:
        """IoU per class name in percent; None for classes absent from both prediction and labels."""
        return {n: (None if np.isnan(v) else float(v * 100)) for n, v in zip(self.class_names, self.iou())}

    def to_vector(self) -> np.ndarray:
        return np.concatenate([self.areas.reshape(-1), [self.n_images]])

    def from_vector(self, v) -> None:
        v = np.asarray(v, dtype=np.float64)
        self.areas = v[:-1].reshape(4, self.num_classes).copy()
        self.n_images = float(v[-1])

    def state_dict(self) -> dict:
        return {"num_classes": self.num_classes, "areas": self.areas.tolist(), "n_images": int(self.n_images)}

    def load_state_dict(self, sd: dict) -> None:
        self.areas = np.asarray(sd["areas"], dtype=np.float64)
        self.n_images = float(sd["n_images"])

    def merge(self, other: "SegMetricState") -> "SegMetricState":
        self.from_vector(self.to_vector() + other.to_vector())
        return self

    def all_reduce(self, group=None) -> "SegMetricState":
        self.from_vector(all_reduce_sum(self.to_vector(), group))
        return self
