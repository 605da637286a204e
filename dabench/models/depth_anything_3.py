"""Depth Anything 3 (Lin et al. 2025, arXiv 2511.10647; ByteDance-Seed/Depth-Anything-3), rebuilt on
timm's DINOv2 with dabench's own RoPE / QK-norm / alternating-attention encoder (``da3_layers``) and
DPT / DualDPT heads (``da3_heads``). Parameter names follow the official ``DepthAnything3Net``
(``backbone.pretrained.*``, ``head.*``, ``cam_dec.*``, ``cam_enc.*``, ``gs_head.*``), so a bare state
dict and the hub's ``model.safetensors`` (keys under ``model.``) load strictly.

What each variant outputs (``forward(x)``: ``B×3×H×W`` → ``B×H×W``):

- ``da3_vit{s,b,l,g}14`` (any-view; the official ``da3-small/base/large/giant``): **depth up to
  scale** (``exp`` of the head's logit); the DualDPT's confidence (``1 + exp``) comes with it in
  :meth:`DepthAnything3.forward_outputs` and in ``--log-samples``;
- ``da3mono_vitl14``: **relative depth** (up to scale); sky pixels (sky head ≥ 0.3) are set to the
  99th percentile of the other pixels' depth, as the official network does;
- ``da3metric_vitl14``: **metric depth in metres given the camera's focal length**: ``forward`` gives
  canonical depth (metres for a 300-px focal length at the network input); metres for a real camera
  are ``output × f_px / 300`` (the official scaling, :func:`metric_from_canonical`, ``f_px`` the mean of
  fx and fy of K brought to the network input as the official ``InputProcessor`` resizes K). The model
  is registered metric and ``needs_intrinsics``: the evaluation loop hands it each sample's K
  (:meth:`DepthAnything3.metric_depth`, :func:`dabench.models.outputs.with_intrinsics`); where metres
  are scored (no per-image alignment) a sample without K is refused. Sky as ``da3mono``;
- ``da3nested_vitg14_vitl14`` (``da3nested-giant-large``): **metric depth in metres**: the giant
  any-view depth scaled by least squares onto the metric branch (made metric with the giant's own
  predicted focal length), on confident (≥ median), non-sky pixels; sky set to
  ``min(99th percentile, 200 m)``.

Geometry outputs (``dabench.models.outputs``; the ``moge`` suite): the any-view models declare depth and
points up to scale plus intrinsics, the nested model metric depth, points and intrinsics, the metric
model metric depth; :meth:`DepthAnything3.predict_geometry` returns them. K is the official
``pose_encoding_to_extri_intri`` of the camera decoder's field of view at the network input (principal
point at ``(w/2, h/2)``, which the official code unprojects with integer pixel coordinates, as dabench
does), brought to the image size as the official ``InputProcessor`` resizes K (row 0 × W/w, row 1 × H/h).

The official code draws a random subset of 100 000 pixels before some quantiles on large images;
dabench computes them exactly (the same value for images up to 100 000 pixels; reproducible above).
"""
from __future__ import annotations

import re
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from dabench.errors import DataError
from dabench.models._registry import register_model
from dabench.models.contract import DataConfig
from dabench.models.da3_heads import DualDPT, GaussianDPT, MonoDPT
from dabench.models.da3_layers import CameraDecoder, CameraEncoder, EncoderConfig, build_encoder, encode
from dabench.models.dinov2 import ENCODERS, PATCH_SIZE

FAMILY = "depth_anything_3"
OUTPUT_SPACE = "depth"
IS_METRIC = False
#: The official metric scaling: canonical depth × focal (px) / 300 = metres.
CANONICAL_FOCAL_PX = 300.0
#: What each kind declares to ``dabench.models.outputs`` (the camera decoder gives K, hence points).
GEOMETRY_OUTPUTS = {"anyview": {"depth": "scale_invariant", "points": "scale_invariant", "intrinsics": "metric"},
                    "mono": {"depth": "affine_invariant"}, "metric": {"depth": "metric"}}
SKY_THRESHOLD = 0.3  # sky head value at or above which a pixel is sky
NESTED_SKY_DEPTH_M = 200.0


