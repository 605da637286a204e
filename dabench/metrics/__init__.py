"""Metric registry and streaming metric states (sums and counts, exact under DDP).

- ``METRICS``: registry of ``MetricSpec`` (name, display, higher_is_better, fmt, unit, averaging, task,
  and for depth metrics their per-pixel ``sums`` and ``finalize``); ``register_metric`` adds one.
- ``depth_metrics(pred, gt, valid)``: the depth metrics of one map; ``depth_sums`` / ``metrics_from_sums``
  its two halves; ``DepthMetricState`` streams them.
- ``SegMetricState``: mIoU / mAcc / aAcc and per-class IoU from pooled per-class areas.
"""
from dabench.metrics.registry import (DEPTH_METRICS, METRICS, SEG_METRICS, MetricSpec, PixelErrors,
                                      depth_engine_metrics, depth_sum_terms, get_metric, higher_is_better,
                                      list_metrics, register_metric, unregister_metric)
from dabench.metrics.depth import DepthMetricState, depth_metrics, depth_sums, metrics_from_sums
from dabench.metrics.seg import SegMetricState, seg_areas

__all__ = ["METRICS", "MetricSpec", "PixelErrors", "DEPTH_METRICS", "SEG_METRICS", "get_metric", "list_metrics",
           "higher_is_better", "register_metric", "unregister_metric", "depth_engine_metrics", "depth_sum_terms", "depth_metrics",
           "depth_sums", "metrics_from_sums", "DepthMetricState", "SegMetricState", "seg_areas"]
