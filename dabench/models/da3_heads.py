"""Depth Anything 3's dense heads, written for dabench: the DPT (mono/metric models, with a sky head)
and the DualDPT (any-view models: depth + confidence, plus the ray branch).

Both reuse the fusion blocks of ``dabench.models.dpt`` and follow the official module names
(``projects``, ``resize_layers``, ``scratch.layer{1-4}_rn``, ``scratch.refinenet{1-4}[_aux]``,
``scratch.output_conv1``, ``scratch.output_conv2``, ``scratch.sky_output_conv2``, ``norm``), so
``head.*`` weights load strictly. Differences from the V1/V2 DPT: tokens may be 2C wide (token
concatenation) and go through a LayerNorm first (DualDPT), refinenet4 has no skip unit, the DualDPT
adds a sinusoidal UV position code (×0.1) to each projected map and to the upsampled map, and the
outputs are activated as ``depth = exp(logit)``, ``confidence = 1 + exp(logit)``, ``sky = relu(logit)``.
"""
from __future__ import annotations

from typing import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from dabench.models.dpt import HEAD_HIDDEN, FeatureFusionBlock

PATCH_SIZE = 14
#: Weight of the UV position code added by the DualDPT (the official ``_add_pos_embed`` ratio).
UV_EMBED_RATIO = 0.1
#: Frequency base of the UV position code.
UV_EMBED_BASE = 100.0


