"""Depth metrics, numpy engine: functional form on one map and a streaming state of sums and counts.

Definitions follow ZoeDepth's ``compute_errors`` (also used by Depth Anything's metric-depth
code): with ``p`` the prediction and ``g`` the ground truth on valid pixels (both strictly
positive, in the score space: metres for depth, 1/metres for disparity)

    abs_rel  = mean |p - g| / g            sq_rel = mean (p - g)^2 / g
    rmse     = sqrt(mean (p - g)^2)        rmse_log = sqrt(mean (ln p - ln g)^2)
    log10    = mean |log10 p - log10 g|    silog = 100 * sqrt(mean e^2 - (mean e)^2), e = ln p - ln g
    deltaK   = mean [max(p/g, g/p) < 1.25^K]

The math lives in the metric entries (``dabench.metrics.registry``): each metric names its
per-pixel sum terms and a finaliser. This module sums those terms in float64 (``depth_sums``)
and finalises them (``metrics_from_sums``); the per-image value, the per-image aggregate over a
dataset and the pixel-pooled value all come from the same sums, and the state reduces them
exactly across DDP ranks (``mmengine.dist``).
"""
from __future__ import annotations

from typing import Any

import numpy as np

from dabench.errors import DataError
from dabench.metrics.registry import (METRICS, PixelErrors, cached_until_registry_changes, depth_engine_metrics,
                                      depth_sum_terms, term_function)


def to_numpy(x: Any, dtype=None) -> np.ndarray:
    """numpy view of a numpy array or (any-device, any-dtype) torch tensor."""
    if hasattr(x, "detach"):
        x = x.detach()
        if x.dtype.is_floating_point and x.itemsize < 4:  # bf16/fp16 have no numpy twin
            x = x.float()
        x = x.cpu().numpy()
    x = np.asarray(x)
    return x.astype(dtype, copy=False) if dtype is not None else x


def _check_inputs(pred, gt, valid, name: str = "sample") -> tuple[np.ndarray, np.ndarray]:
    """Validated float64 vectors of ``pred`` and ``gt`` on valid pixels."""
    pred = to_numpy(pred)
    gt = to_numpy(gt)
    if pred.shape != gt.shape:
        raise DataError(f"{name}: prediction shape {pred.shape} does not match ground truth shape {gt.shape}")
    if valid is None:
        valid = np.isfinite(gt) & (gt > 0)
    else:
        valid = to_numpy(valid)
        if valid.shape != gt.shape:
            raise DataError(f"{name}: valid mask shape {valid.shape} does not match ground truth shape {gt.shape}")
        valid = valid.astype(bool, copy=False)
    p = pred[valid].astype(np.float64)
    g = gt[valid].astype(np.float64)
    if not np.all(np.isfinite(p)):
        raise DataError(f"{name}: prediction has {int((~np.isfinite(p)).sum())} NaN/inf values on valid pixels")
    if not np.all(np.isfinite(g)) or np.any(g <= 0):
        raise DataError(f"{name}: ground truth must be finite and > 0 on valid pixels")
    if np.any(p <= 0):
        raise DataError(f"{name}: prediction has {int((p <= 0).sum())} values <= 0 on valid pixels; "
                        "clamp to the protocol's [min_depth, max_depth] before scoring")
    return p, g


def depth_sums(pred, gt, valid=None, *, name: str = "sample", metrics=None) -> np.ndarray:
    """Per-image sums of one map: a float64 vector laid out as ``depth_sum_terms(metrics)``
    (``"n"``, the valid pixel count, then every sum term of the metrics, default all engine metrics).

    Inputs as :func:`depth_metrics`; no valid pixel gives an all-zero vector (``n == 0``).
    """
    p, g = _check_inputs(pred, gt, valid, name)
    return _sums(p, g, depth_sum_terms(metrics))


def _sums(p: np.ndarray, g: np.ndarray, terms: tuple[str, ...]) -> np.ndarray:
    """The ``terms`` sums of positive float64 vectors ``p`` and ``g`` (the numpy engine)."""
    x = PixelErrors(p, g, np)
    out = np.empty(len(terms), dtype=np.float64)
    out[0] = p.size
    for i, t in enumerate(terms[1:], 1):
        out[i] = np.sum(term_function(t)(x), dtype=np.float64)
    return out


@cached_until_registry_changes
def _finalizers(metrics: tuple) -> tuple:
    """(name, finalize) of each metric."""
    return tuple((m, METRICS.get(m).finalize) for m in metrics)


