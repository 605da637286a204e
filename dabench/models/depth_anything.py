"""Depth Anything V1 and V2: a timm DINOv2 encoder (``pretrained``) + the DPT decoder (``depth_head``).

One class covers both versions; they differ only in which blocks feed the decoder (V1: the last
four, ``get_intermediate_layers(x, 4)``; V2: fixed indices per size) and in V1's final bilinear
resize to the input size + ReLU (a no-op for inputs that are multiples of 14, kept for exactness).
Each registered variant is a small ``@register_model`` builder that only sets hyper-parameters; the
preprocessing every variant shares (the official ``image2tensor``) is declared once, in :func:`_cfg`,
and the suites and ``dabench.models.inference`` read it from ``model.data_config``.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import torch
import torch.nn.functional as F
from torch import nn

import dabench.models.dinov2 as _dinov2
from dabench.models._registry import register_model
from dabench.models.contract import DataConfig
from dabench.models.dpt import DPTHead

#: Read by ``register_model`` for every builder below (family, output space, metric-ness).
FAMILY = "depth_anything"
OUTPUT_SPACE = "disparity"
IS_METRIC = False


def _cfg(**overrides) -> DataConfig:
    """Depth Anything's data config: the official ``image2tensor`` (ImageNet mean/std, bicubic resize keeping
    the aspect ratio so both sides are >= 518 and multiples of the patch size) and ``infer_image``'s
    bilinear ``align_corners=True`` resize of the prediction back to the image."""
    from timm.data import IMAGENET_DEFAULT_MEAN, IMAGENET_DEFAULT_STD

    base = dict(mean=tuple(IMAGENET_DEFAULT_MEAN), std=tuple(IMAGENET_DEFAULT_STD), input_size=518,
                resize="lower_bound", multiple_of=_dinov2.PATCH_SIZE, interpolation="bicubic",
                output_interpolation="bilinear", output_align_corners=True)
    return DataConfig(**{**base, **overrides})


def default_data_config() -> DataConfig:
    """The data config every Depth Anything variant registers (see :func:`_cfg`)."""
    return _cfg()


@dataclass(frozen=True)
class DepthAnythingConfig:
    """Hyper-parameters of one Depth Anything variant."""

    version: int  # 1 or 2
    encoder: str  # key of dabench.models.dinov2.ENCODERS
    features: int  # DPT fusion width
    out_channels: tuple[int, int, int, int]
    layer_idx: tuple[int, ...] | None  # V2 taps; None = last four blocks (V1)


#: Official sizes (V1 repo ``depth_anything/dpt.py`` configs, V2 repo ``model_configs``).
CONFIGS: dict[str, DepthAnythingConfig] = {
    "da1_vits14": DepthAnythingConfig(1, "vits", 64, (48, 96, 192, 384), None),
    "da1_vitb14": DepthAnythingConfig(1, "vitb", 128, (96, 192, 384, 768), None),
    "da1_vitl14": DepthAnythingConfig(1, "vitl", 256, (256, 512, 1024, 1024), None),
    "da2_vits14": DepthAnythingConfig(2, "vits", 64, (48, 96, 192, 384), (2, 5, 8, 11)),
    "da2_vitb14": DepthAnythingConfig(2, "vitb", 128, (96, 192, 384, 768), (2, 5, 8, 11)),
    "da2_vitl14": DepthAnythingConfig(2, "vitl", 256, (256, 512, 1024, 1024), (4, 11, 17, 23)),
    "da2_vitg14": DepthAnythingConfig(2, "vitg", 384, (1536, 1536, 1536, 1536), (9, 19, 29, 39)),
    # Tiny variants for tests: width-32 DINOv2 recipe, a few blocks, a narrow DPT.
    "da1_test": DepthAnythingConfig(1, "test", 16, (8, 16, 32, 32), None),
    "da2_test": DepthAnythingConfig(2, "test6", 16, (8, 16, 32, 32), (1, 3, 4, 5)),
}


class DepthAnything(nn.Module):
    """Depth Anything relative-depth network.

    ``forward(x)``: ImageNet-normalised ``B×3×H×W`` (H, W multiples of 14) → ``B×H×W`` relative
    inverse depth (disparity, affine-ambiguous, ≥ 0), exactly as the official ``forward``.
    """

    output_space = "disparity"
    is_metric = False
    data_config = _cfg()
    #: native inference size (shorter side): 518 for the official weights; dabench checkpoints record
    #: the size they were trained at (``dabench.input_size`` metadata) and ``create_model`` sets it.
    input_size = data_config.input_size

    def __init__(self, config: DepthAnythingConfig, arch: str | None = None):
        super().__init__()
        self.config = config
        self.arch = arch
        self.version = config.version
        self.encoder = config.encoder
        self.pretrained = _dinov2.build_dinov2(config.encoder)
        depth = len(self.pretrained.blocks)
        self.intermediate_layer_idx: list[int] = (list(range(depth - 4, depth)) if config.layer_idx is None
                                                  else list(config.layer_idx))
        self.depth_head = DPTHead(self.pretrained.embed_dim, config.features, config.out_channels)
        # Stored in the official checkpoints but never used by the forward pass: freeze them so
        # DDP does not need find_unused_parameters=True (the state dict is unchanged).
        for p in (self.pretrained.mask_token, *self.depth_head.scratch.refinenet4.resConfUnit1.parameters()):
            p.requires_grad_(False)

    @property
    def patch_size(self) -> int:
        return _dinov2.PATCH_SIZE

    def get_intermediate_layers(self, x: torch.Tensor) -> list[tuple[torch.Tensor, torch.Tensor]]:
        """The four tapped blocks as ``(patch_tokens B×N×C, cls_token B×C)``, after the encoder's norm."""
        return _dinov2.get_intermediate_layers(self.pretrained, x, self.intermediate_layer_idx)

    forward_features = get_intermediate_layers

    def _tokens_to_map(self, tokens: torch.Tensor, patch_h: int, patch_w: int) -> torch.Tensor:
        return tokens.transpose(1, 2).reshape(tokens.shape[0], tokens.shape[-1], patch_h, patch_w)

    def forward_encoder_features(self, x: torch.Tensor) -> torch.Tensor:
        """Final-block, final-normed patch features as ``B×C×(H/14)×(W/14)`` (feature-alignment target)."""
        depth = len(self.pretrained.blocks)
        tokens, _ = _dinov2.get_intermediate_layers(self.pretrained, x, [depth - 1])[0]
        return self._tokens_to_map(tokens, x.shape[-2] // self.patch_size, x.shape[-1] // self.patch_size)

    def _decode(self, features, h: int, w: int) -> torch.Tensor:
        depth = self.depth_head(features, h // self.patch_size, w // self.patch_size)
        if self.version == 1:
            depth = F.interpolate(depth, size=(h, w), mode="bilinear", align_corners=True)
        return F.relu(depth).squeeze(1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        features = self.get_intermediate_layers(x)
        return self._decode(features, *x.shape[-2:])

    def forward_with_features(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``(self(x), self.forward_encoder_features(x))``, identical results, with a single encoder pass
        when the last tapped block is the final block (every registered variant)."""
        if self.intermediate_layer_idx[-1] != len(self.pretrained.blocks) - 1:
            return self(x), self.forward_encoder_features(x)
        features = self.get_intermediate_layers(x)
        h, w = x.shape[-2:]
        enc = self._tokens_to_map(features[-1][0], h // self.patch_size, w // self.patch_size)
        return self._decode(features, h, w), enc


def build(arch: str, **kwargs) -> DepthAnything:
    """Build registered variant ``arch`` (random initialisation)."""
    if kwargs:
        from dabench.errors import ConfigError

        raise ConfigError(f"{arch} takes no extra options, got {sorted(kwargs)}")
    return DepthAnything(CONFIGS[arch], arch=arch)


#: One data config per registered variant (timm's ``default_cfgs``); ``register_model`` reads it.
default_cfgs: dict[str, DataConfig] = {name: _cfg() for name in CONFIGS}


# One builder per variant: random initialisation; load weights with create_model(..., checkpoint=).
@register_model
def da1_vits14(**kwargs) -> DepthAnything:
    """Depth Anything V1, ViT-S/14."""
    return build("da1_vits14", **kwargs)


@register_model
def da1_vitb14(**kwargs) -> DepthAnything:
    """Depth Anything V1, ViT-B/14."""
    return build("da1_vitb14", **kwargs)


@register_model
def da1_vitl14(**kwargs) -> DepthAnything:
    """Depth Anything V1, ViT-L/14."""
    return build("da1_vitl14", **kwargs)


@register_model
def da2_vits14(**kwargs) -> DepthAnything:
    """Depth Anything V2, ViT-S/14."""
    return build("da2_vits14", **kwargs)


@register_model
def da2_vitb14(**kwargs) -> DepthAnything:
    """Depth Anything V2, ViT-B/14."""
    return build("da2_vitb14", **kwargs)


@register_model
def da2_vitl14(**kwargs) -> DepthAnything:
    """Depth Anything V2, ViT-L/14."""
    return build("da2_vitl14", **kwargs)


@register_model
def da2_vitg14(**kwargs) -> DepthAnything:
    """Depth Anything V2, ViT-G/14."""
    return build("da2_vitg14", **kwargs)


@register_model(test=True)
def da1_test(**kwargs) -> DepthAnything:
    """tiny V1-style test model (width 32, 4 blocks)."""
    return build("da1_test", **kwargs)


@register_model(test=True)
def da2_test(**kwargs) -> DepthAnything:
    """tiny V2-style test model (width 32, 6 blocks)."""
    return build("da2_test", **kwargs)


def family_info(name: str) -> dict:
    """What ``model_info`` adds for a Depth Anything variant: version, encoder, taps and decoder widths."""
    cfg = CONFIGS[name]
    return {"version": cfg.version, "encoder": cfg.encoder, "taps": list(official_tap_indices(name)),
            "features": cfg.features, "out_channels": list(cfg.out_channels)}


def official_tap_indices(arch: str) -> Sequence[int]:
    """The encoder blocks feeding the DPT for ``arch`` (for docs/listings)."""
    cfg = CONFIGS[arch]
    depth = _dinov2.ENCODERS[cfg.encoder].depth
    return list(range(depth - 4, depth)) if cfg.layer_idx is None else list(cfg.layer_idx)
