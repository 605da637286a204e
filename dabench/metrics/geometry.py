"""Geometry beyond the depth map: MoGe's invariance ladder, point maps, field of view and boundary
sharpness (MoGe's radius F1 and Depth Pro's scale-invariant boundary F1 / recall).

``compute_levels(pred, gt)`` scores one image at every invariance level its prediction admits, with
MoGe's conventions (``moge/test/metrics.py``, ``compute_metrics``, in microsoft/MoGe):

pred keys (any subset): ``disparity_affine_invariant``, ``depth_scale_invariant``,
``depth_affine_invariant``, ``depth_metric`` (H×W), ``points_scale_invariant``,
``points_affine_invariant``, ``points_metric`` (H×W×3, camera frame) and ``intrinsics`` (3×3,
normalised: focal lengths divided by the image width / height).

gt keys: ``depth`` (H×W), ``depth_mask`` (H×W bool), ``points`` (H×W×3), ``intrinsics`` (normalised
3×3, optional), ``is_metric`` (bool), ``has_sharp_boundary`` (bool) and, for local points,
``segmentation_mask`` (H×W int) with ``segmentation_labels`` ({name: id}).

Levels and what each aligns (robust weighted-L1 fits of ``dabench.metrics.geometry_align``, on the
mask-aware nearest 64×64 subsample of the valid pixels, weights ``1 / gt``):

- ``depth_metric``: none (only when ``gt["is_metric"]``);
- ``depth_scale_invariant``: scale (from the scale-invariant, else metric depth);
- ``depth_affine_invariant``: scale and shift (from affine, else scale-invariant, else metric depth);
- ``disparity_affine_invariant``: least-squares scale and shift of disparity on every valid pixel,
  then depth ``1 / max(disparity, 1 / max gt)`` (from affine disparity, else 1 / scale-invariant or
  metric depth);
- ``points_metric``: xyz shift; ``points_scale_invariant``: scale; ``points_affine_invariant``:
  scale and xyz shift (each falling back to the stricter point maps as the depth levels do);
- ``local_points``: per segment, scale and xyz shift fitted on the segment, errors over its
  diameter, averaged over segments with at least 10 subsample pixels;
- ``fov_x``: ``mae`` and signed ``deviation`` of the horizontal field of view, degrees;
- ``boundary``: ``radius{1,2,3}_f1`` (:func:`boundary_f1`) of the first aligned depth, when
  ``gt["has_sharp_boundary"]``.

Depth levels report ``rel`` (mean ``|p - g| / (g + 1e-6)``) and ``delta1`` (fraction with
``max(g/p, p/g) < 1.25``); point levels ``rel`` (mean ``|p - g| / (|g| + 1e-6)``) and ``delta1``
(fraction with ``|p - g| < 0.25 min(|g|, |p|)``).

Depth Pro's boundary metrics (``src/depth_pro/eval/boundary_metrics.py`` in apple/ml-depth-pro):
:func:`si_boundary_f1` (dense depth ground truth) and :func:`si_boundary_recall` (a matting mask).
Both compare neighbouring pixels' inverse depths: an edge at threshold ``t`` is a neighbour pair whose
inverse-depth ratio exceeds ``t``, in each of four directions. The F1 averages precision and recall
over the directions; the recall thins predicted edges to one pixel per run (non-maximum
suppression) and takes mask edges from ``mask > 0.1``. Both are averaged over ``n`` thresholds in
``[t_min, t_max]`` weighted by the threshold. Scale-invariant by construction: no alignment. As in
the reference, a direction without ground-truth (or predicted) edges counts 0 in the mean over
directions: an exact copy of a map whose edges all face one way scores 0.25, not 1.

Records and tables use the flat names of :data:`LEVEL_METRICS` (``<level>_<metric>``), registered in
the metric registry under the ``geometry`` task, and ``si_boundary_f1`` / ``si_boundary_recall``
under ``boundary``.
"""
from __future__ import annotations

import math
from typing import Any, Mapping

import numpy as np
import torch

from dabench.metrics.geometry_align import (l1_affine, l1_points_scale, l1_points_scale_shift, l1_points_shift,
                                            l1_scale_only, l2_affine, masked_nearest_subsample)
from dabench.metrics.geometry_specs import LEVEL_METRICS, LEVELS  # noqa: F401  (re-exported)

PRED_KEYS = ("disparity_affine_invariant", "depth_scale_invariant", "depth_affine_invariant", "depth_metric",
             "points_scale_invariant", "points_affine_invariant", "points_metric", "intrinsics")
GT_KEYS = ("depth", "depth_mask", "points", "intrinsics", "is_metric", "has_sharp_boundary", "segmentation_mask",
           "segmentation_labels")