def metrics_from_sums(sums: np.ndarray, metrics=None, terms=None) -> dict[str, Any]:
    """Each metric's ``finalize`` on per-image sums laid out as ``terms`` (default
    ``depth_sum_terms(metrics)``). ``sums`` is one vector (values are floats) or B vectors
    (values are float64 arrays of B entries); NaN where ``n`` is 0."""
    metrics = tuple(metrics or depth_engine_metrics())
    terms = tuple(terms or depth_sum_terms(metrics))
    s = np.asarray(sums, dtype=np.float64)
    cols = {t: s[..., i] for i, t in enumerate(terms)}
    empty = cols["n"] <= 0
    any_empty = bool(np.any(empty))
    if any_empty:
        cols["n"] = np.where(empty, np.nan, cols["n"])
    out = {}
    with np.errstate(invalid="ignore", divide="ignore"):
        for m, finalize in _finalizers(metrics):
            v = np.asarray(finalize(cols), dtype=np.float64)
            out[m] = float(v) if v.ndim == 0 else np.where(empty, np.nan, v) if any_empty else v
    if s.ndim == 1 and empty:
        out = {m: float("nan") for m in metrics}
    return out


def depth_metrics(pred, gt, valid=None, *, name: str = "sample") -> dict[str, float]:
    """The depth metrics of one map (the nine standard ones and any registered later).

    ``pred`` and ``gt`` are H×W (numpy or torch) in the same unit (metres, or 1/metres when
    scoring disparity), ``valid`` a bool mask (default: finite ``gt > 0``). Predictions must be
    finite and > 0 on valid pixels (NaN/inf or <= 0 is a ``DataError`` naming ``name``); no
    valid pixel is a ``DataError`` too (the streaming state counts such samples as skipped).
    """
    metrics = depth_engine_metrics()
    p, g = _check_inputs(pred, gt, valid, name)
    if p.size == 0:
        raise DataError(f"{name}: no valid pixels to score")
    return metrics_from_sums(_sums(p, g, depth_sum_terms(metrics)), metrics)


def all_reduce_sum(vec: np.ndarray, group=None) -> np.ndarray:
    """Sum a float64 vector over all ranks (unchanged without a process group)."""
    import torch
    from mmengine import dist

    t = torch.from_numpy(np.array(vec, dtype=np.float64))
    dist.all_reduce(t, op="sum", group=group)
    return t.numpy()


