"""Per-image alignment of a prediction to metric ground truth, fitted on the valid pixels.

``align(pred, gt, valid, mode)``, ``gt`` in metres:

- ``none``: ``pred`` unchanged (metric-depth models).
- ``median``: ``pred * median(gt) / median(pred)`` (``pred`` read as depth).
- ``scale``: least squares ``s * pred ≈ gt`` (``pred`` read as depth).
- ``scale_shift_depth``: least squares ``s * pred + t ≈ gt`` (``pred`` read as depth).
- ``scale_shift_disparity``: least squares ``s * pred + t ≈ 1 / gt`` (``pred`` read as disparity,
  what Depth Anything's relative models output); returns the aligned disparity.

Least squares are solved in closed form in float64 (centred covariance for the affine fits).

``max_res`` (the ``alignment_max_res`` protocol switch; None = fit at full resolution, the Depth
Anything protocol): the fit runs on a nearest-neighbour subsample exactly as Marigold's
``align_depth_least_square`` makes it (prs-eth/Marigold src/util/alignment.py:48-59): factor
``s = min(max_res / H, max_res / W)``, applied only when ``s < 1``, through
``torch.nn.Upsample(scale_factor=s, mode="nearest")`` on a ``1×H×W`` tensor. torch reads a 3-D
tensor as (N, C, L), so only the *columns* are subsampled (a 4032×6048 ETH3D map is fitted on
4032×1024 pixels); dabench reproduces that, rows included. The aligned map is full resolution.

Degenerate-case policy (documented in docs/evaluate.md, "Alignment"):
- fewer than 2 valid pixels in a fitting mode (median, scale, scale_shift_*): a fit would be
  trivially perfect, so ``DegenerateAlignmentError`` is raised; the runner skips the sample and
  counts it under ``samples.skipped_degenerate``. ``none`` needs no fit and never raises.
- constant prediction over the valid pixels in an affine mode: the scale is not identifiable,
  but the least-squares *prediction* is: ``s = 0, t = mean(target)``, a constant map, scored
  honestly as a constant.
- all-zero prediction in ``scale`` mode: ``s = 0`` (every scale fits equally).
- ``median`` with ``median(pred) <= 0``: no positive scale maps it to depth;
  ``DegenerateAlignmentError`` (skipped and counted, as above).
"""
from __future__ import annotations

from typing import Any

import numpy as np

from dabench.errors import DabenchError, DataError

ALIGNMENT_MODES: tuple[str, ...] = ("none", "median", "scale", "scale_shift_depth", "scale_shift_disparity")
# What each mode reads the raw prediction as (and what it returns).
ALIGNMENT_INPUT_SPACE = {"none": None, "median": "depth", "scale": "depth",
                         "scale_shift_depth": "depth", "scale_shift_disparity": "disparity"}


class DegenerateAlignmentError(DabenchError, ValueError):
    """The alignment cannot be fitted on this image (too few valid pixels, non-positive median)."""


def check_mode(mode: str) -> str:
    if mode not in ALIGNMENT_MODES:
        from dabench.errors import ConfigError

        raise ConfigError(f"unknown alignment mode {mode!r}; valid modes: {', '.join(ALIGNMENT_MODES)}")
    return mode


def _fit_scale(p: np.ndarray, y: np.ndarray) -> tuple[float, float]:
    den = float(np.dot(p, p))
    return (float(np.dot(p, y)) / den if den > 0 else 0.0), 0.0


def _fit_scale_shift(p: np.ndarray, y: np.ndarray) -> tuple[float, float]:
    pm, ym = p.mean(), y.mean()
    pc = p - pm
    var = float(np.dot(pc, pc))
    if var <= 1e-24 * max(float(np.dot(p, p)), 1e-300):  # constant prediction: see module policy
        return 0.0, float(ym)
    s = float(np.dot(pc, y - ym)) / var
    return s, float(ym - s * pm)


def fit_from_sums(sums, mode: str, *, name: str = "sample") -> tuple[float, float]:
    """(scale, shift) of a least-squares ``mode`` from the float64 sums of its valid pixels, with the
    degenerate-case policy of the module doc.

    ``sums`` = (n, Σ(x - p0), Σ(y - g0), Σ(x - p0)², Σ(x - p0)(y - g0), p0, g0): x the prediction in
    the alignment's space, y its target (depth, or disparity 1/gt), (p0, g0) any shift (the first valid
    pixel's values: sums of differences from a typical value do not cancel, and a constant prediction
    gives exactly zero variance, as the centred reference does; ``scale`` needs p0 = 0). The same
    numbers as :func:`fit_alignment` up to summation order (``dabench_align_sums`` computes them in one
    pass). ``median`` cannot come from sums: use :func:`fit_alignment`."""
    check_mode(mode)
    if mode == "none":
        return 1.0, 0.0
    if mode == "median":
        raise ValueError("median alignment is a selection, not a function of sums: use fit_alignment")
    n, sdp, sdg, spp, spg, p0, g0 = (float(v) for v in sums[:7])
    if n < 2:
        raise DegenerateAlignmentError(f"{name}: {int(n)} valid pixel(s); {mode} alignment needs at least 2")
    if mode == "scale":
        if p0 != 0.0 or g0 != 0.0:
            raise ValueError("scale alignment sums must be unshifted (p0 = g0 = 0)")
        return (spg / spp if spp > 0 else 0.0), 0.0
    mean_p, mean_y = p0 + sdp / n, g0 + sdg / n
    var = spp - sdp * sdp / n
    raw_pp = spp + 2.0 * p0 * sdp + n * p0 * p0  # Σx², the reference's scale of "constant"
    if var <= 1e-24 * max(raw_pp, 1e-300):  # constant prediction: see module policy
        return 0.0, mean_y
    s = (spg - sdp * sdg / n) / var
    return s, mean_y - s * mean_p


