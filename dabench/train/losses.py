"""Depth Anything's training losses (paper §3.1–3.3).

All depth losses work in disparity space on per-image affine-normalised maps:
``d̂ = (d − median(d)) / mean|d − median(d)|`` over the image's valid pixels, for prediction and
target alike, and the loss is ``mean |d̂ − d̂*|`` over those pixels, averaged over images.
Medians are ``torch.median``'s (the lower middle value for an even count), so the loss is
exactly the same function on every backend. Losses are computed in float32 even under autocast.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

__all__ = ["depth_to_disparity", "affine_normalise", "affine_invariant_loss_per_image", "affine_invariant_loss",
           "cutmix_unlabelled_loss", "feature_alignment_loss"]

_EPS = 1e-6


def depth_to_disparity(depth: torch.Tensor, valid: torch.Tensor, sky: torch.Tensor | None = None
                       ) -> tuple[torch.Tensor, torch.Tensor]:
    """Metric depth (metres, B×H×W) -> disparity target and its mask. Valid pixels get
    ``1 / depth``; sky pixels (where ``sky`` marks them) get disparity 0 and join the mask; every
    other pixel is masked out."""
    valid = valid.bool() & (depth > 0) & torch.isfinite(depth)
    disp = torch.where(valid, 1.0 / depth.clamp_min(1e-8), torch.zeros_like(depth))
    if sky is not None:
        sky = sky.bool()
        disp = torch.where(sky, torch.zeros_like(disp), disp)
        valid = valid | sky
    return disp.float(), valid


def _masked_median(x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Per-row lower median of ``x`` (B×N) over ``mask``; rows without a masked value give 0."""
    filled = torch.where(mask, x, torch.full_like(x, float("nan")))
    med = torch.nanmedian(filled, dim=1).values
    return torch.nan_to_num(med, nan=0.0)


def affine_normalise(d: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """``(d − median) / mean|d − median|`` per image over ``mask`` (B×H×W in, B×H×W out; masked-out
    pixels are set to 0)."""
    b = d.shape[0]
    x = d.reshape(b, -1).float()
    m = mask.reshape(b, -1).bool()
    med = _masked_median(x, m)
    centred = (x - med[:, None]) * m
    count = m.sum(1).clamp_min(1)
    scale = centred.abs().sum(1) / count
    return (centred / scale.clamp_min(_EPS)[:, None]).reshape(d.shape)


def affine_invariant_loss_per_image(pred: torch.Tensor, target: torch.Tensor, mask: torch.Tensor
                                    ) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-image affine-invariant MAE (B,) and a bool (B,) saying which images had any masked pixel
    (the loss of an image without one is 0)."""
    mask = mask.bool()
    b = pred.shape[0]
    p = affine_normalise(pred, mask).reshape(b, -1)
    t = affine_normalise(target, mask).reshape(b, -1)
    m = mask.reshape(b, -1)
    count = m.sum(1)
    err = ((p - t).abs() * m).sum(1) / count.clamp_min(1)
    return err, count > 0


def affine_invariant_loss(pred: torch.Tensor, target: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """The paper's labelled loss: mean over images (with any valid pixel) of the per-image
    affine-invariant MAE between disparity maps ``pred`` and ``target`` (B×H×W) on ``mask``."""
    err, has = affine_invariant_loss_per_image(pred, target, mask)
    if not bool(has.any()):
        return pred.sum() * 0.0
    return err[has].mean()


def cutmix_unlabelled_loss(pred: torch.Tensor, target_a: torch.Tensor, target_b: torch.Tensor,
                           box: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
    """The paper's CutMix-weighted unlabelled loss, per image then averaged:
    ``(ΣM/HW)·ρ(S(u_ab)⊙M, T(u_a)⊙M) + (Σ(1−M)/HW)·ρ(S(u_ab)⊙(1−M), T(u_b)⊙(1−M))``.

    ``box`` (B×H×W bool) is M, where the student's input came from image ``u_a``; elsewhere it
    came from ``u_b``. An image without a box (``M`` empty) reduces to ρ against ``target_b``.
    ``mask`` optionally restricts both regions (e.g. to valid pseudo-label pixels).
    """
    box = box.bool()
    base = torch.ones_like(box) if mask is None else mask.bool()
    hw = box[0].numel()
    w_in = box.flatten(1).sum(1).float() / hw
    in_err, _ = affine_invariant_loss_per_image(pred, target_a, box & base)
    out_err, _ = affine_invariant_loss_per_image(pred, target_b, (~box) & base)
    return (w_in * in_err + (1.0 - w_in) * out_err).mean()


def feature_alignment_loss(feat: torch.Tensor, frozen_feat: torch.Tensor, alpha: float = 0.85) -> torch.Tensor:
    """``1 − mean cos(f, f′)`` between the student's features ``feat`` and a frozen encoder's
    ``frozen_feat`` (B×C×h×w, cosine over C), over the pixels whose similarity does not already
    exceed the margin ``alpha`` (those are excluded, paper §3.3). No pixel left: 0."""
    cos = F.cosine_similarity(feat.float(), frozen_feat.detach().float(), dim=1, eps=1e-8)
    keep = cos.detach() <= alpha
    if not bool(keep.any()):
        return feat.sum() * 0.0
    return 1.0 - cos[keep].mean()
