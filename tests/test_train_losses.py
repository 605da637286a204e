"""Training losses against independent numpy references (dabench/train/losses.py)."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from dabench.train.losses import (affine_invariant_loss, affine_invariant_loss_per_image, cutmix_unlabelled_loss,
                                  depth_to_disparity, feature_alignment_loss)


def _lower_median(v: np.ndarray) -> float:
    s = np.sort(v)
    return float(s[(len(s) - 1) // 2])


def _ref_norm(d: np.ndarray, m: np.ndarray) -> np.ndarray:
    v = d[m].astype(np.float64)
    med = _lower_median(v)
    scale = np.mean(np.abs(v - med))
    return (v - med) / max(scale, 1e-6)


def _ref_image_loss(p, t, m):
    if not m.any():
        return None
    return float(np.mean(np.abs(_ref_norm(p, m) - _ref_norm(t, m))))


def _ref_loss(p, t, m):
    vals = [_ref_image_loss(p[i], t[i], m[i]) for i in range(p.shape[0])]
    vals = [v for v in vals if v is not None]
    return float(np.mean(vals))


@pytest.fixture
def rng():
    return np.random.default_rng(0)


def test_affine_invariant_loss_matches_numpy(rng):
    b, h, w = 3, 7, 9
    p = rng.uniform(0.1, 2, (b, h, w)).astype(np.float32)
    t = rng.uniform(0.1, 2, (b, h, w)).astype(np.float32)
    m = rng.uniform(size=(b, h, w)) > 0.3
    m[1, :, :] = False
    m[1, 2, 3:8] = True  # 5 pixels (odd), image 0/2 have arbitrary counts (even or odd)
    got = affine_invariant_loss(torch.from_numpy(p), torch.from_numpy(t), torch.from_numpy(m)).item()
    assert got == pytest.approx(_ref_loss(p, t, m), rel=1e-5, abs=1e-6)


def test_loss_is_affine_invariant_and_zero_on_target(rng):
    t = torch.from_numpy(rng.uniform(0.1, 2, (2, 8, 8)).astype(np.float32))
    m = torch.ones(2, 8, 8, dtype=torch.bool)
    assert affine_invariant_loss(3.5 * t + 0.7, t, m).item() == pytest.approx(0.0, abs=1e-5)
    p = torch.from_numpy(rng.uniform(0.1, 2, (2, 8, 8)).astype(np.float32))
    a = affine_invariant_loss(p, t, m).item()
    assert a > 0.1
    assert affine_invariant_loss(2.0 * p + 5.0, 0.5 * t + 1.0, m).item() == pytest.approx(a, rel=1e-4)


def test_loss_ignores_masked_pixels_and_empty_images(rng):
    p = torch.from_numpy(rng.uniform(0.1, 2, (2, 6, 6)).astype(np.float32))
    t = torch.from_numpy(rng.uniform(0.1, 2, (2, 6, 6)).astype(np.float32))
    m = torch.zeros(2, 6, 6, dtype=torch.bool)
    m[0, :3] = True
    p2 = p.clone()
    p2[0, 3:] = 1e6  # masked: no effect
    p2[1] = -7.0     # image without valid pixels: no effect
    assert affine_invariant_loss(p, t, m).item() == pytest.approx(affine_invariant_loss(p2, t, m).item(), rel=1e-6)
    err, has = affine_invariant_loss_per_image(p, t, m)
    assert has.tolist() == [True, False] and err[1].item() == 0.0
    z = affine_invariant_loss(p.requires_grad_(), t, torch.zeros_like(m))
    assert z.item() == 0.0
    z.backward()  # still differentiable


def test_depth_to_disparity_sky_zero_and_masked():
    depth = torch.tensor([[[2.0, 4.0, 0.0, 8.0]]])
    valid = torch.tensor([[[True, True, False, False]]])
    sky = torch.tensor([[[False, False, False, True]]])
    disp, mask = depth_to_disparity(depth, valid, sky)
    assert disp.tolist() == [[[0.5, 0.25, 0.0, 0.0]]]
    assert mask.tolist() == [[[True, True, False, True]]]
    disp2, mask2 = depth_to_disparity(depth, valid, None)
    assert mask2.tolist() == [[[True, True, False, False]]]


def test_cutmix_loss_matches_numpy(rng):
    b, h, w = 3, 8, 10
    p = rng.uniform(0.1, 2, (b, h, w)).astype(np.float32)
    ta = rng.uniform(0.1, 2, (b, h, w)).astype(np.float32)
    tb = rng.uniform(0.1, 2, (b, h, w)).astype(np.float32)
    box = np.zeros((b, h, w), bool)
    box[0, 1:4, 2:7] = True   # 15 px
    box[1, :, :5] = True      # half
    # image 2: no box -> plain loss against tb
    got = cutmix_unlabelled_loss(*(torch.from_numpy(x) for x in (p, ta, tb, box))).item()
    ref = []
    for i in range(b):
        a = box[i].mean()
        term_in = _ref_image_loss(p[i], ta[i], box[i]) if box[i].any() else 0.0
        term_out = _ref_image_loss(p[i], tb[i], ~box[i])
        ref.append(a * term_in + (1 - a) * term_out)
    assert got == pytest.approx(float(np.mean(ref)), rel=1e-5)
    # with no box anywhere it is the plain loss against target_b
    nobox = torch.zeros(b, h, w, dtype=torch.bool)
    plain = affine_invariant_loss(torch.from_numpy(p), torch.from_numpy(tb), torch.ones(b, h, w, dtype=torch.bool))
    assert cutmix_unlabelled_loss(torch.from_numpy(p), torch.from_numpy(ta), torch.from_numpy(tb), nobox).item() == \
        pytest.approx(plain.item(), rel=1e-6)


def test_feature_alignment_matches_numpy_and_excludes_similar_pixels(rng):
    b, c, h, w = 2, 5, 3, 4
    f = rng.normal(size=(b, c, h, w)).astype(np.float32)
    g = rng.normal(size=(b, c, h, w)).astype(np.float32)
    g[0, :, 0, 0] = 2.0 * f[0, :, 0, 0]  # cos = 1 > alpha: excluded
    cos = (f * g).sum(1) / (np.linalg.norm(f, axis=1) * np.linalg.norm(g, axis=1))
    alpha = 0.85
    keep = cos <= alpha
    ref = 1.0 - cos[keep].mean()
    ft = torch.from_numpy(f).requires_grad_()
    got = feature_alignment_loss(ft, torch.from_numpy(g), alpha)
    assert got.item() == pytest.approx(float(ref), rel=1e-5)
    got.backward()
    assert ft.grad[0, :, 0, 0].abs().max().item() == 0.0  # excluded pixel gets no gradient
    assert ft.grad.abs().sum().item() > 0
    # identical features: every pixel excluded -> 0; alpha = 1 keeps all -> 0 loss too
    assert feature_alignment_loss(torch.from_numpy(f), torch.from_numpy(f), alpha).item() == 0.0
    assert feature_alignment_loss(torch.from_numpy(f), torch.from_numpy(f), 1.0).item() == pytest.approx(0.0, abs=1e-6)
    # alpha = -1 excludes everything
    assert feature_alignment_loss(torch.from_numpy(f), torch.from_numpy(g), -1.0).item() == 0.0
