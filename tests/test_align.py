"""Alignment modes against np.linalg.lstsq / np.median references, plus the degenerate-case policy."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from dabench.errors import ConfigError
from dabench.eval.align import ALIGNMENT_MODES, DegenerateAlignmentError, align, fit_alignment


def _case(rng, h=10, w=13):
    gt = rng.uniform(0.5, 30, (h, w))
    valid = rng.random((h, w)) > 0.25
    pred = rng.uniform(0.1, 5, (h, w))
    return pred, gt, valid


def ref_align(pred, gt, valid, mode):
    p, g = pred[valid], gt[valid]
    if mode == "none":
        return pred
    if mode == "median":
        return pred * np.median(g) / np.median(p)
    if mode == "scale":
        s = np.linalg.lstsq(p[:, None], g, rcond=None)[0][0]
        return s * pred
    target = g if mode == "scale_shift_depth" else 1.0 / g
    (s, t), *_ = np.linalg.lstsq(np.stack([p, np.ones_like(p)], 1), target, rcond=None)
    return s * pred + t


@pytest.mark.parametrize("mode", ALIGNMENT_MODES)
def test_align_random_vs_lstsq(mode):
    rng = np.random.default_rng(ALIGNMENT_MODES.index(mode))
    for _ in range(4):
        pred, gt, valid = _case(rng)
        np.testing.assert_allclose(align(pred, gt, valid, mode), ref_align(pred, gt, valid, mode), rtol=1e-9, atol=1e-12)


@pytest.mark.parametrize("mode", ALIGNMENT_MODES)
def test_align_torch_matches_numpy(mode):
    pred, gt, valid = _case(np.random.default_rng(9))
    out = align(torch.from_numpy(pred), torch.from_numpy(gt), torch.from_numpy(valid), mode)
    assert isinstance(out, torch.Tensor) and out.dtype == torch.float64
    np.testing.assert_allclose(out.numpy(), align(pred, gt, valid, mode), rtol=1e-12)


def test_align_recovers_exact_affine_and_ignores_invalid_pixels():
    rng = np.random.default_rng(10)
    gt = rng.uniform(1, 10, (8, 8))
    valid = np.ones_like(gt, bool)
    valid[:2] = False
    disp = (1 / gt - 0.05) / 3.0  # true disparity = 3 * disp + 0.05
    disp[~valid] = 1e6  # garbage outside the mask must not influence the fit
    out, params = align(disp, gt, valid, "scale_shift_disparity", return_params=True)
    assert params["scale"] == pytest.approx(3.0) and params["shift"] == pytest.approx(0.05)
    np.testing.assert_allclose(out[valid], 1 / gt[valid], rtol=1e-10)
    depth = 0.5 * gt - 0.2
    np.testing.assert_allclose(align(depth, gt, valid, "scale_shift_depth")[valid], gt[valid], rtol=1e-10)
    np.testing.assert_allclose(align(0.25 * gt, gt, valid, "scale")[valid], gt[valid], rtol=1e-12)
    np.testing.assert_allclose(align(0.25 * gt, gt, valid, "median")[valid], gt[valid], rtol=1e-12)


def test_degenerate_policy():
    gt = np.array([[1.0, 2.0], [4.0, 5.0]])
    valid = np.ones_like(gt, bool)
    const = np.full_like(gt, 3.0)
    for mode, target in (("scale_shift_depth", gt), ("scale_shift_disparity", 1 / gt)):
        out, params = align(const, gt, valid, mode, return_params=True)
        assert params["scale"] == 0.0
        np.testing.assert_allclose(out, np.full_like(gt, target.mean()))
    assert fit_alignment(np.zeros_like(gt), gt, valid, "scale") == (0.0, 0.0)
    one = np.zeros_like(valid)
    one[0, 0] = True
    for mode in ("median", "scale", "scale_shift_depth", "scale_shift_disparity"):
        with pytest.raises(DegenerateAlignmentError, match="at least 2"):
            align(const, gt, one, mode, name="img7")
    assert align(const, gt, one, "none") is const
    with pytest.raises(DegenerateAlignmentError, match="median"):
        align(-const, gt, valid, "median")
    with pytest.raises(ConfigError, match="scale_shift_disparity"):
        align(const, gt, valid, "affine")
