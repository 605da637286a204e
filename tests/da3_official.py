"""Build the official Depth Anything 3 networks (package ``depth-anything-3``, installed ``--no-deps``)
with seeded random weights, as references for dabench's rebuild. Tiny variants are assembled from the
official classes with the tiny hyper-parameters of ``dabench.models.depth_anything_3.CONFIGS``;
full-size ones come from the package's own YAML (``depth_anything_3/configs/*.yaml``)."""
from __future__ import annotations

import math
import os
import warnings

import pytest
import torch

REASON = ("the official Depth Anything 3 code is not installed: pip install --no-deps depth-anything-3 && "
          "pip install omegaconf einops addict (.ci/run does this)")
OFFICIAL_NAMES = {"da3_vits14": "da3-small", "da3_vitb14": "da3-base", "da3_vitl14": "da3-large",
                  "da3_vitg14": "da3-giant", "da3mono_vitl14": "da3mono-large", "da3metric_vitl14": "da3metric-large",
                  "da3nested_vitg14_vitl14": "da3nested-giant-large"}


def require_official():
    for mod in ("omegaconf", "einops", "addict"):
        pytest.importorskip(mod, reason=REASON)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return pytest.importorskip("depth_anything_3.model.da3", reason=REASON)


def _official_tiny_single(arch: str):
    from torch import nn
    from depth_anything_3.model.cam_dec import CameraDec
    from depth_anything_3.model.cam_enc import CameraEnc
    from depth_anything_3.model.da3 import DepthAnything3Net
    from depth_anything_3.model.dinov2.dinov2 import DinoV2
    from depth_anything_3.model.dinov2.vision_transformer import DinoVisionTransformer
    from depth_anything_3.model.dpt import DPT
    from depth_anything_3.model.dualdpt import DualDPT

    from dabench.models.depth_anything_3 import CONFIGS
    from dabench.models.dinov2 import ENCODERS

    cfg = CONFIGS[arch]
    enc, spec = cfg.encoder, ENCODERS[cfg.encoder.encoder]
    backbone = DinoV2.__new__(DinoV2)
    nn.Module.__init__(backbone)
    backbone.out_layers = list(enc.out_layers)
    backbone.pretrained = DinoVisionTransformer(
        img_size=518, patch_size=14, embed_dim=spec.embed_dim, depth=spec.depth, num_heads=spec.num_heads,
        mlp_ratio=4, ffn_layer="swiglufused" if spec.timm_name.startswith("vit_giant") else "mlp",
        alt_start=enc.alt_start, qknorm_start=enc.qknorm_start, rope_start=enc.rope_start, cat_token=enc.cat_token)
    tokens = 2 * spec.embed_dim if enc.cat_token else spec.embed_dim
    kw = dict(features=cfg.features, out_channels=list(cfg.out_channels))
    if cfg.kind != "anyview":
        return DepthAnything3Net(backbone, DPT(tokens, output_dim=1, **kw))
    net = DepthAnything3Net(backbone, DualDPT(tokens, output_dim=2, **kw), cam_dec=CameraDec(tokens),
                            cam_enc=CameraEnc(dim_out=spec.embed_dim, num_heads=cfg.camera_heads))
    if cfg.gaussian_head:  # the giant's GSDPT (its GaussianAdapter has no weights and needs evo: left out)
        from depth_anything_3.model.gsdpt import GSDPT

        net.gs_head = GSDPT(tokens, output_dim=38, **kw)
    return net


def official_tiny(arch: str):
    """The official network for tiny dabench variant ``arch`` (nested: both parts), random init."""
    from dabench.models.depth_anything_3 import NESTED

    if arch in NESTED:
        from torch import nn
        from depth_anything_3.model.da3 import NestedDepthAnything3Net

        net = NestedDepthAnything3Net.__new__(NestedDepthAnything3Net)
        nn.Module.__init__(net)
        net.da3, net.da3_metric = (_official_tiny_single(a) for a in NESTED[arch])
        return net
    return _official_tiny_single(arch)


def official_full(arch: str):
    """The official network of full-size variant ``arch`` built from the package's YAML."""
    import depth_anything_3
    from depth_anything_3.cfg import create_object, load_config

    from omegaconf import OmegaConf

    root = os.path.join(list(depth_anything_3.__path__)[0], "configs")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        cfg = load_config(os.path.join(root, OFFICIAL_NAMES[arch] + ".yaml"))
        gs = cfg.pop("gs_head", None)
        cfg.pop("gs_adapter", None)  # no weights; its module imports evo (pose alignment), not installed here
        net = create_object(cfg)
        if gs is not None:  # the giant's GSDPT, built from the same YAML entry
            net.gs_head = create_object(OmegaConf.create(gs))
        return net


def randomize(net, seed: int = 0) -> None:
    """Seeded random weights that keep every path active (no exploding exp, no dead ReLU heads)."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in net.named_parameters():
            if name.endswith("gamma"):
                p.copy_(torch.randn(p.shape, generator=g) * 0.3)
            elif p.ndim == 1 and ("norm" in name or name.endswith(".ln.weight")) and name.endswith("weight"):
                p.copy_(1 + 0.1 * torch.randn(p.shape, generator=g))
            elif p.ndim == 1 or name.endswith(("_token", "pos_embed")):
                p.copy_(torch.randn(p.shape, generator=g) * (1.0 if name.endswith(("_token", "pos_embed")) else 0.1))
            else:
                fan_in = math.prod(p.shape[1:]) if not isinstance(p, torch.nn.Parameter) or p.ndim > 1 else 1
                p.copy_(torch.randn(p.shape, generator=g) / math.sqrt(max(fan_in, 1)) * 0.7)


def balance_sky(net, x) -> None:
    """Shift the sky heads' last bias so about half of ``x``'s pixels are sky (both branches exercised)."""
    heads = [m for name, m in net.named_modules() if name.endswith("head") and hasattr(m, "scratch")
             and hasattr(m.scratch, "sky_output_conv2")]
    for head in heads:
        seen = {}
        hook = head.scratch.sky_output_conv2.register_forward_hook(lambda m, i, o: seen.setdefault("o", o))
        with torch.no_grad():
            head.scratch.sky_output_conv2[-1].bias.zero_()
            net(x[:, None]) if not hasattr(net, "da3") else net.da3_metric(x[:, None])
        hook.remove()
        with torch.no_grad():
            head.scratch.sky_output_conv2[-1].bias.fill_(0.3 - float(seen["o"].median()))


def balance_fov(net, x, fov=(0.9, 1.2)) -> None:
    """Shift the camera decoder's field-of-view bias so ``x`` gets fields of view ``fov`` (vertical,
    horizontal; radians): random weights otherwise leave one at ReLU's 0, which the official
    ``pose_encoding_to_extri_intri`` clamps to a focal length of ~1e8 px."""
    any_view = getattr(net, "da3", net)
    fc = any_view.cam_dec.fc_fov[0]
    seen = {}
    hook = fc.register_forward_hook(lambda m, i, o: seen.setdefault("o", o))
    with torch.no_grad():
        any_view(x[:, None])
    hook.remove()
    with torch.no_grad():
        fc.bias.add_(torch.tensor(fov) - seen["o"].reshape(-1, 2)[0])
