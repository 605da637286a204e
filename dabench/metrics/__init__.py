"""Metric registry and streaming metric states (sums and counts, exact under DDP).

- ``METRICS``: registry of ``MetricSpec`` (name, display, higher_is_better, fmt, unit, averaging, task).
- ``depth_metrics(pred, gt, valid)``: the nine depth metrics of one map; ``DepthMetricState`` streams them.
- ``SegMetricState``: mIoU / mAcc / aAcc and per-class IoU from pooled per-class areas.
"""
from dabench.metrics.registry import (DEPTH_METRICS, METRICS, SEG_METRICS, MetricSpec, get_metric,
                                      higher_is_better, list_metrics)
from dabench.metrics.depth import DepthMetricState, depth_metrics
from dabench.metrics.seg import SegMetricState, seg_areas

__all__ = ["METRICS", "MetricSpec", "DEPTH_METRICS", "SEG_METRICS", "get_metric", "list_metrics",
           "higher_is_better", "depth_metrics", "DepthMetricState", "SegMetricState", "seg_areas"]