def uv_embedding(channels: int, height: int, width: int, aspect: float, device, dtype) -> torch.Tensor:
    """``channels × height × width`` sinusoidal code of normalised image coordinates.

    Coordinates span ``±aspect/d`` (x) and ``±1/d`` (y), ``d = sqrt(aspect² + 1)``, at pixel centres
    (``(n-1)/n`` of the span at the edges); half the channels encode x, half y, each as
    ``[sin(p·ω), cos(p·ω)]`` with ``ω_k = 100^(-k/(C/4))``."""
    diag = (aspect ** 2 + 1.0) ** 0.5
    span_x, span_y = aspect / diag, 1.0 / diag
    xs = torch.linspace(-span_x * (width - 1) / width, span_x * (width - 1) / width, width, dtype=dtype, device=device)
    ys = torch.linspace(-span_y * (height - 1) / height, span_y * (height - 1) / height, height, dtype=dtype,
                        device=device)
    uu, vv = torch.meshgrid(xs, ys, indexing="xy")  # height × width

    def code(p: torch.Tensor, dim: int) -> torch.Tensor:
        omega = torch.arange(dim // 2, dtype=torch.float32, device=device) / (dim / 2.0)
        omega = 1.0 / UV_EMBED_BASE ** omega
        ang = p.reshape(-1)[:, None] * omega[None]
        return torch.cat((ang.sin(), ang.cos()), dim=1).float()

    emb = torch.cat((code(uu, channels // 2), code(vv, channels // 2)), dim=-1)
    return emb.view(height, width, channels).permute(2, 0, 1)


def add_uv(x: torch.Tensor, height: int, width: int) -> torch.Tensor:
    """``x + 0.1 · uv_embedding`` for a ``B × C × h × w`` map of an image ``height × width`` pixels."""
    pe = uv_embedding(x.shape[1], x.shape[-2], x.shape[-1], width / height, x.device, x.dtype)
    return x + UV_EMBED_RATIO * pe[None]


def _output_conv(features: int, out: int) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(features // 2, HEAD_HIDDEN, 3, 1, 1), nn.ReLU(True), nn.Conv2d(HEAD_HIDDEN, out, 1, 1, 0))


class _Scratch(nn.Module):
    """``layer{1-4}_rn`` adapters and a refinenet chain (``suffix`` "" or "_aux")."""

    def __init__(self, out_channels: Sequence[int], features: int, chains: Sequence[str] = ("",)):
        super().__init__()
        for i, c in enumerate(out_channels, start=1):
            setattr(self, f"layer{i}_rn", nn.Conv2d(c, features, 3, 1, 1, bias=False))
        for suffix in chains:
            for i in range(1, 5):
                setattr(self, f"refinenet{i}{suffix}", FeatureFusionBlock(features, has_residual=i != 4))

    def fuse(self, maps: Sequence[torch.Tensor], suffix: str = "", rn=None):
        """Top-down fusion of the four projected maps; returns the finest map (and the adapted maps)."""
        rn = rn or [getattr(self, f"layer{i}_rn")(m) for i, m in enumerate(maps, start=1)]
        r = [getattr(self, f"refinenet{i}{suffix}") for i in range(1, 5)]
        out = r[3](rn[3], size=rn[2].shape[2:])
        out = r[2](out, rn[2], size=rn[1].shape[2:])
        out = r[1](out, rn[1], size=rn[0].shape[2:])
        return r[0](out, rn[0]), rn


class DA3DPT(nn.Module):
    """Shared DPT trunk: token maps → four projected, resized maps (``projects`` + ``resize_layers``)."""

    uv = False

    def __init__(self, dim_in: int, features: int, out_channels: Sequence[int], token_norm: bool):
        super().__init__()
        oc = list(out_channels)
        self.norm = nn.LayerNorm(dim_in) if token_norm else nn.Identity()
        self.projects = nn.ModuleList([nn.Conv2d(dim_in, c, 1, 1, 0) for c in oc])
        self.resize_layers = nn.ModuleList([
            nn.ConvTranspose2d(oc[0], oc[0], kernel_size=4, stride=4, padding=0),
            nn.ConvTranspose2d(oc[1], oc[1], kernel_size=2, stride=2, padding=0),
            nn.Identity(),
            nn.Conv2d(oc[3], oc[3], kernel_size=3, stride=2, padding=1),
        ])
        self.features = features

    def _maps(self, tokens: Sequence[torch.Tensor], gh: int, gw: int) -> list[torch.Tensor]:
        h, w = gh * PATCH_SIZE, gw * PATCH_SIZE
        maps = []
        for i, t in enumerate(tokens):
            t = self.norm(t)
            x = t.permute(0, 2, 1).reshape(t.shape[0], t.shape[-1], gh, gw)
            x = self.projects[i](x)
            if self.uv:
                x = add_uv(x, h, w)
            maps.append(self.resize_layers[i](x))
        return maps


class MonoDPT(DA3DPT):
    """The mono/metric head: ``forward(tokens, gh, gw) -> {"depth": exp, "sky": relu}`` (``B × H × W``)."""

    def __init__(self, dim_in: int, features: int, out_channels: Sequence[int], sky: bool = True,
                 output_dim: int = 1):
        super().__init__(dim_in, features, out_channels, token_norm=False)
        self.scratch = _Scratch(out_channels, features)
        self.scratch.output_conv1 = nn.Conv2d(features, features // 2, 3, 1, 1)
        self.scratch.output_conv2 = _output_conv(features, output_dim)
        if sky:
            self.scratch.sky_output_conv2 = _output_conv(features, 1)
        self.has_sky = sky

    def trunk(self, tokens, gh: int, gw: int) -> torch.Tensor:
        fused, _ = self.scratch.fuse(self._maps(tokens, gh, gw))
        fused = self.scratch.output_conv1(fused)
        return F.interpolate(fused, (gh * PATCH_SIZE, gw * PATCH_SIZE), mode="bilinear", align_corners=True)

    def forward(self, tokens, gh: int, gw: int) -> dict[str, torch.Tensor]:
        feat = self.trunk(tokens, gh, gw)
        out = {"depth": torch.exp(self.scratch.output_conv2(feat)).squeeze(1)}
        if self.has_sky:
            out["sky"] = torch.relu(self.scratch.sky_output_conv2(feat)).squeeze(1)
        return out


class GaussianDPT(MonoDPT):
    """The giant any-view model's 3D-Gaussian head (``gs_head``): a DPT with the UV code and an image
    merger. Only novel-view rendering uses it; depth never does. Built so the giant checkpoint loads
    strictly (its forward is not implemented in dabench)."""

    uv = True

    def __init__(self, dim_in: int, features: int, out_channels: Sequence[int], output_dim: int = 38):
        super().__init__(dim_in, features, out_channels, sky=False, output_dim=output_dim)
        m = features // 2
        self.images_merger = nn.Sequential(nn.Conv2d(3, m // 4, 3, 1, 1), nn.GELU(), nn.Conv2d(m // 4, m // 2, 3, 1, 1),
                                           nn.GELU(), nn.Conv2d(m // 2, m, 3, 1, 1), nn.GELU())

    def forward(self, tokens, gh: int, gw: int):  # pragma: no cover - weights holder
        raise NotImplementedError("dabench does not render 3D Gaussians; gs_head is kept for strict loading")


class DualDPT(DA3DPT):
    """The any-view head: ``forward(tokens, gh, gw) -> {"depth": exp, "confidence": 1 + exp}``.

    The ray branch (``*_aux``: per-pixel ray origin and direction + confidence, for pose from rays) is
    built for strict loading and computed only by :meth:`rays`."""

    uv = True

    def __init__(self, dim_in: int, features: int, out_channels: Sequence[int], output_dim: int = 2,
                 aux_levels: int = 4):
        super().__init__(dim_in, features, out_channels, token_norm=True)
        f = features
        self.scratch = _Scratch(out_channels, f, chains=("", "_aux"))
        self.scratch.output_conv1 = nn.Conv2d(f, f // 2, 3, 1, 1)
        self.scratch.output_conv2 = _output_conv(f, output_dim)
        self.scratch.output_conv1_aux = nn.ModuleList([
            nn.Sequential(nn.Conv2d(f, f // 2, 3, 1, 1), nn.Conv2d(f // 2, f, 3, 1, 1), nn.Conv2d(f, f // 2, 3, 1, 1),
                          nn.Conv2d(f // 2, f, 3, 1, 1), nn.Conv2d(f, f // 2, 3, 1, 1))
            for _ in range(aux_levels)])
        self.scratch.output_conv2_aux = nn.ModuleList([
            nn.Sequential(nn.Conv2d(f // 2, HEAD_HIDDEN, 3, 1, 1), _Permute(0, 2, 3, 1), nn.LayerNorm(HEAD_HIDDEN),
                          _Permute(0, 3, 1, 2), nn.ReLU(True), nn.Conv2d(HEAD_HIDDEN, 7, 1, 1, 0))
            for _ in range(aux_levels)])

    def forward(self, tokens, gh: int, gw: int) -> dict[str, torch.Tensor]:
        h, w = gh * PATCH_SIZE, gw * PATCH_SIZE
        fused, _ = self.scratch.fuse(self._maps(tokens, gh, gw))
        fused = F.interpolate(self.scratch.output_conv1(fused), (h, w), mode="bilinear", align_corners=True)
        logits = self.scratch.output_conv2(add_uv(fused, h, w))
        return {"depth": torch.exp(logits[:, 0]), "confidence": torch.exp(logits[:, -1]) + 1}

    def rays(self, tokens, gh: int, gw: int) -> tuple[torch.Tensor, torch.Tensor]:
        """The ray branch: ``(B × 6 × H' × W'`` rays, ``B × H' × W'`` confidence) at the finest fused level."""
        maps = self._maps(tokens, gh, gw)
        _, rn = self.scratch.fuse(maps)
        last, _ = self.scratch.fuse(maps, "_aux", rn=rn)
        last = self.scratch.output_conv1_aux[-1](last)
        logits = self.scratch.output_conv2_aux[-1](add_uv(last, gh * PATCH_SIZE, gw * PATCH_SIZE))
        return logits[:, :-1], torch.exp(logits[:, -1]) + 1


class _Permute(nn.Module):
    """``x.permute(*dims)`` as a module (the ray branch's channels-last LayerNorm sits between two)."""

    def __init__(self, *dims: int):
        super().__init__()
        self.dims = dims

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.permute(*self.dims)