class DepthMetricState:
    """Streaming depth metrics, exact across batches and DDP ranks.

    State (float64): the sum over images of each per-image metric, the number of scored images,
    the pixel-pooled sums (``depth_sum_terms``) and the count of samples skipped for having no
    valid pixel; for a metric aggregated by median/percentile over images, its per-image values.
    The metric set is the registry's at construction (``depth_engine_metrics()``).
    ``compute()`` reports every metric with its registered averaging (per-image for all depth
    metrics); ``compute("pixel")`` pools pixels over the whole dataset instead.
    """

    def __init__(self, metrics=None):
        self.metrics: tuple[str, ...] = tuple(metrics or depth_engine_metrics())
        self.terms: tuple[str, ...] = depth_sum_terms(self.metrics)
        self.reset()

    def reset(self) -> None:
        self.image_sums = np.zeros(len(self.metrics), dtype=np.float64)
        self.pixel_sums = np.zeros(len(self.terms), dtype=np.float64)
        self.n_images = 0.0
        self.skipped_no_valid = 0.0
        # per-image values of the metrics that are not a mean over images (median, percentiles)
        self.image_values: dict[str, list[float]] = {m: [] for m in self.metrics
                                                      if not METRICS.get(m).streams_as_sum}

    def update(self, pred, gt, valid=None, *, name: str = "sample") -> dict[str, float] | None:
        """Add one image; returns its metrics, or None (and counts a skip) when no pixel is valid."""
        p, g = _check_inputs(pred, gt, valid, name)
        if p.size == 0:
            self.skipped_no_valid += 1
            return None
        return self.update_sums(_sums(p, g, self.terms))

    def update_sums(self, sums: np.ndarray) -> dict[str, float]:
        """Add one image given its pixel sums (``depth_sums`` of its valid pixels); returns its metrics."""
        return self.update_sums_batch(np.asarray(sums, dtype=np.float64)[None])[0]

    def update_sums_batch(self, sums: np.ndarray) -> list[dict[str, float] | None]:
        """Add B images given their B×T sums; a row with ``n == 0`` counts as skipped (None)."""
        sums = np.asarray(sums, dtype=np.float64)
        ok = sums[:, 0] > 0
        n_ok = int(np.count_nonzero(ok))
        self.skipped_no_valid += float(len(ok) - n_ok)
        good = sums if n_ok == len(ok) else sums[ok]
        vals = metrics_from_sums(good, self.metrics, self.terms)
        table = np.stack([vals[m] for m in self.metrics], 1) if len(good) else np.zeros((0, len(self.metrics)))
        self.image_sums += table.sum(0)
        self.pixel_sums += good.sum(0)
        self.n_images += float(len(good))
        for m, values in self.image_values.items():
            values.extend(vals[m].tolist())
        rows = iter(table.tolist())
        return [dict(zip(self.metrics, next(rows))) if o else None for o in ok]

    def update_batch(self, pred, gt, valid=None, *, min_depth: float = 0.0, max_depth: float = float("inf"),
                     clamp_pred: bool = False, compile: bool = False, names=None,
                     engine: str = "auto") -> list[dict[str, float] | None]:
        """Add B maps at once in one fused pass (on the CPU the native C kernel, else torch on the maps'
        device; see ``dabench.metrics.depth_torch.pick_engine``).

        ``valid`` is B×H×W or one H×W mask for all maps; pixels also need ``min_depth < gt < max_depth``;
        ``clamp_pred`` clips predictions to that range first; ``compile`` fuses the torch pass with torch.compile;
        ``engine``: ``"auto"``, ``"native"`` or ``"torch"``.
        Returns each map's metrics (None, counted as skipped, when it has no valid pixel).
        """
        from dabench.metrics.depth_torch import depth_sums_batch

        sums = depth_sums_batch(pred, gt, valid, min_depth=min_depth, max_depth=max_depth, clamp_pred=clamp_pred,
                                compile=compile, names=names, metrics=self.metrics, engine=engine)
        return self.update_sums_batch(sums)

    def compute(self, averaging: str | None = None) -> dict[str, float]:
        """Metric values; NaN for every metric when no image was scored."""
        pooled = metrics_from_sums(self.pixel_sums, self.metrics, self.terms)
        out = {}
        for i, k in enumerate(self.metrics):
            spec = METRICS.get(k)
            how = averaging or spec.averaging
            if how == "pixel":
                out[k] = float(pooled[k])
            elif how != "image":
                raise ValueError(f"averaging must be 'image' or 'pixel', got {how!r}")
            elif k in self.image_values:
                out[k] = spec.aggregate(self.image_values[k])
            else:
                out[k] = float(self.image_sums[i] / self.n_images) if self.n_images > 0 else float("nan")
        return out

    # --- sums and counts -------------------------------------------------------------------------
    def to_vector(self) -> np.ndarray:
        """The summable state (per-image value lists are not in it: see ``merge``/``all_reduce``)."""
        return np.concatenate([self.image_sums, self.pixel_sums, [self.n_images, self.skipped_no_valid]])

    def from_vector(self, v: np.ndarray) -> None:
        a, b = len(self.metrics), len(self.terms)
        v = np.asarray(v, dtype=np.float64)
        self.image_sums = v[:a].copy()
        self.pixel_sums = v[a:a + b].copy()
        self.n_images, self.skipped_no_valid = float(v[a + b]), float(v[a + b + 1])

    def state_dict(self) -> dict:
        return {"image_sums": dict(zip(self.metrics, self.image_sums.tolist())),
                "pixel_sums": dict(zip(self.terms, self.pixel_sums.tolist())),
                "n_images": int(self.n_images), "skipped_no_valid": int(self.skipped_no_valid),
                "image_values": {m: list(v) for m, v in self.image_values.items()}}

    def load_state_dict(self, sd: dict) -> None:
        self.image_sums = np.array([sd["image_sums"][k] for k in self.metrics], dtype=np.float64)
        self.pixel_sums = np.array([sd["pixel_sums"][k] for k in self.terms], dtype=np.float64)
        self.n_images = float(sd["n_images"])
        self.skipped_no_valid = float(sd["skipped_no_valid"])
        self.image_values = {m: list(sd.get("image_values", {}).get(m, [])) for m in self.image_values}

    def merge(self, other: "DepthMetricState") -> "DepthMetricState":
        self.from_vector(self.to_vector() + other.to_vector())
        for m, values in self.image_values.items():
            values.extend(other.image_values[m])
        return self

    def all_reduce(self, group=None) -> "DepthMetricState":
        """Sum the state over all ranks of the default (or given) process group, in place
        (per-image value lists are gathered; no-op without a process group)."""
        from mmengine import dist

        self.from_vector(all_reduce_sum(self.to_vector(), group))
        if self.image_values and dist.get_world_size(group) > 1:
            parts = dist.all_gather_object(self.image_values, group)
            self.image_values = {m: [v for part in parts for v in part[m]] for m in self.image_values}
        return self
