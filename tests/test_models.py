"""Model zoo: registry-driven construction/forward/backward, parameter counts, official layout, and
numerical identity with an independent reference written here from the official DINOv2/DPT rules."""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from dabench.errors import ConfigError
from dabench.models import MODELS, create_model, is_baseline, list_models, model_info
from dabench.models.depth_anything import CONFIGS, DepthAnything, DepthAnythingConfig

V12 = [n for n in list_models() if MODELS.meta(n)["family"] == "depth_anything"]  # DA3: test_models_da3.py
FULL = [n for n in V12 if not MODELS.meta(n)["test"]]
TINY = [n for n in V12 if MODELS.meta(n)["test"]]
BASELINES = [n for n in list_models() if is_baseline(n)]


def test_registered_names():
    assert set(FULL) == {"da1_vits14", "da1_vitb14", "da1_vitl14", "da2_vits14", "da2_vitb14", "da2_vitl14",
                         "da2_vitg14"}
    assert {"da1_test", "da2_test"} <= set(TINY)
    assert set(BASELINES) == {"constant", "horizon_prior"}
    assert [n for n in list_models(include_test=False) if n in V12] == sorted(FULL)


@pytest.mark.parametrize("name", TINY)
def test_tiny_forward_backward(name):
    torch.manual_seed(0)
    model = create_model(name)
    assert model.output_space == "disparity"
    x = torch.randn(2, 3, 42, 56, requires_grad=False)
    y = model(x)
    assert y.shape == (2, 42, 56)
    assert (y >= 0).all()
    # make the loss reach every parameter the forward uses
    (y.mean() + sum(f[0].mean() for f in model.get_intermediate_layers(x))).backward()
    grads = {n: p.grad for n, p in model.named_parameters()}
    unused = {"pretrained.mask_token", *[n for n in grads if "refinenet4.resConfUnit1" in n]}
    for n, p in model.named_parameters():
        if n in unused:  # stored but unused, as in the official network; frozen so DDP needs no
            assert p.grad is None and not p.requires_grad, n  # find_unused_parameters
        else:
            assert p.requires_grad and p.grad is not None and torch.isfinite(p.grad).all(), n


@pytest.mark.parametrize("name", FULL)
def test_full_variants_shape_on_meta(name):
    """Every full-size variant builds and runs a forward (shapes only) on the meta device."""
    with torch.device("meta"):
        model = create_model(name)
        y = model(torch.empty(1, 3, 28, 42))
        feats = model.get_intermediate_layers(torch.empty(1, 3, 28, 42))
    assert y.shape == (1, 28, 42)
    assert len(feats) == 4 and feats[0][0].shape == (1, 6, model.pretrained.embed_dim)
    assert feats[0][1].shape == (1, model.pretrained.embed_dim)


# Paper Table 2 (V1) and the V2 README: parameter counts in millions (rounded as published).
PUBLISHED_PARAMS_M = {"da1_vits14": 24.8, "da1_vitb14": 97.5, "da1_vitl14": 335.3,
                      "da2_vits14": 24.8, "da2_vitb14": 97.5, "da2_vitl14": 335.3}


@pytest.mark.parametrize("name", FULL)
def test_param_counts(name):
    info = model_info(name)
    assert isinstance(info["params"], int)
    if name in PUBLISHED_PARAMS_M:
        assert round(info["params"] / 1e6, 1) == PUBLISHED_PARAMS_M[name]
    else:  # V2 ViT-G: "1.3B" in the V2 README
        assert round(info["params"] / 1e9, 1) == 1.3
    assert info["version"] == int(name[2]) and info["output_space"] == "disparity"
    assert info["encoder"] == name.split("_")[1][:4]


def test_taps_and_dpt_sizes():
    expect_taps = {"da1_vits14": [8, 9, 10, 11], "da1_vitb14": [8, 9, 10, 11], "da1_vitl14": [20, 21, 22, 23],
                   "da2_vits14": [2, 5, 8, 11], "da2_vitb14": [2, 5, 8, 11], "da2_vitl14": [4, 11, 17, 23],
                   "da2_vitg14": [9, 19, 29, 39]}
    expect_dpt = {"vits": (64, [48, 96, 192, 384]), "vitb": (128, [96, 192, 384, 768]),
                  "vitl": (256, [256, 512, 1024, 1024]), "vitg": (384, [1536] * 4)}
    for name, taps in expect_taps.items():
        info = model_info(name)
        assert info["taps"] == taps
        assert (info["features"], info["out_channels"]) == expect_dpt[info["encoder"]]


