"""Depth metrics: functional form on one map and a streaming state of sums and counts.

Definitions follow ZoeDepth's ``compute_errors`` (also used by Depth Anything's metric-depth
code): with ``p`` the prediction and ``g`` the ground truth on valid pixels (both strictly
positive, in the score space: metres for depth, 1/metres for disparity)

    abs_rel  = mean |p - g| / g            sq_rel = mean (p - g)^2 / g
    rmse     = sqrt(mean (p - g)^2)        rmse_log = sqrt(mean (ln p - ln g)^2)
    log10    = mean |log10 p - log10 g|    silog = 100 * sqrt(mean e^2 - (mean e)^2), e = ln p - ln g
    deltaK   = mean [max(p/g, g/p) < 1.25^K]

Every metric is a function of per-image sums (``_SUM_KEYS``), so the per-image value, the
per-image average over a dataset and the pixel-pooled value all come from the same sums; the
state keeps both families as float64 vectors and reduces them exactly across DDP ranks.
"""
from __future__ import annotations

from typing import Any

import numpy as np

from dabench.errors import DataError
from dabench.metrics._dist import all_reduce_sum
from dabench.metrics.registry import DEPTH_METRICS, METRICS

# Per-image sums over valid pixels; each metric is a function of these.
_SUM_KEYS = ("n", "abs_rel", "sq_rel", "sq_err", "sq_log", "abs_log10", "log_err", "delta1", "delta2", "delta3")
_I = {k: i for i, k in enumerate(_SUM_KEYS)}


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


def _sums(p: np.ndarray, g: np.ndarray) -> np.ndarray:
    """The ``_SUM_KEYS`` vector for positive float64 vectors ``p`` and ``g``."""
    diff = p - g
    log_err = np.log(p) - np.log(g)
    ratio = np.maximum(p / g, g / p)
    out = np.empty(len(_SUM_KEYS), dtype=np.float64)
    out[_I["n"]] = p.size
    out[_I["abs_rel"]] = np.sum(np.abs(diff) / g)
    out[_I["sq_rel"]] = np.sum(diff * diff / g)
    out[_I["sq_err"]] = np.sum(diff * diff)
    out[_I["sq_log"]] = np.sum(log_err * log_err)
    out[_I["abs_log10"]] = np.sum(np.abs(np.log10(p) - np.log10(g)))
    out[_I["log_err"]] = np.sum(log_err)
    for k in (1, 2, 3):
        out[_I[f"delta{k}"]] = np.count_nonzero(ratio < 1.25 ** k)
    return out


def _metrics_from_sums(s: np.ndarray) -> dict[str, float]:
    n = s[_I["n"]]
    if n <= 0:
        return {m: float("nan") for m in DEPTH_METRICS}
    mean_log = s[_I["log_err"]] / n
    mean_sq_log = s[_I["sq_log"]] / n
    return {
        "abs_rel": float(s[_I["abs_rel"]] / n),
        "sq_rel": float(s[_I["sq_rel"]] / n),
        "rmse": float(np.sqrt(s[_I["sq_err"]] / n)),
        "rmse_log": float(np.sqrt(mean_sq_log)),
        "log10": float(s[_I["abs_log10"]] / n),
        # max(., 0): rounding can make the variance a hair negative for a perfect prediction
        "silog": float(100.0 * np.sqrt(max(mean_sq_log - mean_log * mean_log, 0.0))),
        "delta1": float(s[_I["delta1"]] / n),
        "delta2": float(s[_I["delta2"]] / n),
        "delta3": float(s[_I["delta3"]] / n),
    }


def depth_metrics(pred, gt, valid=None, *, name: str = "sample") -> dict[str, float]:
    """The nine depth metrics of one map.

    ``pred`` and ``gt`` are H×W (numpy or torch) in the same unit (metres, or 1/metres when
    scoring disparity), ``valid`` a bool mask (default: finite ``gt > 0``). Predictions must be
    finite and > 0 on valid pixels (NaN/inf or <= 0 is a ``DataError`` naming ``name``); no
    valid pixel is a ``DataError`` too (the streaming state counts such samples as skipped).
    """
    p, g = _check_inputs(pred, gt, valid, name)
    if p.size == 0:
        raise DataError(f"{name}: no valid pixels to score")
    return _metrics_from_sums(_sums(p, g))