SUBSAMPLE = (64, 64)


def _t(x) -> torch.Tensor:
    return x if isinstance(x, torch.Tensor) else torch.from_numpy(np.ascontiguousarray(x))


# --- per-level scores ---------------------------------------------------------------------------
def _depth_scores(p: torch.Tensor, g: torch.Tensor) -> dict[str, float]:
    return {"rel": (torch.abs(p - g) / (g + 1e-6)).mean().item(),
            "delta1": (torch.maximum(g / p, p / g) < 1.25).float().mean().item()}


def _point_scores(p: torch.Tensor, g: torch.Tensor) -> dict[str, float]:
    gn, pn, err = torch.norm(g, dim=-1), torch.norm(p, dim=-1), torch.norm(p - g, dim=-1)
    return {"rel": (err / (gn + 1e-6)).mean().item(),
            "delta1": (err < 0.25 * torch.minimum(gn, pn)).float().mean().item()}


def boundary_f1(pred, gt, mask, radius: int = 1) -> float:
    """MoGe's boundary F1 at ``radius`` (pixels): a pixel and a neighbour within the disk of that radius
    (both valid) form an edge at threshold ``t`` when the neighbour's depth exceeds the pixel's by a
    factor ``1 + t``; F1 of predicted vs ground-truth edges, averaged over ten ``t`` in [0.05, 0.25]
    weighted by ``t``. Pixels closer than ``radius`` to the image border are not centres."""
    pred, gt, mask = _t(pred), _t(gt), _t(mask).bool()
    k = 2 * radius + 1
    off = torch.arange(-radius, radius + 1, dtype=torch.float32)
    disk = (off[None, :] ** 2 + off[:, None] ** 2) <= radius ** 2 + 1e-5

    def windows(x):  # (H-2r)×(W-2r)×k×k neighbourhoods
        return x.unfold(0, k, 1).unfold(1, k, 1)

    centre = (slice(radius, -radius), slice(radius, -radius))
    pred_rel = windows(pred) / pred[centre][..., None, None]
    gt_rel = windows(gt) / gt[centre][..., None, None]
    valid = mask[centre][..., None, None] & disk & windows(mask)
    thresholds = torch.linspace(0.05, 0.25, 10).tolist()  # float32 values, as the reference uses
    f1s = []
    for t in thresholds:
        pe, ge = (pred_rel > 1 + t) & valid, (gt_rel > 1 + t) & valid
        tp = (pe & ge).float().sum()
        a = tp / ge.float().sum().clamp_min(1e-12)
        b = tp / pe.float().sum().clamp_min(1e-12)
        f1s.append((2 * a * b / (a + b).clamp_min(1e-12)).item())
    return sum(t * f for t, f in zip(thresholds, f1s)) / sum(thresholds)


def _fov(K: torch.Tensor):
    return 2 * torch.atan(0.5 / K[..., 0, 0]), 2 * torch.atan(0.5 / K[..., 1, 1])


def _mean_dicts(items: list[dict[str, float]]) -> dict[str, float]:
    keys = sorted({k for d in items for k in d})
    out = {}
    for k in keys:
        v = [d[k] for d in items if k in d and d[k] is not None and not math.isnan(d[k])]
        out[k] = sum(v) / len(v) if v else float("nan")
    return out


def _first(pred: Mapping[str, Any], *keys: str, fn=None):
    for k in keys:
        if k in pred:
            return fn(k, pred[k]) if fn else pred[k]
    return None


