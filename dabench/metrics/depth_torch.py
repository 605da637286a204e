"""Depth-metric sums of a batch of maps in torch: one fused pass, on the maps' own device.

``depth_sums_batch(pred, gt, valid)`` returns, for each of B maps, the per-image sum vector of
``dabench.metrics.depth`` (laid out as ``depth_sum_terms``: pixel count, then every sum term of
the registered depth metrics), so ``DepthMetricState.update_batch`` streams a whole batch with
the same exact per-image averaging as ``update``. The per-pixel terms are the metric entries'
own functions (``dabench.metrics.registry``), evaluated on torch tensors; they are written so that
every quantity comes from one division and one logarithm per pixel (``r = p / g``, ``e = ln r``).

Pixels outside the mask are replaced by ``p = g = 1`` (every error term is then finite) and every
term is weighted by the mask, so the kernel reads ``pred``/``gt`` once and writes nothing per
pixel. With ``compile=True`` the kernel goes through ``torch.compile``, which fuses it into one
loop over the pixels with all sums in registers; eager mode runs the same formulas op by op.
Inputs are float32; sums are float32 per map (pairwise/cascade summation), returned as float64.
Agreement with the float64 numpy path is ~1e-6 relative.
"""
from __future__ import annotations

import math
from typing import Any, Callable

import numpy as np

from dabench.errors import DataError
from dabench.metrics.registry import PixelErrors, depth_engine_metrics, depth_sum_terms, term_function

_KERNELS: dict[tuple, Callable] = {}


def _vanishes_where_masked(fn) -> bool:
    """True when a term is exactly 0 at ``p = g = 1`` (what masked-out pixels are set to), so the
    kernel can sum it without multiplying by the mask."""
    x = PixelErrors(np.ones(2), np.ones(2), np)
    v = np.asarray(fn(x))
    return v.dtype != bool and bool(np.all(v == 0))


def _make_kernel(terms: tuple[str, ...]) -> Callable:
    """A kernel for the sum layout ``terms``: B×H×W float32 ``pred``/``gt`` (any strides: a crop can
    be a view), (B|1)×(H|1)×(W|1) float32 0/1 ``weight`` → B×(T+1) sums (T terms + bad count)."""
    fns = [(term_function(t), _vanishes_where_masked(term_function(t))) for t in terms[1:]]

    def kernel(pred, gt, weight, lo: float, hi: float, clamp_pred: bool):
        import torch

        if clamp_pred:
            pred = pred.clamp(lo, hi)
        m = ((gt > lo) & (gt < hi)).to(pred.dtype) * weight  # NaN/inf ground truth fails the range test
        ok = m > 0
        good = (pred > 0) & (pred < math.inf)  # NaN fails both
        use = ok & good
        x = PixelErrors(torch.where(use, pred, 1.0), torch.where(use, gt, 1.0), torch)
        dims = (1, 2)
        cols = [m.sum(dims)]
        for fn, vanishes in fns:
            v = fn(x).to(pred.dtype)
            cols.append((v if vanishes else v * m).sum(dims))
        cols.append((ok & ~good).to(pred.dtype).sum(dims))
        return torch.stack(cols, 1)

    return kernel


def _kernel_for(terms: tuple[str, ...], compile: bool, device_type: str) -> Callable:
    key = (terms, compile, device_type)
    fn = _KERNELS.get(key)
    if fn is None:
        import torch

        fn = _make_kernel(terms)
        if compile:
            fn = torch.compile(fn, dynamic=False)
        _KERNELS[key] = fn
    return fn


ENGINES = ("auto", "native", "torch")


def pick_engine(device_type: str, terms, engine: str = "auto", compile: bool = False) -> str:
    """Which pass scores a batch: ``"native"`` (the C kernel, CPU, built-in terms only; see
    ``dabench.metrics.depth_native``), ``"torch-compiled"`` or ``"torch-eager"``. ``engine="auto"``
    takes the native kernel where it applies and is available; ``"native"`` raises where it is not."""
    if engine not in ENGINES:
        raise ValueError(f"engine must be one of {ENGINES}, got {engine!r}")
    if engine != "torch" and device_type == "cpu":
        import dabench.metrics.depth_native as depth_native

        ok, why = depth_native.available()
        if ok and depth_native.supports(terms):
            return "native"
        if engine == "native":
            raise RuntimeError(f"native depth-metric kernel: {why if not ok else 'a requested sum term is not built in'}")
    elif engine == "native":
        raise RuntimeError(f"the native depth-metric kernel runs on the CPU, not {device_type}")
    return "torch-compiled" if compile else "torch-eager"


def depth_sums_batch(pred, gt, valid=None, *, min_depth: float = 0.0, max_depth: float = math.inf,
                     clamp_pred: bool = False, compile: bool = False, names=None, metrics=None,
                     engine: str = "auto") -> np.ndarray:
    """B×T float64 per-image sums of B maps in one pass (T = ``len(depth_sum_terms(metrics))``).

    ``pred``/``gt``: B×H×W tensors or arrays (same unit: metres, or 1/metres for disparity; views
    such as a rectangular crop ``x[:, t:b, l:r]`` are read in place, without a copy);
    ``valid``: optional bool B×H×W, or H×W shared by every map (e.g. an evaluation crop). A pixel
    counts when ``valid`` and ``min_depth < gt < max_depth`` (finite). ``clamp_pred`` clips the
    predictions to [min_depth, max_depth] first (the ZoeDepth protocol), inside the same pass.
    ``metrics``: whose sums (default: every registered depth metric with sums). Predictions on
    counted pixels must be finite and > 0, else ``DataError`` naming the map (``names[i]`` or its index).
    ``engine``: see ``pick_engine`` (on the CPU the native C pass by default; ``compile`` applies to
    the torch pass).
    """
    import torch

    import dabench.metrics.depth_native as depth_native

    woken = False
    if (engine != "torch" and not (isinstance(pred, torch.Tensor) and pred.device.type != "cpu")
            and math.prod(getattr(pred, "shape", ())) >= depth_native.THREADED_MIN_PIXELS):
        woken = depth_native.wake_helpers()  # waking an idle core takes longer than the checks below
    pred = torch.as_tensor(pred)
    gt = torch.as_tensor(gt, device=pred.device)
    if pred.shape != gt.shape or pred.dim() != 3:
        raise DataError(f"prediction batch shape {tuple(pred.shape)} and ground truth {tuple(gt.shape)} must be "
                        "the same B×H×W")
    b, h, w = pred.shape
    p = pred.float()
    g = gt.float()
    if valid is not None:
        valid = torch.as_tensor(valid, device=p.device)
        if tuple(valid.shape) not in ((b, h, w), (h, w)):
            raise DataError(f"valid mask shape {tuple(valid.shape)} fits neither the batch {(b, h, w)} "
                            f"nor one map {(h, w)}")
    terms = depth_sum_terms(tuple(metrics or depth_engine_metrics()))
    if pick_engine(p.device.type, terms, engine, compile) == "native":
        sums = depth_native.depth_sums_native(p, g, valid, min_depth=min_depth, max_depth=max_depth,
                                              clamp_pred=clamp_pred, terms=terms, woken=woken)
    else:
        if valid is None:
            weight = torch.ones(1, 1, 1, dtype=torch.float32, device=p.device)
        else:
            weight = valid.reshape(-1, h, w).to(torch.float32)
        fn = _kernel_for(terms, bool(compile), p.device.type)
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


__all__: list[Any] = ["depth_sums_batch", "pick_engine", "ENGINES"]
