"""The robust alignment solvers and the masked 64×64 subsample of MoGe's evaluation
(``moge/utils/alignment.py`` and ``utils3d.torch.masked_nearest_resize`` in microsoft/MoGe), written
from their definitions:

- :func:`l1_scale`: ``argmin_a sum_i w_i |a x_i - y_i|``. Since ``w_i |a x_i - y_i| = w_i |x_i| |a - y_i/x_i|``
  the optimum is a weighted median of the ratios ``y_i / x_i`` with weights ``w_i |x_i|``: sort the
  ratios and take the first one where the slope of the objective, ``2 * (weight at or below) - total``,
  turns non-negative.
- :func:`l1_affine`: ``argmin_{a,b} sum_i w_i |a x_i + b - y_i|``. An optimal line passes through a data
  point: for every anchor ``j`` (``w_j > 0``) solve the scale of the anchored problem
  ``(x - x_j, y - y_j)`` with :func:`l1_scale` and keep the anchor of least loss.
- :func:`l1_points_scale_shift`: the same for point maps, one scale for x, y and z and a free xyz shift
  (anchors are points; the scale is fitted on all 3N coordinates).
- :func:`l1_points_shift`: a free xyz shift only (per-axis weighted medians of ``y - x``).
- :func:`l2_affine`: plain least squares ``argmin_{a,b} sum_i (a x_i + b - y_i)^2``.
- :func:`masked_nearest_subsample`: each cell of a ``size`` grid takes the valid pixel nearest to the
  cell centre among the ``ceil(H/h) × ceil(W/w)`` pixels of its window (ties: the first in row-major
  order); a cell with no valid pixel is masked out.

Everything works on torch tensors in the caller's dtype; ``dabench.metrics.geometry`` uses them.
"""
from __future__ import annotations

import math

import torch

_ANCHOR_CHUNK = 1 << 22  # elements per anchored sub-problem batch (bounds memory at ~100 MB)


def l1_scale(x: torch.Tensor, y: torch.Tensor, w: torch.Tensor, eps: float = 1e-7):
    """``(a, loss, index)`` over the last dimension: the weighted-L1 optimal scale ``a`` of ``x`` to ``y``,
    its loss ``sum w |a x - y|`` and the index ``i`` with ``a = y_i / x_i``."""
    x, y, w = torch.broadcast_tensors(x, y, w)
    sign = torch.sign(x)
    x, y = x * sign, y * sign  # x >= 0 now; |a x - y| is unchanged
    ratio = y / x.clamp_min(eps)
    ratio, order = ratio.sort(dim=-1)
    wx = torch.gather(w * x, -1, order)
    slope = 2 * wx.cumsum(-1) - wx.sum(-1, keepdim=True)  # right slope of the objective at each sorted ratio
    k = torch.searchsorted(slope, torch.zeros_like(slope[..., :1]), side="left").clamp_max(slope.shape[-1] - 1)
    a = ratio.gather(-1, k).squeeze(-1)
    index = order.gather(-1, k).squeeze(-1)
    loss = (w * (a[..., None] * x - y).abs()).sum(-1)
    return a, loss, index