def compute_levels(pred: Mapping[str, Any], gt: Mapping[str, Any]) -> dict[str, dict[str, float]]:
    """``{level: {metric: value}}`` for one image (numpy arrays or torch tensors; see the module doc).
    A level the prediction cannot produce is absent, never 0."""
    unknown = sorted(set(pred) - set(PRED_KEYS))
    if unknown:
        raise ValueError(f"compute_levels: unknown prediction key(s) {unknown}; expected some of {list(PRED_KEYS)}")
    pred = {k: _t(v) for k, v in pred.items()}
    mask = _t(gt["depth_mask"]).bool()
    gd = _t(gt["depth"])
    gp = _t(gt["points"]) if gt.get("points") is not None else None
    if gp is None and any("points" in k for k in pred):
        raise ValueError("compute_levels: point-map predictions need gt['points']")
    if not bool(mask.any()):
        raise ValueError("compute_levels: the ground-truth mask has no valid pixel")
    cell, idx = masked_nearest_subsample(mask, SUBSAMPLE)
    out: dict[str, dict[str, float]] = {}
    aligned = None  # the first aligned depth map: what the boundary F1 scores

    def sub(x):  # the valid cells of the 64x64 subsample
        return x[idx][cell]

    if "depth_metric" in pred and gt["is_metric"]:
        p = pred["depth_metric"]
        out["depth_metric"] = _depth_scores(p[mask], gd[mask])
        aligned = p
    p = _first(pred, "depth_scale_invariant", "depth_metric")
    if p is not None:
        g = sub(gd)
        p = p * l1_scale_only(sub(p), g, 1 / g)
        out["depth_scale_invariant"] = _depth_scores(p[mask], gd[mask])
        aligned = p if aligned is None else aligned
    p = _first(pred, "depth_affine_invariant", "depth_scale_invariant", "depth_metric")
    if p is not None:
        g = sub(gd)
        a, b = l1_affine(sub(p), g, 1 / g)
        p = p * a + b
        out["depth_affine_invariant"] = _depth_scores(p[mask], gd[mask])
        aligned = p if aligned is None else aligned
    disp = _first(pred, "disparity_affine_invariant", "depth_scale_invariant", "depth_metric",
                  fn=lambda k, v: v if k.startswith("disparity") else 1 / v)
    if disp is not None:
        a, b = l2_affine(disp[mask], 1 / gd[mask])
        disp = disp * a + b
        depth = 1 / disp.clamp_min(1 / gd[mask].max().item())
        out["disparity_affine_invariant"] = _depth_scores(depth[mask], gd[mask])
        aligned = 1 / disp.clamp_min(1e-6) if aligned is None else aligned

    if "points_metric" in pred and gt["is_metric"]:
        p = pred["points_metric"]
        g = sub(gp)
        p = p + l1_points_shift(sub(p), g, 1 / g.norm(dim=-1))
        out["points_metric"] = _point_scores(p[mask], gp[mask])
    p = _first(pred, "points_scale_invariant", "points_metric")
    if p is not None:
        g = sub(gp)
        p = p * l1_points_scale(sub(p), g, 1 / g.norm(dim=-1))
        out["points_scale_invariant"] = _point_scores(p[mask], gp[mask])
    p = _first(pred, "points_affine_invariant", "points_scale_invariant", "points_metric")
    if p is not None:
        g = sub(gp)
        s, b = l1_points_scale_shift(sub(p), g, 1 / g.norm(dim=-1))
        p = p * s + b
        out["points_affine_invariant"] = _point_scores(p[mask], gp[mask])

    points_keys = [k for k in pred if "points" in k]
    if gt.get("segmentation_mask") is not None and points_keys:
        out["local_points"] = _local_points(pred[points_keys[0]], gp, mask, _t(gt["segmentation_mask"]),
                                            gt["segmentation_labels"], cell, idx)
    if "intrinsics" in pred and gt.get("intrinsics") is not None:
        dev = torch.rad2deg(_fov(pred["intrinsics"])[0] - _fov(_t(gt["intrinsics"]))[0])
        out["fov_x"] = {"mae": dev.abs().mean().item(), "deviation": dev.item()}
    if aligned is not None and gt["has_sharp_boundary"]:
        out["boundary"] = {f"radius{r}_f1": boundary_f1(aligned, gd, mask, radius=r) for r in (1, 2, 3)}
    return out


def _local_points(pred, gp, mask, seg, labels, cell, idx) -> dict[str, float]:
    seg_sub = seg[idx]
    scores = []
    for seg_id in labels.values():
        full = (seg == seg_id) & mask
        cells = (seg_sub == seg_id) & cell
        if cells.sum().item() < 10:
            continue
        g = gp[full]
        diameter = (g.max(dim=0).values - g.min(dim=0).values).max()
        gs = gp[idx][cells]
        s, b = l1_points_scale_shift(pred[idx][cells], gs, (1 / diameter).expand(gs.shape[0]))
        err = torch.norm(pred[full] * s + b - g, dim=-1)
        scores.append({"rel": (err / diameter).mean().item(), "delta1": (err < 0.25 * diameter).float().mean().item()})
    return _mean_dicts(scores)


def flatten_levels(levels: Mapping[str, Mapping[str, float]]) -> dict[str, float]:
    """``{level: {metric: v}}`` → ``{f"{level}_{metric}": v}`` (the record / table names)."""
    return {f"{lv}_{m}": float(v) for lv, ms in levels.items() for m, v in ms.items()}


# --- Depth Pro's scale-invariant boundary metrics ------------------------------------------------
def _thresholds(t_min: float, t_max: float, n: int):
    t = np.linspace(t_min, t_max, n)
    return t, t / t.sum()


def _inverse(depth: np.ndarray) -> np.ndarray:
    return 1.0 / depth.clip(min=1e-6)


