"""Metric heads (dabench.finetune.metric_heads) and the SILog loss against independent references:
hand-computed attractor shifts, scipy's binomial pmf, numpy bin centres and numpy SILog."""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from dabench.errors import ConfigError
from dabench.finetune.metric import silog_loss
from dabench.finetune.metric_heads import (ZOE_DEFAULTS, MetricBinsHead, attract_centres, attractor_shift, log_binomial_probs,
                                           normed_bin_centres, resolve_head_config, wrap_relative_model)


TINY_ZOE = dict(n_bins=8, bin_embedding_dim=16, seed_mlp_dim=16, mlp_dim=16)


# ------------------------------------------------------------------------------------ maths
def test_attractor_shift_matches_hand_computation():
    dx = torch.tensor([0.5, -0.2, 0.0, 2.0], dtype=torch.float64)
    # inverse: dx / (1 + alpha |dx|^gamma), alpha 1000, gamma 2
    expected_inv = [0.5 / (1 + 1000 * 0.25), -0.2 / (1 + 1000 * 0.04), 0.0, 2.0 / (1 + 1000 * 4.0)]
    assert torch.allclose(attractor_shift(dx, 1000.0, 2, "inv"), torch.tensor(expected_inv, dtype=torch.float64))
    # exponential: dx * exp(-alpha |dx|^gamma), alpha 3, gamma 2
    expected_exp = [0.5 * math.exp(-0.75), -0.2 * math.exp(-0.12), 0.0, 2.0 * math.exp(-12.0)]
    assert torch.allclose(attractor_shift(dx, 3.0, 2, "exp"), torch.tensor(expected_exp, dtype=torch.float64))
    with pytest.raises(ConfigError):
        attractor_shift(dx, 1.0, 2, "linear")


def test_attract_centres_mean_and_sum():
    # one pixel, two bins at 1 m and 3 m, two attractors at 2 m and 4 m; alpha 1, gamma 2 (inverse)
    centres = torch.tensor([1.0, 3.0], dtype=torch.float64).view(1, 2, 1, 1)
    attractors = torch.tensor([2.0, 4.0], dtype=torch.float64).view(1, 2, 1, 1)

    def inv(d):
        return d / (1 + d * d)

    shift_bin0 = [inv(2 - 1), inv(4 - 1)]  # 0.5, 0.3
    shift_bin1 = [inv(2 - 3), inv(4 - 3)]  # -0.5, 0.5
    mean = attract_centres(centres, attractors, 1.0, 2, "inv", "mean").flatten()
    total = attract_centres(centres, attractors, 1.0, 2, "inv", "sum").flatten()
    assert mean.tolist() == pytest.approx([1 + sum(shift_bin0) / 2, 3 + sum(shift_bin1) / 2])
    assert total.tolist() == pytest.approx([1 + sum(shift_bin0), 3 + sum(shift_bin1)])
    assert mean.tolist() == pytest.approx([1.4, 3.0])


def test_log_binomial_at_unit_temperature_is_the_binomial_pmf():
    from scipy.stats import binom

    p = torch.tensor([[[0.1, 0.5], [0.73, 0.999]]], dtype=torch.float64)  # 1×2×2
    k = 16
    probs = log_binomial_probs(p, 1.0, k)
    assert probs.shape == (1, k, 2, 2)
    for (i, j) in [(0, 0), (0, 1), (1, 0), (1, 1)]:
        ref = binom.pmf(np.arange(k), k - 1, min(float(p[0, i, j]), 1 - 1e-4))
        ref = ref / ref.sum()
        assert np.allclose(probs[0, :, i, j].numpy(), ref, atol=1e-9), (i, j)


def test_log_binomial_temperature_sharpens():
    from scipy.stats import binom

    p = torch.full((1, 1, 1), 0.3, dtype=torch.float64)
    t = 0.25
    probs = log_binomial_probs(p, torch.full((1, 1, 1, 1), t, dtype=torch.float64), 10)[0, :, 0, 0].numpy()
    logits = binom.logpmf(np.arange(10), 9, 0.3) / t
    ref = np.exp(logits - logits.max())
    ref /= ref.sum()
    assert np.allclose(probs, ref, atol=1e-10)
    assert probs.max() > binom.pmf(np.arange(10), 9, 0.3).max()  # sharper than the plain pmf