def test_baselines():
    x = torch.zeros(2, 3, 10, 7)
    for name in BASELINES:
        m = create_model(name)
        assert m.output_space == "disparity" and model_info(name)["params"] == 0
        assert sum(p.numel() for p in m.parameters()) == 0
    assert torch.equal(create_model("constant")(x), torch.ones(2, 10, 7))
    hp = create_model("horizon_prior")(x)
    rows = np.arange(10) + 0.5  # ground-plane disparity ∝ (y − y_h), y_h = 5, normalised by H − y_h
    expect = np.maximum((rows - 5.0) / 5.0, 0.01)
    np.testing.assert_allclose(hp[0, :, 3].numpy(), expect, rtol=1e-6)
    assert torch.equal(hp[0], hp[1]) and torch.equal(hp[0, :, 0], hp[0, :, 6])
    with pytest.raises(ConfigError):
        create_model("horizon_prior", horizon=1.5)


def test_unknown_model_lists_names():
    with pytest.raises(KeyError, match="da2_vits14"):
        create_model("da4_vits14")


def test_non_multiple_of_14_is_a_clear_error():
    with pytest.raises(ConfigError, match="multiple of the patch size"):
        create_model("da1_test")(torch.zeros(1, 3, 30, 28))


def test_official_key_layout():
    with torch.device("meta"):
        keys = set(create_model("da2_vits14").state_dict())
    for k in ["pretrained.cls_token", "pretrained.pos_embed", "pretrained.mask_token", "pretrained.norm.weight",
              "pretrained.patch_embed.proj.weight", "pretrained.blocks.11.ls2.gamma", "pretrained.blocks.0.mlp.fc1.bias",
              "depth_head.projects.3.weight", "depth_head.resize_layers.0.weight", "depth_head.resize_layers.3.bias",
              "depth_head.scratch.layer4_rn.weight", "depth_head.scratch.refinenet4.resConfUnit1.conv1.weight",
              "depth_head.scratch.output_conv1.weight", "depth_head.scratch.output_conv2.2.bias"]:
        assert k in keys, k
    assert "depth_head.scratch.layer1_rn.bias" not in keys  # scratch convs have no bias
    assert not any(k.startswith("pretrained.head") or "resize_layers.2" in k for k in keys)
    assert len(keys) == official_layout_count(CONFIGS["da2_vits14"], 384, 12)


def official_layout_count(cfg, width, depth):
    return len(official_state_dict(width, depth, cfg.features, cfg.out_channels, swiglu=False, meta=True))


# --------------------------------------------------------------------------------------------
# Independent reference: official DINOv2 + DPT maths in plain torch ops on an official-layout
# state dict (keys and shapes as in the published .pth files).
# --------------------------------------------------------------------------------------------