def _edges(d: np.ndarray, t: float):
    """Neighbour pairs whose value ratio exceeds ``t``: (left, top, right, bottom) = the left / top /
    right / bottom pixel of the pair is the larger (closer, for inverse depth)."""
    return (d[:, :-1] / d[:, 1:] > t, d[:-1, :] / d[1:, :] > t, d[:, 1:] / d[:, :-1] > t, d[1:, :] / d[:-1, :] > t)


def _thin_rows(ratio: np.ndarray, t: float) -> np.ndarray:
    """Keep, of each horizontal run of ``ratio > t``, only its (first) maximum."""
    above = ratio > t
    out = np.zeros_like(above)
    r, c = np.nonzero(above)
    if r.size == 0:
        return out
    start = np.ones(r.size, dtype=bool)
    start[1:] = (r[1:] != r[:-1]) | (c[1:] != c[:-1] + 1)
    run = np.cumsum(start) - 1
    v = ratio[r, c]
    run_max = np.maximum.reduceat(v, np.flatnonzero(start))
    at_max = np.flatnonzero(v == run_max[run])
    _, first = np.unique(run[at_max], return_index=True)
    keep = at_max[first]
    out[r[keep], c[keep]] = True
    return out


def _thin_edges(d: np.ndarray, t: float):
    return (_thin_rows(d[:, :-1] / d[:, 1:], t), _thin_rows((d[:-1, :] / d[1:, :]).T, t).T,
            _thin_rows(d[:, 1:] / d[:, :-1], t), _thin_rows((d[1:, :] / d[:-1, :]).T, t).T)


def _mask_edges(m: np.ndarray):
    return (m[:, :-1] & ~m[:, 1:], m[:-1, :] & ~m[1:, :], m[:, 1:] & ~m[:, :-1], m[1:, :] & ~m[:-1, :])


def _direction_mean(hits, totals) -> float:
    return 0.25 * sum(np.count_nonzero(h) / max(np.count_nonzero(t), 1) for h, t in zip(hits, totals))


def _f1_at(p_inv: np.ndarray, g_inv: np.ndarray, t: float, pairs=None) -> float:
    pe, ge = _edges(p_inv, t), _edges(g_inv, t)
    if pairs is not None:
        pe, ge = [e & v for e, v in zip(pe, pairs)], [e & v for e, v in zip(ge, pairs)]
    both = [a & b for a, b in zip(pe, ge)]
    r, p = _direction_mean(both, ge), _direction_mean(both, pe)
    return 0.0 if r + p == 0 else 2 * r * p / (r + p)


def _check_2d(name: str, *arrays) -> list[np.ndarray]:
    out = [np.asarray(a.detach().cpu() if isinstance(a, torch.Tensor) else a) for a in arrays]
    if any(a.ndim != 2 for a in out) or len({a.shape for a in out}) != 1:
        raise ValueError(f"{name}: expected two H×W maps of one shape, got {[a.shape for a in out]}")
    return out


def si_boundary_f1(pred_depth, gt_depth, t_min: float = 1.05, t_max: float = 1.25, n: int = 10, *,
                   mask=None) -> float:
    """Depth Pro's scale-invariant boundary F1 of a depth map against dense ground-truth depth.

    ``mask`` (dabench's extension, default None = the reference): H×W valid ground truth; neighbour
    pairs with an invalid pixel are left out of both edge sets (sparse or sky-less ground truth)."""
    p, g = _check_2d("si_boundary_f1", pred_depth, gt_depth)
    ts, ws = _thresholds(t_min, t_max, n)
    pi, gi = _inverse(p), _inverse(g)
    pairs = None
    if mask is not None:
        (m,) = _check_2d("si_boundary_f1 mask", mask)
        m = m.astype(bool)
        h, v = m[:, :-1] & m[:, 1:], m[:-1, :] & m[1:, :]
        pairs = (h, v, h, v)
    return float(sum(w * _f1_at(pi, gi, t, pairs) for t, w in zip(ts, ws)))


def si_boundary_recall(pred_depth, mask, t_min: float = 1.05, t_max: float = 1.25, n: int = 10,
                       alpha_threshold: float = 0.1) -> float:
    """Depth Pro's scale-invariant boundary recall of a depth map against a (matting) mask: the mask's
    foreground (``mask > alpha_threshold``) is taken to be in front."""
    p, m = _check_2d("si_boundary_recall", pred_depth, mask)
    ts, ws = _thresholds(t_min, t_max, n)
    pi, me = _inverse(p), _mask_edges(m > alpha_threshold)
    return float(sum(w * _direction_mean([a & b for a, b in zip(_thin_edges(pi, float(t)), me)], me)
                     for t, w in zip(ts, ws)))
