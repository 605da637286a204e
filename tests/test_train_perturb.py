"""Strong perturbations and CutMix (dabench/train/perturb.py)."""
from __future__ import annotations

import torch

from dabench.train.config import PerturbConfig
from dabench.train.perturb import apply_cutmix, colour_jitter, cutmix_box, cutmix_boxes, gaussian_blur, strong_perturb


def _g(seed=0):
    g = torch.Generator()
    g.manual_seed(seed)
    return g


def _images(b=4, h=28, w=28, seed=0):
    return torch.rand(b, 3, h, w, generator=_g(seed))


def test_strong_perturb_deterministic_in_range_and_changes_images():
    x = _images()
    cfg = PerturbConfig(jitter_p=1.0, blur_p=1.0)
    a = strong_perturb(x, _g(1), cfg)
    b = strong_perturb(x, _g(1), cfg)
    c = strong_perturb(x, _g(2), cfg)
    assert torch.equal(a, b)
    assert not torch.equal(a, c)
    assert a.shape == x.shape and a.min() >= 0 and a.max() <= 1
    assert (a - x).abs().mean() > 0.01


def test_disabled_perturbations_are_identity():
    x = _images()
    cfg = PerturbConfig(jitter_p=0.0, grayscale_p=0.0, blur_p=0.0)
    assert torch.equal(strong_perturb(x, _g(), cfg), x)


def test_grayscale_makes_channels_equal():
    x = _images()
    y = strong_perturb(x, _g(), PerturbConfig(jitter_p=0.0, grayscale_p=1.0, blur_p=0.0))
    assert torch.allclose(y[:, 0], y[:, 1]) and torch.allclose(y[:, 1], y[:, 2])


def test_brightness_only_jitter_scales_pixels():
    x = _images(1)[0] * 0.5
    y = colour_jitter(x, _g(3), brightness=0.5, contrast=0, saturation=0, hue=0)
    ratio = (y / x.clamp_min(1e-6))
    assert 0.5 - 1e-5 <= ratio.mean() <= 1.5 + 1e-5
    assert torch.allclose(ratio, ratio.mean().expand_as(ratio), atol=1e-4)


def test_gaussian_blur_smooths_noise_and_keeps_constants():
    x = _images(1)[0]
    y = gaussian_blur(x, 1.5)
    assert y.var() < 0.5 * x.var()
    const = torch.full((3, 20, 20), 0.3)
    assert torch.allclose(gaussian_blur(const, 2.0), const, atol=1e-6)


def test_cutmix_box_area_ratio_and_probability():
    g = _g()
    h, w = 56, 56
    hits = 0
    for _ in range(400):
        m = cutmix_box(h, w, g, p=0.5, area=(0.02, 0.4), ratio=(0.3, 1 / 0.3))
        if m.any():
            hits += 1
            ys, xs = torch.nonzero(m, as_tuple=True)
            bh, bw = int(ys.max() - ys.min() + 1), int(xs.max() - xs.min() + 1)
            assert m.sum() == bh * bw  # one solid rectangle
            assert 0.005 <= m.float().mean() <= 0.41
    assert 150 <= hits <= 250  # p = 0.5
    assert not cutmix_box(h, w, g, p=0.0).any()
    assert cutmix_boxes(3, h, w, _g(), PerturbConfig(cutmix_p=1.0)).flatten(1).any(1).all()


def test_apply_cutmix_pastes_own_image_inside_box_partner_outside():
    x = _images(3)
    boxes = torch.zeros(3, 28, 28, dtype=torch.bool)
    boxes[0, 5:10, 5:20] = True
    boxes[2, :, :14] = True
    mixed, partner = apply_cutmix(x, boxes)
    assert partner.tolist() == [2, 0, 1]
    for i in range(3):
        m = boxes[i]
        assert torch.equal(mixed[i][:, m], x[i][:, m])
        assert torch.equal(mixed[i][:, ~m], x[partner[i]][:, ~m])