def subsample_columns(shape: tuple[int, int], max_res: int | None) -> "np.ndarray | None":
    """The columns Marigold's subsample keeps (module doc) of an H×W map, or None when the fit uses every
    pixel; rows are all kept. Taken from the same ``torch.nn.functional.interpolate`` call as
    :func:`subsample_for_fit`, applied to the column indices."""
    if max_res is None:
        return None
    if int(max_res) < 1:
        from dabench.errors import ConfigError

        raise ConfigError(f"alignment_max_res must be a positive number of pixels or null, got {max_res!r}")
    factor = float(np.min(int(max_res) / np.array(shape[-2:], dtype=np.float64)))
    if factor >= 1:
        return None
    import torch

    idx = torch.arange(shape[-1], dtype=torch.float64)[None, None]
    cols = torch.nn.functional.interpolate(idx, scale_factor=factor, mode="nearest")[0, 0].numpy()
    return cols.astype(np.int64)


def subsample_for_fit(pred: np.ndarray, gt: np.ndarray, valid: np.ndarray, max_res: int | None):
    """``(pred, gt, valid)`` subsampled as Marigold's alignment does for ``max_res`` (see module doc);
    unchanged when ``max_res`` is None or the map already fits."""
    if max_res is None:
        return pred, gt, valid
    if int(max_res) < 1:
        from dabench.errors import ConfigError

        raise ConfigError(f"alignment_max_res must be a positive number of pixels or null, got {max_res!r}")
    factor = float(np.min(int(max_res) / np.array(pred.shape[-2:], dtype=np.float64)))
    if factor >= 1:
        return pred, gt, valid
    import torch

    def down(a: np.ndarray) -> np.ndarray:  # 1×H×W → torch treats it as (N, C, L): 1-D along W
        t = torch.as_tensor(np.ascontiguousarray(a)).unsqueeze(0)
        return torch.nn.functional.interpolate(t, scale_factor=factor, mode="nearest")[0].numpy()

    return down(pred.astype(np.float64)), down(gt.astype(np.float64)), down(valid.astype(np.float32)).astype(bool)


def fit_alignment(pred, gt, valid, mode: str, *, name: str = "sample", max_res: int | None = None) -> tuple[float, float]:
    """The (scale, shift) of ``mode`` fitted on the valid pixels of one image (float64); with
    ``max_res`` on Marigold's subsample (module doc)."""
    from dabench.metrics.depth import to_numpy

    check_mode(mode)
    if mode == "none":
        return 1.0, 0.0
    pred, gt, valid = to_numpy(pred), to_numpy(gt), to_numpy(valid).astype(bool, copy=False)
    if not (pred.shape == gt.shape == valid.shape):
        raise DataError(f"{name}: shapes differ: pred {pred.shape}, gt {gt.shape}, valid {valid.shape}")
    pred, gt, valid = subsample_for_fit(pred, gt, valid, max_res)
    p = pred[valid].astype(np.float64)
    g = gt[valid].astype(np.float64)
    if p.size < 2:
        raise DegenerateAlignmentError(f"{name}: {p.size} valid pixel(s); {mode} alignment needs at least 2")
    if not np.all(np.isfinite(p)):
        raise DataError(f"{name}: prediction has NaN/inf values on valid pixels")
    if not np.all(np.isfinite(g)) or np.any(g <= 0):
        raise DataError(f"{name}: ground truth must be finite and > 0 (metres) on valid pixels")
    if mode == "median":
        mp = float(np.median(p))
        if not mp > 0:
            raise DegenerateAlignmentError(f"{name}: median of the prediction is {mp:g} <= 0; median alignment "
                                           "reads the prediction as depth")
        return float(np.median(g)) / mp, 0.0
    if mode == "scale":
        return _fit_scale(p, g)
    if mode == "scale_shift_depth":
        return _fit_scale_shift(p, g)
    return _fit_scale_shift(p, 1.0 / g)  # scale_shift_disparity


def align(pred, gt, valid, mode: str, *, name: str = "sample", return_params: bool = False,
          max_res: int | None = None) -> Any:
    """Aligned prediction (same type as ``pred``: numpy float64, or a torch tensor of pred's dtype
    and device). With ``return_params`` returns ``(aligned, {"scale": s, "shift": t})``.
    ``max_res``: fit on Marigold's subsample (``alignment_max_res``), align the full map."""
    s, t = fit_alignment(pred, gt, valid, mode, name=name, max_res=max_res)
    if mode == "none":
        out = pred
    elif hasattr(pred, "detach"):
        out = pred * s + t
    else:
        out = np.asarray(pred, dtype=np.float64) * s + t
    return (out, {"scale": s, "shift": t}) if return_params else out