def _cfg(**overrides) -> DataConfig:
    """The official ``InputProcessor`` defaults (``process_res=504``, ``upper_bound_resize``): the longest
    side becomes 504 px on the uint8 image (bicubic when enlarging, area when shrinking), then each side
    moves to its nearest multiple of 14 by a second small resize; ImageNet mean/std. The API returns the
    map at that size; dabench resizes it back to the image bilinearly (dabench's choice)."""
    from timm.data import IMAGENET_DEFAULT_MEAN, IMAGENET_DEFAULT_STD

    base = dict(mean=tuple(IMAGENET_DEFAULT_MEAN), std=tuple(IMAGENET_DEFAULT_STD), input_size=504,
                resize="longest_side", multiple_of=PATCH_SIZE, interpolation="auto", resize_uint8=True,
                output_interpolation="bilinear", output_align_corners=False)
    return DataConfig(**{**base, **overrides})


@dataclass(frozen=True)
class DA3Config:
    """One Depth Anything 3 network: ``kind`` any-view (DualDPT + camera heads), mono or metric (DPT + sky)."""

    kind: str  # "anyview", "mono", "metric"
    encoder: EncoderConfig
    features: int
    out_channels: tuple[int, int, int, int]
    gaussian_head: bool = False  # the giant any-view checkpoint carries a 3D-Gaussian head
    camera_heads: int = 16  # heads of the camera encoder's blocks


_ANY = dict(alt_start=4, qknorm_start=4, rope_start=4, cat_token=True)
#: From the package's ``depth_anything_3/configs/*.yaml`` (da3-small/base/large/giant, da3mono/metric-large).
CONFIGS: dict[str, DA3Config] = {
    "da3_vits14": DA3Config("anyview", EncoderConfig("vits", (5, 7, 9, 11), **_ANY), 64, (48, 96, 192, 384)),
    "da3_vitb14": DA3Config("anyview", EncoderConfig("vitb", (5, 7, 9, 11), **_ANY), 128, (96, 192, 384, 768)),
    "da3_vitl14": DA3Config("anyview", EncoderConfig("vitl", (11, 15, 19, 23), 8, 8, 8, True), 256,
                            (256, 512, 1024, 1024)),
    "da3_vitg14": DA3Config("anyview", EncoderConfig("vitg", (19, 27, 33, 39), 13, 13, 13, True), 256,
                            (256, 512, 1024, 1024), gaussian_head=True),
    "da3mono_vitl14": DA3Config("mono", EncoderConfig("vitl", (4, 11, 17, 23)), 256, (256, 512, 1024, 1024)),
    "da3metric_vitl14": DA3Config("metric", EncoderConfig("vitl", (4, 11, 17, 23)), 256, (256, 512, 1024, 1024)),
    # Tiny variants for tests: width 32, 6 blocks (alternating from block 2), a narrow head.
    "da3_test": DA3Config("anyview", EncoderConfig("test6", (2, 3, 4, 5), 2, 2, 2, True), 16, (8, 16, 32, 32),
                          camera_heads=2),
    "da3g_test": DA3Config("anyview", EncoderConfig("testg", (0, 1, 2, 3), 1, 1, 1, True), 16, (8, 16, 32, 32),
                           gaussian_head=True, camera_heads=2),
    "da3mono_test": DA3Config("mono", EncoderConfig("test6", (1, 3, 4, 5)), 16, (8, 16, 32, 32)),
    "da3metric_test": DA3Config("metric", EncoderConfig("test6", (1, 3, 4, 5)), 16, (8, 16, 32, 32)),
}
#: Nested models: (any-view part, metric part).
NESTED = {"da3nested_vitg14_vitl14": ("da3_vitg14", "da3metric_vitl14"), "da3nested_test": ("da3_test", "da3metric_test")}

_SWIGLU = re.compile(r"(pretrained\.blocks\.\d+\.mlp\.)(w12|w3)\.")