def test_normed_bin_centres_against_numpy():
    raw = torch.tensor([1.0, 1.0, 2.0], dtype=torch.float64).view(1, 3, 1, 1)
    widths, centres = normed_bin_centres(raw, 1.0, 9.0)
    w = np.array([1.0, 1.0, 2.0]) + 1e-3
    w = w / w.sum()
    edges = 1.0 + np.concatenate([[0.0], np.cumsum(w * 8.0)])
    assert np.allclose(widths.flatten().numpy(), w)
    assert np.allclose(centres.flatten().numpy(), 0.5 * (edges[:-1] + edges[1:]))
    assert centres.flatten().tolist() == pytest.approx([2.0, 4.0, 7.0], abs=2e-3)


# ------------------------------------------------------------------------------------ loss
def _silog_numpy(pred, gt, mask, lambd, scale):
    g = np.log(pred[mask]) - np.log(gt[mask])
    return scale * np.sqrt(np.mean(g ** 2) - lambd * np.mean(g) ** 2)


@pytest.mark.parametrize("lambd,scale", [(0.85, 10.0), (0.5, 1.0)])
def test_silog_matches_numpy(lambd, scale):
    rng = np.random.default_rng(0)
    gt = rng.uniform(0.5, 10, size=(2, 7, 9))
    pred = gt * rng.uniform(0.7, 1.4, size=gt.shape)
    mask = rng.random(gt.shape) > 0.3
    got = silog_loss(torch.from_numpy(pred), torch.from_numpy(gt), torch.from_numpy(mask), lambd=lambd, scale=scale,
                     eps=0.0)
    assert float(got) == pytest.approx(_silog_numpy(pred, gt, mask, lambd, scale), rel=1e-6)


def test_silog_properties():
    gt = torch.rand(1, 5, 5) * 5 + 1
    valid = torch.ones_like(gt, dtype=torch.bool)
    # lambda 1 is fully scale-invariant: a global scale costs nothing
    assert float(silog_loss(gt * 3.0, gt, valid, lambd=1.0, scale=1.0)) < 1e-4
    # ZoeDepth's 0.15 * mean^2 term penalises a global scale
    assert float(silog_loss(gt * 3.0, gt, valid)) == pytest.approx(10 * math.sqrt(0.15) * math.log(3.0), rel=1e-4)
    # no valid pixel: zero, differentiable
    pred = gt.clone().requires_grad_(True)
    loss = silog_loss(pred, gt, torch.zeros_like(valid))
    loss.backward()
    assert float(loss.detach()) == 0.0 and pred.grad is not None


# ------------------------------------------------------------------------------------ heads
def _feats(b=2, c=16, h=4, w=5, seed=0):
    g = torch.Generator().manual_seed(seed)
    bott = torch.randn(b, c, h, w, generator=g)
    blocks = [torch.randn(b, c, h * s, w * s, generator=g) for s in (1, 2, 4, 8)]
    last = torch.rand(b, 32, h * 14, w * 14, generator=g)
    rel = torch.rand(b, 1, h * 14, w * 14, generator=g)
    return bott, blocks, last, rel


@pytest.mark.parametrize("bins", ["softplus", "normed"])
def test_bins_head_output_is_a_convex_combination_of_bin_centres(bins):
    torch.manual_seed(0)
    head = MetricBinsHead(16, 0.5, 10.0, **{**TINY_ZOE, "bin_centers_type": bins})
    depth, centres = head(*_feats())
    assert depth.shape == (2, 1, 56, 70) and centres.shape == (2, 8, 56, 70)
    lo, hi = centres.min(dim=1, keepdim=True).values, centres.max(dim=1, keepdim=True).values
    assert torch.all(depth >= lo - 1e-5) and torch.all(depth <= hi + 1e-5)
    assert torch.all(depth > 0)
    if bins == "normed":  # bounded centres: sorted and inside [min, max]
        assert torch.all(centres >= 0.5 - 1e-6) and torch.all(centres <= 10.0 + 1e-6)
        assert torch.all(centres[:, 1:] >= centres[:, :-1] - 1e-6)


