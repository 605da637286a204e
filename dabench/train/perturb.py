"""Strong perturbations for the student's unlabelled images (paper §3.2).

The paper names colour jitter, Gaussian blur and CutMix (p = 0.5) without strengths; the
defaults follow the first author's UniMatch (inferred, not stated in the paper): ColorJitter
(0.5, 0.5, 0.5, 0.25) with p = 0.8, grayscale p = 0.2, blur σ ∈ [0.1, 2] with p = 0.5, CutMix box
of 2–40 % of the area with aspect 0.3–3.33. All randomness comes from an explicit
``torch.Generator`` so a resumed run draws exactly the same perturbations.

Images are float B×3×H×W in [0, 1] (before ImageNet normalisation).
"""
from __future__ import annotations

import math
import torch
import torchvision.transforms.v2.functional as TF

from dabench.train.config import PerturbConfig

__all__ = ["colour_jitter", "gaussian_blur", "strong_perturb", "cutmix_box", "cutmix_boxes",
           "apply_cutmix"]


def _u(g: torch.Generator, lo: float = 0.0, hi: float = 1.0) -> float:
    return lo + (hi - lo) * float(torch.rand((), generator=g))


def colour_jitter(img: torch.Tensor, g: torch.Generator, brightness: float, contrast: float, saturation: float,
                  hue: float) -> torch.Tensor:
    """torchvision-style ColorJitter of one 3×H×W image: the four adjustments in a random order,
    factors uniform in ``[max(0, 1 − s), 1 + s]`` (hue in ``[−hue, hue]``)."""
    order = torch.randperm(4, generator=g).tolist()
    for i in order:
        if i == 0 and brightness > 0:
            img = TF.adjust_brightness(img, _u(g, max(0.0, 1 - brightness), 1 + brightness))
        elif i == 1 and contrast > 0:
            img = TF.adjust_contrast(img, _u(g, max(0.0, 1 - contrast), 1 + contrast))
        elif i == 2 and saturation > 0:
            img = TF.adjust_saturation(img, _u(g, max(0.0, 1 - saturation), 1 + saturation))
        elif i == 3 and hue > 0:
            img = TF.adjust_hue(img, _u(g, -hue, hue))
    return img.clamp(0, 1)


def gaussian_blur(img: torch.Tensor, sigma: float) -> torch.Tensor:
    """Gaussian blur with standard deviation ``sigma`` pixels (kernel 2⌈3σ⌉+1, reflect padding)."""
    k = 2 * math.ceil(3 * sigma) + 1
    k = min(k, 2 * (min(img.shape[-2:]) // 2) - 1)
    if k < 3:
        return img
    return TF.gaussian_blur(img, kernel_size=[k, k], sigma=[sigma, sigma])


def strong_perturb(images: torch.Tensor, g: torch.Generator, cfg: PerturbConfig) -> torch.Tensor:
    """Colour jitter (p = ``jitter_p``), grayscale (p = ``grayscale_p``) and Gaussian blur
    (p = ``blur_p``) per image of a B×3×H×W batch in [0, 1]."""
    out = []
    for img in images:
        if _u(g) < cfg.jitter_p:
            img = colour_jitter(img, g, cfg.brightness, cfg.contrast, cfg.saturation, cfg.hue)
        if _u(g) < cfg.grayscale_p:
            img = TF.rgb_to_grayscale(img, num_output_channels=3)
        if _u(g) < cfg.blur_p:
            img = gaussian_blur(img, _u(g, *cfg.blur_sigma))
        out.append(img)
    return torch.stack(out)


def cutmix_box(h: int, w: int, g: torch.Generator, p: float = 0.5, area: tuple[float, float] = (0.02, 0.4),
               ratio: tuple[float, float] = (0.3, 1 / 0.3)) -> torch.Tensor:
    """An H×W bool box mask M: with probability ``p`` a rectangle covering ``area`` (fraction of
    the image, uniform) with aspect ``ratio`` (uniform) at a uniform position; else all False."""
    m = torch.zeros(h, w, dtype=torch.bool)
    if _u(g) >= p:
        return m
    for _ in range(100):
        size = _u(g, *area) * h * w
        r = _u(g, *ratio)
        bw, bh = int(math.sqrt(size / r)), int(math.sqrt(size * r))
        if 1 <= bw <= w and 1 <= bh <= h:
            x = int(torch.randint(0, w - bw + 1, (), generator=g))
            y = int(torch.randint(0, h - bh + 1, (), generator=g))
            m[y:y + bh, x:x + bw] = True
            return m
    return m


def cutmix_boxes(b: int, h: int, w: int, g: torch.Generator, cfg: PerturbConfig) -> torch.Tensor:
    return torch.stack([cutmix_box(h, w, g, cfg.cutmix_p, cfg.cutmix_area, cfg.cutmix_ratio) for _ in range(b)])


def apply_cutmix(images: torch.Tensor, boxes: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Paste each image ``u_a`` into its partner ``u_b`` (the batch rolled by one) where the box is
    set: returns ``u_ab = M·u_a + (1 − M)·u_b`` and the partner index of every image."""
    partner = torch.roll(torch.arange(images.shape[0]), 1)
    mixed = torch.where(boxes[:, None], images, images[partner])
    return mixed, partner