def checkpoint_filter(sd: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Official DA3 keys → dabench's: the hub file's ``model.`` prefix removed; ViT-G's SwiGLU
    ``mlp.w12``/``mlp.w3`` → timm's ``mlp.fc1``/``mlp.fc2`` (same packing)."""
    if sd and all(k.startswith("model.") for k in sd):
        sd = {k[len("model."):]: v for k, v in sd.items()}
    return {_SWIGLU.sub(lambda m: m.group(1) + ("fc1." if m.group(2) == "w12" else "fc2."), k): v for k, v in sd.items()}


def metric_from_canonical(depth: torch.Tensor, focal_px: torch.Tensor | float) -> torch.Tensor:
    """Metres from the metric model's canonical depth: ``depth × f / 300`` (``f``: focal length in pixels
    at the network input, per image for a ``B×H×W`` batch)."""
    f = torch.as_tensor(focal_px, dtype=depth.dtype, device=depth.device)
    return depth * (f.reshape(-1, *([1] * (depth.ndim - 1))) if f.ndim else f) / CANONICAL_FOCAL_PX


def _sky_to_far(depth: torch.Tensor, sky: torch.Tensor) -> torch.Tensor:
    """One view's ``H×W`` depth with sky pixels set to the 99th percentile of the rest (when both parts
    have more than 10 pixels), as the official mono post-processing."""
    ground = sky < SKY_THRESHOLD
    if depth.device.type == "meta":  # shapes only
        return depth
    if int(ground.sum()) <= 10 or int((~ground).sum()) <= 10:
        return depth
    far = torch.quantile(depth[ground], 0.99)
    return torch.where(ground, depth, far)


def _no_autocast(x: torch.Tensor):
    import contextlib

    return contextlib.nullcontext() if x.device.type == "meta" else torch.autocast(x.device.type, enabled=False)


class _GeometryMixin:
    """``predict_geometry`` of the DA3 networks (see the module docstring, "Geometry outputs")."""

    def predict_geometry(self, images, intrinsics=None, input_size: int | None = None, device=None,
                         amp_dtype=None) -> list[dict[str, np.ndarray]]:
        """RGB uint8 images → per image ``{"depth", ["points", "intrinsics"]}`` at the image size (float32):
        depth as :meth:`forward` (metres for the metric model, which needs ``intrinsics``: one pixel K of
        each image), K in pixels of the image from the predicted field of view, points the depth
        unprojected through that K. One image per forward pass; ``input_size`` defaults to the native size."""
        from dabench.models.contract import check_image
        from dabench.models.inference import autocast, resolve_amp_dtype, resolve_device
        from dabench.models.outputs import unproject

        dev = resolve_device(device) if device is not None else next(self.parameters()).device
        self.to(dev).eval()
        amp = resolve_amp_dtype(amp_dtype)
        cfg, size = self.data_config, input_size or self.input_size
        if getattr(self, "needs_intrinsics", False) and (intrinsics is None or len(intrinsics) != len(images)):
            raise DataError(f"{self.arch}: metric depth needs one camera K per image (metres = output x f_px / 300)")
        outs = []
        for i, image in enumerate(images):
            image = check_image(image, f"image {i}")
            big_h, big_w = image.shape[:2]
            x = torch.from_numpy(cfg.preprocess_numpy(image, size))[None].to(dev)
            h, w = x.shape[-2:]
            with torch.inference_mode(), autocast(dev, amp):
                out = self.forward_outputs(x)
            depth = cfg.to_image_size(out["depth"][0].float(), (big_h, big_w)).cpu().numpy()
            res: dict[str, np.ndarray] = {}
            if getattr(self, "needs_intrinsics", False):
                depth = self.metric_depth(depth, intrinsics[i], (big_h, big_w), size)
            if "fov" in out:
                from dabench.models.da3_layers import intrinsics_from_fov

                k = intrinsics_from_fov(out["fov"][:, None].float(), h, w)[0, 0].double().cpu().numpy()
                k[0] *= big_w / w  # the official InputProcessor's _resize_ixt, network input -> image
                k[1] *= big_h / h
                res["intrinsics"] = k.astype(np.float32)
                res["points"] = unproject(depth, k)
            res["depth"] = depth.astype(np.float32)
            outs.append(res)
        return outs


class DepthAnything3(_GeometryMixin, nn.Module):
    """A Depth Anything 3 network (one registered variant); see the module docstring for outputs."""

    output_space = "depth"
    data_config = _cfg()
    input_size = data_config.input_size

    def __init__(self, config: DA3Config, arch: str | None = None):
        super().__init__()
        self.config, self.arch = config, arch
        self.is_metric = config.kind == "metric"
        self.geometry_outputs = GEOMETRY_OUTPUTS[config.kind]
        # the metric model gives metres only with the camera's focal length (see metric_depth)
        self.needs_intrinsics = config.kind == "metric"
        self.backbone = nn.Module()
        self.backbone.pretrained = build_encoder(config.encoder)
        width = ENCODERS[config.encoder.encoder].embed_dim
        tokens = 2 * width if config.encoder.cat_token else width
        if config.kind == "anyview":
            self.head = DualDPT(tokens, config.features, config.out_channels)
            self.cam_dec = CameraDecoder(tokens)
            self.cam_enc = CameraEncoder(width, num_heads=config.camera_heads)
            for p in self.cam_enc.parameters():  # used only with known poses (multi-view)
                p.requires_grad_(False)
        else:
            self.head = MonoDPT(tokens, config.features, config.out_channels)
        if config.gaussian_head:
            self.gs_head = GaussianDPT(tokens, config.features, config.out_channels)
            self.gs_head.requires_grad_(False)

    @property
    def patch_size(self) -> int:
        return PATCH_SIZE

    def checkpoint_filter(self, sd):
        return checkpoint_filter(sd)

    def forward_views(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        """``x``: ``B × N × 3 × H × W`` (N views of one scene) → ``depth`` (``B×N×H×W``) and, by kind,
        ``confidence`` and ``fov`` (``B×N×2``: vertical, horizontal, radians) or ``sky``. The head runs in
        float32 (autocast off), as the official network."""
        b, n, _, h, w = x.shape
        gh, gw = h // PATCH_SIZE, w // PATCH_SIZE
        feats = encode(self.backbone.pretrained, self.config.encoder, x)
        with _no_autocast(x):
            tokens = [f[0].reshape(b * n, *f[0].shape[2:]).float() for f in feats]
            out = {k: v.reshape(b, n, *v.shape[1:]) for k, v in self.head(tokens, gh, gw).items()}
            if self.config.kind == "anyview":
                out["fov"] = self.cam_dec(feats[-1][1].float())[..., 7:9]
            else:
                depth = out["depth"].reshape(b * n, h, w)
                sky = out["sky"].reshape(b * n, h, w)
                out["depth"] = torch.stack([_sky_to_far(d, s) for d, s in zip(depth, sky)]).reshape(b, n, h, w)
        return out

    def forward_outputs(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        """``B×3×H×W`` single images → the :meth:`forward_views` outputs without the view axis."""
        return {k: v[:, 0] for k, v in self.forward_views(x[:, None]).items()}

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_outputs(x)["depth"]

    def metric_depth(self, depth, K, image_size: tuple[int, int], input_size: int | None = None) -> np.ndarray:
        """The metric model's metres: canonical ``depth`` (an ``H×W`` map at ``image_size``, as predicted
        for that image at ``input_size``) × ``f / 300``, with ``f`` the mean of fx and fy of the image's
        pixel ``K`` resized to the network input (the official ``InputProcessor._resize_ixt`` and
        ``apply_metric_scaling``). The scale is one number, so it commutes with the resize back."""
        h, w = self.data_config.network_size(int(image_size[0]), int(image_size[1]), input_size or self.input_size)
        K = np.asarray(K, dtype=np.float64)
        if K.shape != (3, 3) or not np.isfinite(K).all() or K[0, 0] <= 0 or K[1, 1] <= 0:
            raise DataError(f"{self.arch}: camera intrinsics must be a finite 3x3 K with positive focal lengths")
        focal = (K[0, 0] * w / image_size[1] + K[1, 1] * h / image_size[0]) / 2.0
        return np.asarray(depth, dtype=np.float32) * np.float32(focal / CANONICAL_FOCAL_PX)

    def auxiliary_outputs(self, x: torch.Tensor) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """``(depth, {"confidence" | "sky": B×H×W})``: the per-pixel maps ``--log-samples`` keeps."""
        out = self.forward_outputs(x)
        return out["depth"], {k: out[k] for k in ("confidence", "sky") if k in out}


class NestedDepthAnything3(_GeometryMixin, nn.Module):
    """Any-view giant (``da3``) + metric large (``da3_metric``) → metric depth in metres."""

    output_space = "depth"
    is_metric = True
    geometry_outputs = {"depth": "metric", "points": "metric", "intrinsics": "metric"}
    data_config = _cfg()
    input_size = data_config.input_size

    def __init__(self, anyview: str, metric: str, arch: str | None = None):
        super().__init__()
        self.arch = arch
        self.da3 = DepthAnything3(CONFIGS[anyview], anyview)
        self.da3_metric = DepthAnything3(CONFIGS[metric], metric)

    @property
    def patch_size(self) -> int:
        return PATCH_SIZE

    def checkpoint_filter(self, sd):
        return checkpoint_filter(sd)

    def forward_outputs(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        h, w = x.shape[-2:]
        rel = self.da3.forward_outputs(x)
        canon = self.da3_metric.forward_outputs(x)
        from dabench.models.da3_layers import intrinsics_from_fov

        k = intrinsics_from_fov(rel["fov"][:, None], h, w)[:, 0]
        focal = (k[:, 0, 0] + k[:, 1, 1]) / 2
        metric = metric_from_canonical(canon["depth"], focal)
        if x.device.type == "meta":  # shapes only
            return {"depth": metric, "confidence": rel["confidence"], "sky": canon["sky"], "fov": rel["fov"]}
        depths, confs = [], []
        for d, c, m, s in zip(rel["depth"], rel["confidence"], metric, canon["sky"]):
            ground = s < SKY_THRESHOLD
            if int(ground.sum()) <= 10:
                from dabench.errors import DataError

                raise DataError("da3nested: fewer than 11 non-sky pixels; the metric scale cannot be aligned")
            median_conf = torch.quantile(c[ground], 0.5)
            mask = (c >= median_conf) & ground & (m > 1e-2) & (d > 1e-3)
            a, b = m[mask], d[mask]
            d = d * (torch.dot(a, b) / torch.dot(b, b).clamp_min(1e-12))
            far = torch.clamp(torch.quantile(d[ground], 0.99), max=NESTED_SKY_DEPTH_M)
            depths.append(torch.where(ground, d, far))
            confs.append(torch.where(ground, c, torch.ones_like(c)))
        return {"depth": torch.stack(depths), "confidence": torch.stack(confs), "sky": canon["sky"], "fov": rel["fov"]}

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_outputs(x)["depth"]

    def auxiliary_outputs(self, x: torch.Tensor) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        out = self.forward_outputs(x)
        return out["depth"], {"confidence": out["confidence"], "sky": out["sky"]}


def build(arch: str, **kwargs) -> nn.Module:
    """Build registered variant ``arch`` (random initialisation)."""
    if kwargs:
        from dabench.errors import ConfigError

        raise ConfigError(f"{arch} takes no extra options, got {sorted(kwargs)}")
    if arch in NESTED:
        return NestedDepthAnything3(*NESTED[arch], arch=arch)
    model = DepthAnything3(CONFIGS[arch], arch=arch)
    return model


#: One data config per registered variant (timm's ``default_cfgs``); ``register_model`` reads it.
default_cfgs: dict[str, DataConfig] = {name: _cfg() for name in [*CONFIGS, *NESTED]}

#: What each kind outputs (``dabench ls models`` shows it).
OUTPUTS = {"anyview": "depth up to scale (+ confidence)", "mono": "relative depth up to scale (sky set far)",
           "metric": "metric depth in metres given the camera focal: output x f_px/300 (canonical: 300-px focal); "
                     "needs the sample's intrinsics where metres are scored",
           "nested": "metric depth in metres (sky: min(p99, 200 m))"}


def _meta(name: str) -> dict:
    kind = "nested" if name in NESTED else CONFIGS[name].kind
    enc = CONFIGS[NESTED[name][0] if name in NESTED else name].encoder.encoder
    official = {"da3_vits14": "da3-small", "da3_vitb14": "da3-base", "da3_vitl14": "da3-large", "da3_vitg14": "da3-giant",
                "da3mono_vitl14": "da3mono-large", "da3metric_vitl14": "da3metric-large",
                "da3nested_vitg14_vitl14": "da3nested-giant-large"}.get(name, "tiny test model")
    return dict(version=3, encoder=ENCODERS[enc].name, output=OUTPUTS[kind],
                description=f"DA3 {kind} ({official}): {OUTPUTS[kind]}")


def family_info(name: str) -> dict:
    """What ``model_info`` adds for a DA3 variant: its output in words, tapped blocks, head widths."""
    kind = "nested" if name in NESTED else CONFIGS[name].kind
    cfg = CONFIGS[NESTED[name][0] if name in NESTED else name]
    return {"output": OUTPUTS[kind], "taps": list(cfg.encoder.out_layers), "features": cfg.features,
            "out_channels": list(cfg.out_channels)}


# One builder per variant: random initialisation; load weights with create_model(..., checkpoint=).
@register_model(**_meta("da3_vits14"))
def da3_vits14(**kwargs) -> DepthAnything3:
    """Depth Anything 3 any-view, ViT-S/14 (da3-small)."""
    return build("da3_vits14", **kwargs)


@register_model(**_meta("da3_vitb14"))
def da3_vitb14(**kwargs) -> DepthAnything3:
    """Depth Anything 3 any-view, ViT-B/14 (da3-base)."""
    return build("da3_vitb14", **kwargs)


@register_model(**_meta("da3_vitl14"))
def da3_vitl14(**kwargs) -> DepthAnything3:
    """Depth Anything 3 any-view, ViT-L/14 (da3-large)."""
    return build("da3_vitl14", **kwargs)


@register_model(**_meta("da3_vitg14"))
def da3_vitg14(**kwargs) -> DepthAnything3:
    """Depth Anything 3 any-view, ViT-G/14 (da3-giant)."""
    return build("da3_vitg14", **kwargs)


@register_model(**_meta("da3mono_vitl14"))
def da3mono_vitl14(**kwargs) -> DepthAnything3:
    """Depth Anything 3 monocular relative depth, ViT-L/14 (da3mono-large)."""
    return build("da3mono_vitl14", **kwargs)


@register_model(is_metric=True, **_meta("da3metric_vitl14"))
def da3metric_vitl14(**kwargs) -> DepthAnything3:
    """Depth Anything 3 monocular metric depth, ViT-L/14 (da3metric-large)."""
    return build("da3metric_vitl14", **kwargs)


@register_model(is_metric=True, **_meta("da3nested_vitg14_vitl14"))
def da3nested_vitg14_vitl14(**kwargs) -> NestedDepthAnything3:
    """Depth Anything 3 nested: any-view giant scaled by metric large (da3nested-giant-large)."""
    return build("da3nested_vitg14_vitl14", **kwargs)


@register_model(test=True, **_meta("da3_test"))
def da3_test(**kwargs) -> DepthAnything3:
    """tiny DA3 any-view test model (width 32, 6 blocks)."""
    return build("da3_test", **kwargs)


@register_model(test=True, **_meta("da3g_test"))
def da3g_test(**kwargs) -> DepthAnything3:
    """tiny DA3 giant-style test model (width 48, SwiGLU, Gaussian head)."""
    return build("da3g_test", **kwargs)


@register_model(test=True, **_meta("da3mono_test"))
def da3mono_test(**kwargs) -> DepthAnything3:
    """tiny DA3 mono test model (width 32, 6 blocks)."""
    return build("da3mono_test", **kwargs)


@register_model(is_metric=True, test=True, **_meta("da3metric_test"))
def da3metric_test(**kwargs) -> DepthAnything3:
    """tiny DA3 metric test model (width 32, 6 blocks)."""
    return build("da3metric_test", **kwargs)


@register_model(test=True, is_metric=True, **_meta("da3nested_test"))
def da3nested_test(**kwargs) -> NestedDepthAnything3:
    """tiny DA3 nested test model (da3_test + da3metric_test)."""
    return build("da3nested_test", **kwargs)