def official_state_dict(width, depth, features, out_channels, swiglu, seed=0, meta=False, grid=37):
    g = torch.Generator().manual_seed(seed)

    def rnd(*shape, scale=None):
        if meta:
            return torch.empty(shape, device="meta")
        fan_in = math.prod(shape[1:]) if len(shape) > 1 else 1
        s = scale if scale is not None else 1.0 / math.sqrt(fan_in)
        return torch.randn(*shape, generator=g) * s

    C = width
    sd = {"pretrained.cls_token": rnd(1, 1, C, scale=1.0), "pretrained.pos_embed": rnd(1, grid * grid + 1, C, scale=1.0),
          "pretrained.mask_token": rnd(1, C, scale=1.0),
          "pretrained.patch_embed.proj.weight": rnd(C, 3, 14, 14), "pretrained.patch_embed.proj.bias": rnd(C, scale=0.1)}
    hidden = 4 * C
    for i in range(depth):
        b = f"pretrained.blocks.{i}."
        sd.update({b + "norm1.weight": 1 + rnd(C, scale=0.1), b + "norm1.bias": rnd(C, scale=0.1),
                   b + "attn.qkv.weight": rnd(3 * C, C), b + "attn.qkv.bias": rnd(3 * C, scale=0.1),
                   b + "attn.proj.weight": rnd(C, C), b + "attn.proj.bias": rnd(C, scale=0.1),
                   b + "ls1.gamma": rnd(C, scale=0.3), b + "norm2.weight": 1 + rnd(C, scale=0.1),
                   b + "norm2.bias": rnd(C, scale=0.1), b + "ls2.gamma": rnd(C, scale=0.3)})
        if swiglu:  # DINOv2 SwiGLUFFNFused: hidden = (int(4C * 2/3) + 7) // 8 * 8, packed w12
            sh = (int(hidden * 2 / 3) + 7) // 8 * 8
            sd.update({b + "mlp.w12.weight": rnd(2 * sh, C), b + "mlp.w12.bias": rnd(2 * sh, scale=0.1),
                       b + "mlp.w3.weight": rnd(C, sh), b + "mlp.w3.bias": rnd(C, scale=0.1)})
        else:
            sd.update({b + "mlp.fc1.weight": rnd(hidden, C), b + "mlp.fc1.bias": rnd(hidden, scale=0.1),
                       b + "mlp.fc2.weight": rnd(C, hidden), b + "mlp.fc2.bias": rnd(C, scale=0.1)})
    sd.update({"pretrained.norm.weight": 1 + rnd(C, scale=0.1), "pretrained.norm.bias": rnd(C, scale=0.1)})
    d = "depth_head."
    F_ = features
    for i, oc in enumerate(out_channels):
        sd[d + f"projects.{i}.weight"] = rnd(oc, C, 1, 1)
        sd[d + f"projects.{i}.bias"] = rnd(oc, scale=0.1)
        sd[d + f"scratch.layer{i + 1}_rn.weight"] = rnd(F_, oc, 3, 3)
    oc = out_channels
    sd.update({d + "resize_layers.0.weight": rnd(oc[0], oc[0], 4, 4, scale=0.25), d + "resize_layers.0.bias": rnd(oc[0], scale=0.1),
               d + "resize_layers.1.weight": rnd(oc[1], oc[1], 2, 2, scale=1 / math.sqrt(oc[1])),
               d + "resize_layers.1.bias": rnd(oc[1], scale=0.1),
               d + "resize_layers.3.weight": rnd(oc[3], oc[3], 3, 3), d + "resize_layers.3.bias": rnd(oc[3], scale=0.1)})
    for r in range(1, 5):
        p = d + f"scratch.refinenet{r}."
        sd.update({p + "out_conv.weight": rnd(F_, F_, 1, 1), p + "out_conv.bias": rnd(F_, scale=0.1)})
        for u in (1, 2):
            for c in (1, 2):
                sd[p + f"resConfUnit{u}.conv{c}.weight"] = rnd(F_, F_, 3, 3, scale=0.5 / math.sqrt(9 * F_))
                sd[p + f"resConfUnit{u}.conv{c}.bias"] = rnd(F_, scale=0.1)
    sd.update({d + "scratch.output_conv1.weight": rnd(F_ // 2, F_, 3, 3), d + "scratch.output_conv1.bias": rnd(F_ // 2, scale=0.1),
               d + "scratch.output_conv2.0.weight": rnd(32, F_ // 2, 3, 3), d + "scratch.output_conv2.0.bias": rnd(32, scale=0.1),
               d + "scratch.output_conv2.2.weight": rnd(1, 32, 1, 1), d + "scratch.output_conv2.2.bias": rnd(1, scale=0.1) + 0.2})
    return sd


def ref_encoder(sd, x, taps, heads, swiglu):
    """DINOv2 forward (prepare_tokens_with_masks + blocks + get_intermediate_layers(norm=True))."""
    p = "pretrained."
    B, _, H, W = x.shape
    C = sd[p + "cls_token"].shape[-1]
    h, w = H // 14, W // 14
    t = F.conv2d(x, sd[p + "patch_embed.proj.weight"], sd[p + "patch_embed.proj.bias"], stride=14)
    t = t.flatten(2).transpose(1, 2)
    t = torch.cat([sd[p + "cls_token"].expand(B, -1, -1), t], dim=1)
    pos = sd[p + "pos_embed"]
    n_stored = pos.shape[1] - 1
    if not (n_stored == h * w and H == W):
        m = int(math.sqrt(n_stored))
        grid = pos[:, 1:].reshape(1, m, m, C).permute(0, 3, 1, 2)
        # official: w0, h0 = w0 + 0.1, h0 + 0.1; scale_factor=(w0 / sqrt(N), h0 / sqrt(N)); bicubic, no antialias
        grid = F.interpolate(grid, scale_factor=((h + 0.1) / math.sqrt(n_stored), (w + 0.1) / math.sqrt(n_stored)),
                             mode="bicubic", antialias=False)
        pos = torch.cat([pos[:, :1], grid.permute(0, 2, 3, 1).reshape(1, h * w, C)], dim=1)
    t = t + pos
    ln = lambda z, k: F.layer_norm(z, (C,), sd[k + ".weight"], sd[k + ".bias"], eps=1e-6)  # noqa: E731
    outs = []
    depth = 1 + max(int(k.split(".")[2]) for k in sd if k.startswith(p + "blocks."))
    for i in range(depth):
        b = f"{p}blocks.{i}."
        y = ln(t, b + "norm1")
        n = y.shape[1]
        qkv = F.linear(y, sd[b + "attn.qkv.weight"], sd[b + "attn.qkv.bias"]).reshape(B, n, 3, heads, C // heads)
        q, k, v = qkv.permute(2, 0, 3, 1, 4)
        attn = ((q * (C // heads) ** -0.5) @ k.transpose(-2, -1)).softmax(dim=-1)
        y = (attn @ v).transpose(1, 2).reshape(B, n, C)
        t = t + sd[b + "ls1.gamma"] * F.linear(y, sd[b + "attn.proj.weight"], sd[b + "attn.proj.bias"])
        y = ln(t, b + "norm2")
        if swiglu:
            x1, x2 = F.linear(y, sd[b + "mlp.w12.weight"], sd[b + "mlp.w12.bias"]).chunk(2, dim=-1)
            y = F.linear(F.silu(x1) * x2, sd[b + "mlp.w3.weight"], sd[b + "mlp.w3.bias"])
        else:
            y = F.linear(F.gelu(F.linear(y, sd[b + "mlp.fc1.weight"], sd[b + "mlp.fc1.bias"])),
                         sd[b + "mlp.fc2.weight"], sd[b + "mlp.fc2.bias"])
        t = t + sd[b + "ls2.gamma"] * y
        if i in taps:
            o = ln(t, p + "norm")
            outs.append((o[:, 1:], o[:, 0]))
    return outs


def ref_dpt(sd, feats, ph, pw):
    d = "depth_head."
    conv = lambda z, k, **kw: F.conv2d(z, sd[k + ".weight"], sd.get(k + ".bias"), **kw)  # noqa: E731

    def rcu(z, k):
        out = conv(F.relu(z), k + ".conv1", padding=1)
        out = conv(F.relu(out), k + ".conv2", padding=1)
        return out + z

    def fuse(k, z, skip=None, size=None):
        if skip is not None:
            z = z + rcu(skip, k + ".resConfUnit1")
        z = rcu(z, k + ".resConfUnit2")
        z = F.interpolate(z, **({"scale_factor": 2} if size is None else {"size": size}), mode="bilinear",
                          align_corners=True)
        return conv(z, k + ".out_conv")

    layers = []
    for i, (tok, _cls) in enumerate(feats):
        z = tok.permute(0, 2, 1).reshape(tok.shape[0], tok.shape[-1], ph, pw)
        z = conv(z, d + f"projects.{i}")
        if i == 0:
            z = F.conv_transpose2d(z, sd[d + "resize_layers.0.weight"], sd[d + "resize_layers.0.bias"], stride=4)
        elif i == 1:
            z = F.conv_transpose2d(z, sd[d + "resize_layers.1.weight"], sd[d + "resize_layers.1.bias"], stride=2)
        elif i == 3:
            z = conv(z, d + "resize_layers.3", stride=2, padding=1)
        layers.append(conv(z, d + f"scratch.layer{i + 1}_rn", padding=1))
    l1, l2, l3, l4 = layers
    s = d + "scratch."
    p4 = fuse(s + "refinenet4", l4, size=l3.shape[2:])
    p3 = fuse(s + "refinenet3", p4, l3, size=l2.shape[2:])
    p2 = fuse(s + "refinenet2", p3, l2, size=l1.shape[2:])
    p1 = fuse(s + "refinenet1", p2, l1)
    out = conv(p1, s + "output_conv1", padding=1)
    out = F.interpolate(out, (ph * 14, pw * 14), mode="bilinear", align_corners=True)
    out = F.relu(conv(out, s + "output_conv2.0", padding=1))
    return F.relu(conv(out, s + "output_conv2.2"))


def ref_depth_anything(sd, x, version, taps, heads, swiglu):
    H, W = x.shape[-2:]
    feats = ref_encoder(sd, x, taps, heads, swiglu)
    out = ref_dpt(sd, feats, H // 14, W // 14)
    if version == 1:
        out = F.interpolate(out, (H, W), mode="bilinear", align_corners=True)
    return F.relu(out).squeeze(1)


IDENTITY_CASES = [("da1_test", 1, [0, 1, 2, 3], 2, False), ("da2_test", 2, [1, 3, 4, 5], 2, False),
                  ("giant_style", 2, [0, 1, 2, 3], 2, True)]


def _identity_model(case):
    name, version, taps, heads, swiglu = case
    if name == "giant_style":  # SwiGLU encoder as ViT-G, at tiny width (not a registered model)
        cfg = DepthAnythingConfig(2, "testg", 16, (8, 16, 32, 32), tuple(taps))
        return DepthAnything(cfg, arch="giant_style"), cfg
    return create_model(name), CONFIGS[name]


@pytest.mark.parametrize("size", [(518, 518), (518, 700)])
@pytest.mark.parametrize("case", IDENTITY_CASES, ids=[c[0] for c in IDENTITY_CASES])
def test_numerical_identity_with_official_rules(case, size, tmp_path):
    name, version, taps, heads, swiglu = case
    model, cfg = _identity_model(case)
    width, depth = model.pretrained.embed_dim, len(model.pretrained.blocks)
    sd = official_state_dict(width, depth, cfg.features, cfg.out_channels, swiglu, seed=1)
    path = tmp_path / "official.pth"
    torch.save(sd, path)  # a file in the published layout, loaded strictly with weights_only
    from dabench.models.checkpoint import load_state_dict_strict, read_state_dict

    load_state_dict_strict(model, read_state_dict(path), path)
    model.eval()
    x = torch.randn(1, 3, *size, generator=torch.Generator().manual_seed(2))
    with torch.no_grad():
        ours = model(x)
        ref = ref_depth_anything(sd, x, version, taps, heads, swiglu)
    assert ours.shape == ref.shape == (1, *size)
    assert ref.max() > 0 and (ref > 0).float().mean() > 0.2  # a non-trivial map
    err = (ours - ref).abs().max() / ref.abs().max()
    assert err < 1e-4, f"max |dabench - reference| / max = {err:.2e}"


def test_reference_detects_wrong_pos_embed_interpolation():
    """The identity test can fail: an output-size resample (timm style) differs from DINOv2's rule."""
    from dabench.models.dinov2 import interpolate_pos_encoding

    pos = torch.randn(1, 37 * 37 + 1, 8, generator=torch.Generator().manual_seed(0))
    ours = interpolate_pos_encoding(pos, 37, 50)[:, 1:]
    grid = pos[:, 1:].reshape(1, 37, 37, 8).permute(0, 3, 1, 2)
    by_size = F.interpolate(grid, size=(37, 50), mode="bicubic", align_corners=False)
    by_size = by_size.permute(0, 2, 3, 1).reshape(1, -1, 8)
    assert (ours - by_size).abs().max() > 1e-3
    antialiased = F.interpolate(grid, scale_factor=(37.1 / 37, 50.1 / 37), mode="bicubic", antialias=True)
    assert antialiased.shape[-2:] == (37, 50)
    assert torch.equal(interpolate_pos_encoding(pos, 37, 37), pos)  # square 518 input: unchanged


def test_forward_features_contract():
    torch.manual_seed(0)
    model = create_model("da2_test").eval()
    x = torch.randn(1, 3, 28, 42)
    feats = model.get_intermediate_layers(x)
    assert model.intermediate_layer_idx == [1, 3, 4, 5]
    assert [f[0].shape for f in feats] == [(1, 6, 32)] * 4 and [f[1].shape for f in feats] == [(1, 32)] * 4
    enc = model.forward_encoder_features(x)
    assert enc.shape == (1, 32, 2, 3)
    # the last tap is the last block, so both give the same final normed tokens
    assert torch.allclose(enc.flatten(2).transpose(1, 2), feats[-1][0])
    out, inner = model.depth_head(feats, 2, 3, return_features=True)
    assert torch.equal(out, model.depth_head(feats, 2, 3))
    assert set(inner) == {"layer4_rn", "path_4", "path_3", "path_2", "path_1", "out_conv1"}
    assert inner["path_1"].shape == (1, 16, 16, 24) and inner["out_conv1"].shape == (1, 8, 16, 24)


def _ddp_worker(rank, world, port, out):
    import torch.distributed as dist

    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=world)
    try:
        torch.manual_seed(0)
        model = torch.nn.parallel.DistributedDataParallel(create_model("da2_test"))  # no find_unused_parameters
        x = torch.randn(1, 3, 28, 28, generator=torch.Generator().manual_seed(rank))
        for _ in range(2):  # a second step fails if any trainable parameter got no gradient
            model(x).mean().backward()
        g = model.module.depth_head.scratch.output_conv1.weight.grad
        out[rank] = g.clone()
    finally:
        dist.destroy_process_group()


def test_ddp_without_find_unused_parameters():
    import socket

    import torch.multiprocessing as mp

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    out = mp.Manager().dict()
    # spawn, not fork: forking after the parent ran OpenMP-parallel ops can deadlock the workers
    mp.spawn(_ddp_worker, args=(2, port, out), nprocs=2, join=True)
    assert torch.allclose(out[0], out[1])  # gradients were all-reduced


@pytest.mark.slow
@pytest.mark.parametrize("name, taps", [("da2_vits14", [2, 5, 8, 11]), ("da1_vits14", [8, 9, 10, 11])])
def test_numerical_identity_full_size_vits(name, taps, tmp_path):
    """The identity check at the real ViT-S width (slow on CPU: run with -m slow)."""
    model = create_model(name)
    cfg = CONFIGS[name]
    sd = official_state_dict(384, 12, cfg.features, cfg.out_channels, swiglu=False, seed=5)
    torch.save(sd, tmp_path / "vits.pth")
    model = create_model(name, checkpoint=tmp_path / "vits.pth").eval()
    x = torch.randn(1, 3, 518, 700, generator=torch.Generator().manual_seed(6))
    with torch.no_grad():
        ours = model(x)
        ref = ref_depth_anything(sd, x, int(name[2]), taps, 6, False)
    assert ref.max() > 0
    assert (ours - ref).abs().max() / ref.abs().max() < 1e-4


def tiny_model(name: str, seed: int = 0):
    """A tiny registered model with official-layout random weights that give a non-trivial output.

    (PyTorch's default init, like the official one, often leaves the output ReLU dead: all zeros.)
    """
    from dabench.models.checkpoint import load_state_dict_strict

    model = create_model(name)
    cfg = CONFIGS[name]
    sd = official_state_dict(model.pretrained.embed_dim, len(model.pretrained.blocks), cfg.features,
                             cfg.out_channels, swiglu=False, seed=seed)
    load_state_dict_strict(model, sd, f"<{name} test weights>")
    return model.eval()


def test_tiny_model_helper_is_nontrivial():
    for name in ("da1_test", "da2_test"):
        y = tiny_model(name)(torch.randn(1, 3, 28, 42))
        assert y.std() > 0 and (y > 0).float().mean() > 0.2