def _best_anchor(src_flat: torch.Tensor, tgt_flat: torch.Tensor, w_flat: torch.Tensor, anchors: torch.Tensor,
                 anchor_rows, key: torch.Tensor) -> tuple[int, int]:
    """The anchor (an element of ``anchors``) of least anchored-L1 loss and its scale index into the flat
    arrays. ``anchor_rows(idx)`` gives the (src, tgt) values subtracted for a chunk of anchors; ``key``
    one row of values per element (anchors with equal rows pose the same sub-problem). Of anchors
    whose float losses tie, the last wins, as in MoGe's solver on the CPU (its ``scatter_min`` writes
    every tied anchor and keeps the last): tied lines are equally optimal, this keeps the same one."""
    n = src_flat.shape[-1]
    chunk = max(1, _ANCHOR_CHUNK // max(n, 1))
    anchors = _distinct_anchors(anchors, key)
    best = (math.inf, 0, 0)
    for start in range(0, anchors.numel(), chunk):
        idx = anchors[start:start + chunk]
        s0, t0 = anchor_rows(idx)
        _, loss, index = l1_scale(src_flat[None] - s0, tgt_flat[None] - t0, w_flat[None].expand(len(idx), n))
        m = len(idx) - 1 - int(torch.argmin(loss.flip(0)))  # the last of the chunk's minima
        if float(loss[m]) <= best[0]:
            best = (float(loss[m]), int(idx[m]), int(index[m]))
    return best[1], best[2]


def _distinct_anchors(anchors: torch.Tensor, key: torch.Tensor) -> torch.Tensor:
    """``anchors`` without repeats of one anchor's values (a subsample of an image smaller than the grid
    repeats pixels): a repeat poses the identical sub-problem, with the identical loss, so only its last
    occurrence is kept, which leaves the choice among tied anchors unchanged."""
    _, inverse = torch.unique(key[anchors], dim=0, return_inverse=True)
    pos = torch.arange(anchors.numel(), device=anchors.device)
    last = torch.full((int(inverse.max()) + 1,), -1, dtype=torch.long, device=anchors.device)
    last = last.scatter_reduce(0, inverse, pos, reduce="amax")
    return anchors[last.sort().values]


@torch.no_grad()
def l1_affine(x: torch.Tensor, y: torch.Tensor, w: torch.Tensor):
    """``(scale, shift)`` minimising ``sum w |scale * x + shift - y|`` (1-D tensors)."""
    anchors = torch.nonzero(w > 0).flatten()
    if anchors.numel() == 0:
        raise ValueError("l1_affine: no positive weight")
    i1, i2 = _best_anchor(x, y, w, anchors, lambda idx: (x[idx, None], y[idx, None]),
                          torch.stack([x, y], 1))
    den = x[i2] - x[i1]
    scale = (y[i2] - y[i1]) / torch.where(den != 0, den, torch.full_like(den, 1e-7))
    return scale, y[i1] - scale * x[i1]


@torch.no_grad()
def l1_scale_only(x: torch.Tensor, y: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
    """The scale minimising ``sum w |scale * x - y|`` (1-D tensors)."""
    return l1_scale(x, y, w)[0]


@torch.no_grad()
def l1_points_scale(src: torch.Tensor, tgt: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
    """One scale for N×3 points minimising ``sum_i w_i |scale * src_i - tgt_i|_1``."""
    return l1_scale(src.flatten(), tgt.flatten(), w[:, None].expand_as(src).flatten())[0]


@torch.no_grad()
def l1_points_scale_shift(src: torch.Tensor, tgt: torch.Tensor, w: torch.Tensor):
    """``(scale, shift[3])`` minimising ``sum_i w_i |scale * src_i + shift - tgt_i|_1`` for N×3 points."""
    anchors = torch.nonzero(w > 0).flatten()
    if anchors.numel() == 0:
        raise ValueError("l1_points_scale_shift: no positive weight")
    sf, tf = src.flatten(), tgt.flatten()
    wf = w[:, None].expand_as(src).flatten()
    p, i2 = _best_anchor(sf, tf, wf, anchors,
                         lambda idx: (src[idx].repeat(1, src.shape[0]), tgt[idx].repeat(1, src.shape[0])),
                         torch.cat([src, tgt], 1))
    i1 = p * 3 + i2 % 3  # the same coordinate of the anchor point
    den = sf[i2] - sf[i1]
    scale = (tf[i2] - tf[i1]) / torch.where(den != 0, den, torch.ones_like(den))
    return scale, tgt[p] - scale * src[p]


@torch.no_grad()
def l1_points_shift(src: torch.Tensor, tgt: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
    """The xyz shift minimising ``sum_i w_i |src_i + shift - tgt_i|_1`` (per-axis weighted medians)."""
    d = (tgt - src).T  # 3×N
    return l1_scale(torch.ones_like(d), d, w[None, :])[0]


@torch.no_grad()
def l2_affine(x: torch.Tensor, y: torch.Tensor):
    """``(scale, shift)`` of the ordinary least-squares line ``y ≈ scale * x + shift``."""
    A = torch.stack([x, torch.ones_like(x)], dim=-1)
    a, b = torch.linalg.lstsq(A, y[:, None])[0].squeeze(-1).unbind(-1)
    return a, b


@torch.no_grad()
def masked_nearest_subsample(mask: torch.Tensor, size: tuple[int, int] = (64, 64)):
    """``(cell_mask, (rows, cols))`` of the mask-aware nearest subsample of an H×W bool ``mask`` onto a
    ``size`` grid: ``rows``/``cols`` (h×w long) index the chosen pixel of each cell, ``cell_mask`` says
    whether the cell found a valid pixel (see the module doc)."""
    H, W = mask.shape[-2:]
    h, w = size
    dev = mask.device
    fh, fw = max(1.0, H / h), max(1.0, W / w)
    kh, kw = math.ceil(fh), math.ceil(fw)
    f32 = torch.float32
    # cell centres in pixel units (pixel (i, j) is the square [j, j+1) x [i, i+1))
    cu = torch.linspace(0.5 / w, 1 - 0.5 / w, w, dtype=f32, device=dev) * torch.tensor(W, dtype=f32)
    cv = torch.linspace(0.5 / h, 1 - 0.5 / h, h, dtype=f32, device=dev) * torch.tensor(H, dtype=f32)
    left = torch.round(cu - torch.tensor(fw / 2, dtype=f32)).long()  # w
    top = torch.round(cv - torch.tensor(fh / 2, dtype=f32)).long()  # h
    rows = top[:, None, None, None] + torch.arange(kh, device=dev)[None, None, :, None]  # h×1×kh×1
    cols = left[None, :, None, None] + torch.arange(kw, device=dev)[None, None, None, :]  # 1×w×1×kw
    rows, cols = torch.broadcast_tensors(rows, cols)  # h×w×kh×kw
    inside = (rows >= 0) & (rows < H) & (cols >= 0) & (cols < W)
    ok = inside & mask[rows.clamp(0, H - 1), cols.clamp(0, W - 1)]
    dy = (rows.to(f32) + 0.5) - cv[:, None, None, None]
    dx = (cols.to(f32) + 0.5) - cu[None, :, None, None]
    dist = torch.where(ok, dx * dx + dy * dy, torch.full_like(dx, math.inf)).reshape(h, w, kh * kw)
    k = dist.argmin(-1, keepdim=True)
    r = torch.gather(rows.reshape(h, w, -1), -1, k).squeeze(-1)
    c = torch.gather(cols.reshape(h, w, -1), -1, k).squeeze(-1)
    cell = ok.reshape(h, w, -1).any(-1)
    # a cell without a valid pixel points at its window's first in-image pixel, as a padded window does
    r, c = torch.where(cell, r, r.clamp(0, H - 1)), torch.where(cell, c, c.clamp(0, W - 1))
    return cell, (r, c)
