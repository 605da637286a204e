"""``DabenchIoUMetric``: mmseg's ``IoUMetric`` whose pooled per-class areas also feed dabench's
``SegMetricState``, so segmentation rows carry the same metric names (``miou``, ``macc``, ``aacc``,
percent) and per-class IoU as every other dabench table.

mmseg computes each image's areas (``intersect_and_union``) and gathers them across ranks; the
summed areas go through ``SegMetricState.compute`` (tests/test_seg_components.py checks it against
mmseg's own ``total_area_to_metrics`` on the same areas, to 1e-3 percentage points: mmseg sums in
float32). The returned dict holds ``miou``/``macc``/``aacc``
and ``IoU.<class>`` for each class (NaN when a class is absent from predictions and labels).
"""
from __future__ import annotations

import math
from collections import OrderedDict

from dabench.errors import DataError
from dabench.finetune.seg.mmcv_compat import ensure_mmcv_ops

ensure_mmcv_ops()
from mmengine.logging import MMLogger, print_log  # noqa: E402
from mmseg.evaluation.metrics import IoUMetric  # noqa: E402
from mmseg.registry import METRICS  # noqa: E402

PER_CLASS_PREFIX = "IoU."


@METRICS.register_module()
class DabenchIoUMetric(IoUMetric):
    """IoUMetric reporting through :class:`dabench.metrics.SegMetricState`."""

    default_prefix = ""  # dabench metric names are unprefixed (miou, not mIoU/val)

    def process(self, data_batch, data_samples) -> None:
        num_classes = len(self.dataset_meta["classes"])
        for sample in data_samples:
            label = sample["gt_sem_seg"]["data"].squeeze()
            ids = label[label != self.ignore_index]
            if ids.numel() and int(ids.max()) >= num_classes:
                raise DataError(f"{sample.get('seg_map_path', sample.get('img_path'))}: label ids up to "
                                f"{int(ids.max())} for a {num_classes}-class dataset")
        super().process(data_batch, data_samples)

    def compute_metrics(self, results: list) -> dict[str, float]:
        from dabench.metrics import SegMetricState

        classes = list(self.dataset_meta["classes"])
        state = SegMetricState(len(classes), self.ignore_index, classes)
        for inter, union, pred_area, label_area in results:
            state.update_areas(inter, union, pred_area, label_area)
        ours = state.compute()

        per_class = state.per_class_iou()
        logger: MMLogger = MMLogger.get_current_instance()
        rows = "\n".join(f"  {n:>24s}  {'-' if v is None else f'{v:6.2f}'}" for n, v in per_class.items())
        print_log(f"per-class IoU (%) over {int(state.n_images)} images:\n{rows}", logger=logger)
        out = OrderedDict(ours)
        for n, v in per_class.items():
            out[PER_CLASS_PREFIX + n] = float("nan") if v is None else v
        return out


def split_metrics(metrics: dict) -> tuple[dict[str, float], dict[str, float | None]]:
    """Split a ``DabenchIoUMetric`` result (possibly prefixed, e.g. ``test/miou``) into
    ``({miou, macc, aacc}, {class: IoU or None})``."""
    summary, per_class = {}, {}
    for key, val in metrics.items():
        name = key.split("/", 1)[-1]
        if name.startswith(PER_CLASS_PREFIX):
            v = float(val)
            per_class[name[len(PER_CLASS_PREFIX):]] = None if math.isnan(v) else v
        elif name in ("miou", "macc", "aacc"):
            summary[name] = float(val)
    return summary, per_class
