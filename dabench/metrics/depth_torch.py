"""Depth-metric sums of a batch of maps in torch: one fused pass, on the maps' own device.

``depth_sums_batch(pred, gt, valid)`` returns, for each of B maps, the ``_SUM_KEYS`` vector of
``dabench.metrics.depth`` (pixel count and the sums every depth metric is formed from), so
``DepthMetricState.update_batch`` streams a whole batch with the same exact per-image averaging
as ``update``. The per-pixel work is written so that every quantity comes from one division and
one logarithm per pixel:

    r = p / g,  e = ln r,  d = p - g
    |p - g| / g = |r - 1|,   (p - g)^2 / g = d (r - 1),   |log10 p - log10 g| = |e| / ln 10,
    max(p/g, g/p) < 1.25^k  <=>  |e| < k ln 1.25

With ``compile=True`` the kernel goes through ``torch.compile``, which fuses it into a single
loop over the pixels (all ten sums accumulated in registers); eager mode runs the same formulas
op by op. Inputs are float32; sums are float32 per map (pairwise/cascade summation), returned as
float64. Agreement with the float64 numpy path is ~1e-6 relative.
"""
from __future__ import annotations

import math
from typing import Any

import numpy as np

from dabench.errors import DataError

_LOG_125 = math.log(1.25)
_LN10 = math.log(10.0)
_COMPILED: dict[str, Any] = {}


def _kernel(pred, gt, weight, lo: float, hi: float, clamp_pred: bool):
    """B×H×W float32 ``pred``/``gt`` (any strides: a crop can be a view), (B|1)×(H|1)×(W|1) float32
    0/1 ``weight`` → B×11 sums (10 ``_SUM_KEYS`` + bad count)."""
    import torch

    if clamp_pred:
        pred = pred.clamp(lo, hi)
    m = ((gt > lo) & (gt < hi)).to(pred.dtype) * weight  # NaN/inf ground truth fails the range test
    ok = m > 0
    good = (pred > 0) & (pred < math.inf)  # NaN fails both
    bad = (ok & ~good).to(pred.dtype)
    use = ok & good
    g = torch.where(use, gt, 1.0)
    p = torch.where(use, pred, 1.0)
    r = p / g
    e = torch.log(r)
    d = p - g
    q = r - 1.0
    ae = e.abs()
    dims = (1, 2)
    return torch.stack([m.sum(dims), q.abs().sum(dims), (d * q).sum(dims), (d * d).sum(dims), (e * e).sum(dims),
                        ae.sum(dims) / _LN10, e.sum(dims), ((ae < _LOG_125) * m).sum(dims),
                        ((ae < 2 * _LOG_125) * m).sum(dims), ((ae < 3 * _LOG_125) * m).sum(dims), bad.sum(dims)], 1)


def _compiled_kernel(device_type: str):
    import torch

    fn = _COMPILED.get(device_type)
    if fn is None:
        fn = _COMPILED[device_type] = torch.compile(_kernel, dynamic=False)
    return fn


def depth_sums_batch(pred, gt, valid=None, *, min_depth: float = 0.0, max_depth: float = math.inf,
                     clamp_pred: bool = False, compile: bool = False, names=None) -> np.ndarray:
    """B×10 float64 ``_SUM_KEYS`` sums of B maps in one pass.

    ``pred``/``gt``: B×H×W tensors or arrays (same unit: metres, or 1/metres for disparity; views
    such as a rectangular crop ``x[:, t:b, l:r]`` are read in place, without a copy);
    ``valid``: optional bool B×H×W, or H×W shared by every map (e.g. an evaluation crop). A pixel
    counts when ``valid`` and ``min_depth < gt < max_depth`` (finite). ``clamp_pred`` clips the
    predictions to [min_depth, max_depth] first (the ZoeDepth protocol), inside the same pass. Predictions on counted
    pixels must be finite and > 0, else ``DataError`` naming the map (``names[i]`` or its index).
    """
    import torch

    pred = torch.as_tensor(pred)
    gt = torch.as_tensor(gt, device=pred.device)
    if pred.shape != gt.shape or pred.dim() != 3:
        raise DataError(f"prediction batch shape {tuple(pred.shape)} and ground truth {tuple(gt.shape)} must be "
                        "the same B×H×W")
    b, h, w = pred.shape
    p = pred.float()
    g = gt.float()
    if valid is None:
        weight = torch.ones(1, 1, 1, dtype=torch.float32, device=p.device)
    else:
        valid = torch.as_tensor(valid, device=p.device)
        if tuple(valid.shape) not in ((b, h, w), (h, w)):
            raise DataError(f"valid mask shape {tuple(valid.shape)} fits neither the batch {(b, h, w)} "
                            f"nor one map {(h, w)}")
        weight = valid.reshape(-1, h, w).to(torch.float32)
    fn = _compiled_kernel(p.device.type) if compile else _kernel
    with torch.inference_mode():
        sums = fn(p, g, weight, float(min_depth), float(max_depth), bool(clamp_pred))
    sums = sums.double().cpu().numpy()
    bad = np.flatnonzero(sums[:, -1] > 0)
    if bad.size:
        i = int(bad[0])
        label = names[i] if names is not None else f"map {i} of the batch"
        raise DataError(f"{label}: prediction has {int(sums[i, -1])} NaN/inf or <= 0 values on valid pixels; "
                        "clamp to the protocol's [min_depth, max_depth] before scoring")
    return sums[:, :-1]