def test_paper_head_config_defaults():
    c = resolve_head_config({"head": "zoe", "min_depth": 1e-3, "max_depth": 10})
    assert c["n_bins"] == 64 and c["bin_embedding_dim"] == 128 and c["n_attractors"] == [16, 8, 4, 1]
    assert c["attractor_alpha"] == 1000 and c["attractor_gamma"] == 2
    assert c["attractor_kind"] == "mean" and c["attractor_type"] == "inv"
    assert (c["min_temp"], c["max_temp"]) == (0.0212, 50.0)
    head = MetricBinsHead(64, c["min_depth"], c["max_depth"], **{k: v for k, v in c.items() if k in ZOE_DEFAULTS})
    assert [a.n_attractors for a in head.attractors] == [16, 8, 4, 1]
    assert head.seed_bins.net[-2].out_channels == 64  # 64 bins
    assert head.projectors[0][-1].out_channels == 128  # bin embedding 128


@pytest.mark.parametrize("bad,msg", [
    ({"head": "zoe", "min_depth": 1.0, "max_depth": 1.0}, "greater than min_depth"),
    ({"head": "zoe", "min_depth": 5.0, "max_depth": 2.0}, "greater than min_depth"),
    ({"head": "bins", "min_depth": 0.1, "max_depth": 2.0}, "not one of"),
    ({"head": "zoe", "min_depth": 0.1}, "needs max_depth"),
    ({"head": "zoe", "min_depth": 0.1, "max_depth": 2.0, "bin_centers_type": "linear"}, "bin_centers_type"),
])
def test_head_config_errors(bad, msg):
    with pytest.raises(ConfigError, match=msg):
        resolve_head_config(bad)


# ------------------------------------------------------------------------------------ models
@pytest.mark.parametrize("head", ["zoe", "simple"])
def test_metric_model_forward_backward_and_checkpoint_roundtrip(head, tmp_path):
    from dabench.models import create_model, load_model_from_checkpoint, save_checkpoint

    torch.manual_seed(0)
    base = create_model("da2_test")
    rel_keys = set(base.state_dict())
    cfg = {"head": head, "min_depth": 0.5, "max_depth": 10.0, **(TINY_ZOE if head == "zoe" else {})}
    model = wrap_relative_model(base, cfg)
    assert model.output_space == "depth"
    x = torch.randn(2, 3, 56, 70)
    y = model(x)
    assert y.shape == (2, 56, 70) and torch.all(y > 0)
    if head == "simple":
        assert torch.all(y < 10.0)
        assert set(model.state_dict()) == rel_keys  # official V2 metric .pth files load as they are
    else:
        assert rel_keys < set(model.state_dict())
    y.mean().backward()
    groups = model.param_groups()
    for name in ("encoder", "decoder") + (("head",) if head == "zoe" else ()):
        assert groups[name] and any(p.grad is not None and p.grad.abs().sum() > 0 for p in groups[name]), name
    n_params = sum(p.numel() for p in model.parameters() if p.requires_grad)  # every trainable one is in a group
    assert n_params == sum(len(groups[k]) and sum(p.numel() for p in groups[k]) for k in groups)

    path = save_checkpoint(model, tmp_path / "m.safetensors", arch="da2_test", head=f"metric_{head}",
                           config=model.config)
    again = load_model_from_checkpoint(path).eval()
    assert again.output_space == "depth" and isinstance(again, type(model))
    model.eval()
    with torch.no_grad():
        assert torch.allclose(model(x), again(x), atol=1e-6)


def test_wrap_rejects_non_depth_anything():
    from dabench.models import create_model

    with pytest.raises(ConfigError, match="not a Depth Anything model"):
        wrap_relative_model(create_model("constant"), {"head": "simple", "min_depth": 0.1, "max_depth": 1})


@pytest.mark.parametrize("head", ["zoe", "simple"])
def test_metres_stay_float32_under_bf16_autocast(head):
    from dabench.models import create_model

    torch.manual_seed(0)
    model = wrap_relative_model(create_model("da2_test"), {"head": head, "min_depth": 1e-3, "max_depth": 80.0,
                                                           **(TINY_ZOE if head == "zoe" else {})}).eval()
    x = torch.randn(1, 3, 42, 56)
    with torch.no_grad():
        ref = model(x)
        with torch.autocast("cpu", dtype=torch.bfloat16):
            low = model(x)
    assert low.dtype == torch.float32
    # bf16 rounding of a sigmoid x 80 m output alone would be ~0.3 m; the encoder's bf16 error is far smaller
    assert float((low - ref).abs().max()) < 0.05