class DepthMetricState:
    """Streaming depth metrics, exact across batches and DDP ranks.

    State (float64): the sum over images of each per-image metric, the number of scored images,
    the pixel-pooled ``_SUM_KEYS`` sums and the count of samples skipped for having no valid pixel.
    ``compute()`` reports every metric with its registered averaging (per-image mean for all
    depth metrics); ``compute("pixel")`` pools pixels over the whole dataset instead.
    """

    def __init__(self):
        self.reset()

    def reset(self) -> None:
        self.image_sums = np.zeros(len(DEPTH_METRICS), dtype=np.float64)
        self.pixel_sums = np.zeros(len(_SUM_KEYS), dtype=np.float64)
        self.n_images = 0.0
        self.skipped_no_valid = 0.0

    def update(self, pred, gt, valid=None, *, name: str = "sample") -> dict[str, float] | None:
        """Add one image; returns its metrics, or None (and counts a skip) when no pixel is valid."""
        p, g = _check_inputs(pred, gt, valid, name)
        if p.size == 0:
            self.skipped_no_valid += 1
            return None
        return self.update_sums(_sums(p, g))

    def update_sums(self, sums: np.ndarray) -> dict[str, float]:
        """Add one image given its pixel sums (``_sums`` of its valid pixels); returns its metrics."""
        m = _metrics_from_sums(sums)
        self.image_sums += np.array([m[k] for k in DEPTH_METRICS])
        self.pixel_sums += sums
        self.n_images += 1
        return m

    def update_batch(self, pred, gt, valid=None, *, min_depth: float = 0.0, max_depth: float = float("inf"),
                     clamp_pred: bool = False, compile: bool = False, names=None) -> list[dict[str, float] | None]:
        """Add B maps at once (torch, one fused pass on their device; see ``dabench.metrics.depth_torch``).

        ``valid`` is B×H×W or one H×W mask for all maps; pixels also need ``min_depth < gt < max_depth``;
        ``clamp_pred`` clips predictions to that range first; ``compile`` fuses the pass with torch.compile.
        Returns each map's metrics (None, counted as skipped, when it has no valid pixel).
        """
        from dabench.metrics.depth_torch import depth_sums_batch

        sums = depth_sums_batch(pred, gt, valid, min_depth=min_depth, max_depth=max_depth, clamp_pred=clamp_pred,
                                compile=compile, names=names)
        out: list[dict[str, float] | None] = []
        for s in sums:
            if s[_I["n"]] <= 0:
                self.skipped_no_valid += 1
                out.append(None)
            else:
                out.append(self.update_sums(s))
        return out

    def compute(self, averaging: str | None = None) -> dict[str, float]:
        """Metric values; NaN for every metric when no image was scored."""
        pooled = _metrics_from_sums(self.pixel_sums)
        out = {}
        for i, k in enumerate(DEPTH_METRICS):
            how = averaging or METRICS.get(k).averaging
            if how == "pixel":
                out[k] = pooled[k]
            elif how == "image":
                out[k] = float(self.image_sums[i] / self.n_images) if self.n_images > 0 else float("nan")
            else:
                raise ValueError(f"averaging must be 'image' or 'pixel', got {how!r}")
        return out

    # --- sums and counts -------------------------------------------------------------------------
    def to_vector(self) -> np.ndarray:
        return np.concatenate([self.image_sums, self.pixel_sums, [self.n_images, self.skipped_no_valid]])

    def from_vector(self, v: np.ndarray) -> None:
        a, b = len(DEPTH_METRICS), len(_SUM_KEYS)
        v = np.asarray(v, dtype=np.float64)
        self.image_sums = v[:a].copy()
        self.pixel_sums = v[a:a + b].copy()
        self.n_images, self.skipped_no_valid = float(v[a + b]), float(v[a + b + 1])

    def state_dict(self) -> dict:
        return {"image_sums": dict(zip(DEPTH_METRICS, self.image_sums.tolist())),
                "pixel_sums": dict(zip(_SUM_KEYS, self.pixel_sums.tolist())),
                "n_images": int(self.n_images), "skipped_no_valid": int(self.skipped_no_valid)}

    def load_state_dict(self, sd: dict) -> None:
        self.image_sums = np.array([sd["image_sums"][k] for k in DEPTH_METRICS], dtype=np.float64)
        self.pixel_sums = np.array([sd["pixel_sums"][k] for k in _SUM_KEYS], dtype=np.float64)
        self.n_images = float(sd["n_images"])
        self.skipped_no_valid = float(sd["skipped_no_valid"])

    def merge(self, other: "DepthMetricState") -> "DepthMetricState":
        self.from_vector(self.to_vector() + other.to_vector())
        return self

    def all_reduce(self, group=None) -> "DepthMetricState":
        """Sum the state over all ranks of the default (or given) process group, in place."""
        self.from_vector(all_reduce_sum(self.to_vector(), group))
        return self
