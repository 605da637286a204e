"""DINOv2 encoders for Depth Anything, built from timm's ``vit_*_patch14_dinov2`` architectures.

timm provides the network (patch embedding, blocks with LayerScale, final norm); this module adds
what Depth Anything's copy of DINOv2 does differently from timm's own forward:

- the position embedding is resampled exactly as DINOv2's ``interpolate_pos_encoding``: bicubic,
  ``scale_factor = ((h0 + 0.1) / sqrt(N), (w0 + 0.1) / sqrt(N))`` (the "+0.1 offset"),
  ``antialias=False``, computed in float32 and skipped when the grid already matches (square input
  of the training size). timm's own resampling targets an output size instead, which gives
  slightly different weights, so it is not used;
- ``mask_token`` (unused at inference, but part of the official state dict) is kept as a
  parameter so strict loading and round trips work;
- ``get_intermediate_layers`` returns the final-normed patch tokens and class token of chosen
  blocks, as DINOv2's ``get_intermediate_layers(x, n, return_class_token=True)``.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from dabench.errors import ConfigError

PATCH_SIZE = 14
#: DINOv2's historical offset added to the target grid before computing the scale factor.
INTERPOLATE_OFFSET = 0.1
#: Depth Anything builds DINOv2 with ``interpolate_antialias=False``.
INTERPOLATE_ANTIALIAS = False


@dataclass(frozen=True)
class EncoderSpec:
    """Hyper-parameters of one DINOv2 encoder. ``timm_name`` is the timm architecture it builds."""

    name: str  # "vits", "vitb", "vitl", "vitg" or "test"
    timm_name: str
    embed_dim: int
    depth: int
    num_heads: int
    timm_overrides: tuple = ()  # extra timm kwargs as (key, value) pairs (tiny test encoders)


ENCODERS: dict[str, EncoderSpec] = {
    "vits": EncoderSpec("vits", "vit_small_patch14_dinov2", 384, 12, 6),
    "vitb": EncoderSpec("vitb", "vit_base_patch14_dinov2", 768, 12, 12),
    "vitl": EncoderSpec("vitl", "vit_large_patch14_dinov2", 1024, 24, 16),
    "vitg": EncoderSpec("vitg", "vit_giant_patch14_dinov2", 1536, 40, 24),
    # Tiny encoder for tests: timm's small DINOv2 recipe at width 32 and a few blocks.
    "test": EncoderSpec("test", "vit_small_patch14_dinov2", 32, 4, 2,
                        (("embed_dim", 32), ("depth", 4), ("num_heads", 2))),
    "test6": EncoderSpec("test6", "vit_small_patch14_dinov2", 32, 6, 2,
                         (("embed_dim", 32), ("depth", 6), ("num_heads", 2))),
    # Tiny giant-style encoder (SwiGLU MLP as ViT-G) used by the tests; no registered model uses it.
    "testg": EncoderSpec("testg", "vit_giant_patch14_dinov2", 48, 4, 2,
                         (("embed_dim", 48), ("depth", 4), ("num_heads", 2))),
}


def build_dinov2(encoder: str) -> nn.Module:
    """A timm DINOv2 ViT (no classifier head, 518-px position grid) plus a ``mask_token`` parameter."""
    import timm

    if encoder not in ENCODERS:
        raise ConfigError(f"unknown DINOv2 encoder {encoder!r}; expected one of {', '.join(ENCODERS)}")
    spec = ENCODERS[encoder]
    kwargs = dict(spec.timm_overrides)
    vit = timm.create_model(spec.timm_name, pretrained=False, num_classes=0, img_size=518, **kwargs)
    # Official DINOv2 keeps a (1, C) mask token for masked-image training; keep it for key parity.
    vit.mask_token = nn.Parameter(torch.zeros(1, vit.embed_dim))
    return vit


def interpolate_pos_encoding(pos_embed: torch.Tensor, grid_h: int, grid_w: int) -> torch.Tensor:
    """Resample a ``1 × (1+N) × C`` position embedding (class first) to a ``grid_h × grid_w`` patch grid.

    Follows DINOv2's ``interpolate_pos_encoding`` bit for bit: float32, bicubic with a
    ``scale_factor`` that carries the +0.1 offset, no antialiasing, and no resampling when the
    grid already has the stored size and is square.
    """
    num_stored = pos_embed.shape[1] - 1
    if num_stored == grid_h * grid_w and grid_h == grid_w:
        return pos_embed
    previous_dtype = pos_embed.dtype
    pe = pos_embed.float()
    class_pe, patch_pe = pe[:, :1], pe[:, 1:]
    dim = pe.shape[-1]
    side = int(math.sqrt(num_stored))
    if side * side != num_stored:
        raise ConfigError(f"position embedding has {num_stored} patch positions, not a square grid")
    sqrt_n = math.sqrt(num_stored)
    scale = (float(grid_h + INTERPOLATE_OFFSET) / sqrt_n, float(grid_w + INTERPOLATE_OFFSET) / sqrt_n)
    patch_pe = F.interpolate(patch_pe.reshape(1, side, side, dim).permute(0, 3, 1, 2), scale_factor=scale,
                             mode="bicubic", antialias=INTERPOLATE_ANTIALIAS)
    if patch_pe.shape[-2:] != (grid_h, grid_w):  # pragma: no cover - the offset guarantees this
        raise RuntimeError(f"position-embedding interpolation gave {tuple(patch_pe.shape[-2:])}, "
                           f"expected {(grid_h, grid_w)}")
    patch_pe = patch_pe.permute(0, 2, 3, 1).reshape(1, grid_h * grid_w, dim)
    return torch.cat((class_pe, patch_pe), dim=1).to(previous_dtype)


def prepare_tokens(vit: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """Patch-embed ``x`` (B×3×H×W, H and W multiples of 14), prepend the class token, add positions."""
    b, _, h, w = x.shape
    if h % PATCH_SIZE or w % PATCH_SIZE:
        raise ConfigError(f"input size {h}x{w} is not a multiple of the patch size {PATCH_SIZE}; "
                          "resize with dabench.models.inference.preprocess")
    tokens = vit.patch_embed.proj(x).flatten(2).transpose(1, 2)
    tokens = vit.patch_embed.norm(tokens)
    # As DINOv2: no explicit casts here (under autocast, cat promotes the tokens to float32).
    tokens = torch.cat((vit.cls_token.expand(b, -1, -1), tokens), dim=1)
    return tokens + interpolate_pos_encoding(vit.pos_embed, h // PATCH_SIZE, w // PATCH_SIZE).to(tokens.dtype)


def get_intermediate_layers(vit: nn.Module, x: torch.Tensor, layers: Sequence[int] | int,
                            norm: bool = True) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """Outputs of the chosen blocks as ``(patch_tokens B×N×C, class_token B×C)``, after the final norm.

    ``layers`` is a list of block indices, or an int ``n`` for the last ``n`` blocks (as DINOv2);
    outputs come in block order, as DINOv2 returns them.
    Blocks after the last requested one are not run.
    """
    depth = len(vit.blocks)
    idx = list(range(depth - layers, depth)) if isinstance(layers, int) else sorted({int(i) for i in layers})
    bad = [i for i in idx if not 0 <= i < depth]
    if bad:
        raise ConfigError(f"block indices {bad} are out of range for an encoder with {depth} blocks")
    wanted = set(idx)
    h = prepare_tokens(vit, x)
    outs: dict[int, torch.Tensor] = {}
    for i, blk in enumerate(vit.blocks[: max(idx) + 1]):
        h = blk(h)
        if i in wanted:
            outs[i] = h
    result = []
    for i in idx:
        o = vit.norm(outs[i]) if norm else outs[i]
        result.append((o[:, 1:], o[:, 0]))
    return result
