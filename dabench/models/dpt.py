"""The DPT decoder of Depth Anything (V1 and V2), written for dabench.

Module and parameter names follow the official layout (``projects``, ``resize_layers``,
``scratch.layer{1-4}_rn``, ``scratch.refinenet{1-4}``, ``scratch.output_conv{1,2}``) so the
published ``depth_head.*`` weights load strictly. No batch norm, no class-token readout
(``use_clstoken=False`` in every released model); ``refinenet4.resConfUnit1`` exists (and is
stored in the checkpoints) but is never used, as in the official code.
"""
from __future__ import annotations

from typing import Sequence

import torch
import torch.nn.functional as F
from torch import nn

PATCH_SIZE = 14
#: Hidden width of the last convolutions (``head_features_2`` in the official code).
HEAD_HIDDEN = 32


class ResidualConvUnit(nn.Module):
    """ReLU → conv3×3 → ReLU → conv3×3, plus the input. ReLUs are not in place (the input is reused)."""

    def __init__(self, features: int):
        super().__init__()
        self.conv1 = nn.Conv2d(features, features, kernel_size=3, stride=1, padding=1, bias=True)
        self.conv2 = nn.Conv2d(features, features, kernel_size=3, stride=1, padding=1, bias=True)
        self.activation = nn.ReLU(inplace=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.conv2(self.activation(self.conv1(self.activation(x))))
        return out + x


class FeatureFusionBlock(nn.Module):
    """Adds a refined skip input, refines, upsamples (bilinear, align_corners=True), projects 1×1.

    Upsampling goes to ``size`` when given (the next, larger feature map), else doubles.
    ``has_residual=False`` builds no skip unit (Depth Anything 3's deepest block has none).
    """

    def __init__(self, features: int, has_residual: bool = True):
        super().__init__()
        self.out_conv = nn.Conv2d(features, features, kernel_size=1, stride=1, padding=0, bias=True)
        if has_residual:
            self.resConfUnit1 = ResidualConvUnit(features)
        self.resConfUnit2 = ResidualConvUnit(features)

    def forward(self, x: torch.Tensor, skip: torch.Tensor | None = None,
                size: Sequence[int] | None = None) -> torch.Tensor:
        if skip is not None:
            x = x + self.resConfUnit1(skip)
        x = self.resConfUnit2(x)
        if size is None:
            x = F.interpolate(x, scale_factor=2, mode="bilinear", align_corners=True)
        else:
            x = F.interpolate(x, size=tuple(int(s) for s in size), mode="bilinear", align_corners=True)
        return self.out_conv(x)


class DPTHead(nn.Module):
    """DPT decoder: four token maps → one non-negative relative-disparity map at 14× the patch grid.

    ``forward(features, patch_h, patch_w)`` takes the encoder's four ``(patch_tokens, cls_token)``
    pairs and returns ``B×1×(14·patch_h)×(14·patch_w)``.
    """

    def __init__(self, in_channels: int, features: int, out_channels: Sequence[int]):
        super().__init__()
        out_channels = list(out_channels)
        self.in_channels = in_channels
        self.features = features
        self.out_channels = out_channels
        self.projects = nn.ModuleList([nn.Conv2d(in_channels, c, kernel_size=1, stride=1, padding=0)
                                       for c in out_channels])
        self.resize_layers = nn.ModuleList([
            nn.ConvTranspose2d(out_channels[0], out_channels[0], kernel_size=4, stride=4, padding=0),
            nn.ConvTranspose2d(out_channels[1], out_channels[1], kernel_size=2, stride=2, padding=0),
            nn.Identity(),
            nn.Conv2d(out_channels[3], out_channels[3], kernel_size=3, stride=2, padding=1),
        ])
        scratch = nn.Module()
        for i, c in enumerate(out_channels, start=1):
            setattr(scratch, f"layer{i}_rn", nn.Conv2d(c, features, kernel_size=3, stride=1, padding=1, bias=False))
        for i in range(1, 5):
            setattr(scratch, f"refinenet{i}", FeatureFusionBlock(features))
        scratch.output_conv1 = nn.Conv2d(features, features // 2, kernel_size=3, stride=1, padding=1)
        scratch.output_conv2 = nn.Sequential(
            nn.Conv2d(features // 2, HEAD_HIDDEN, kernel_size=3, stride=1, padding=1),
            nn.ReLU(True),
            nn.Conv2d(HEAD_HIDDEN, 1, kernel_size=1, stride=1, padding=0),
            nn.ReLU(True),
            nn.Identity(),
        )
        self.scratch = scratch

    def forward(self, features, patch_h: int, patch_w: int, return_features: bool = False):
        """Decode; with ``return_features=True`` also return a dict of the DPT internals
        (``layer4_rn``, ``path_4`` … ``path_1``, ``out_conv1``) for heads that hook them."""
        layers = []
        for i, feat in enumerate(features):
            tokens = feat[0] if isinstance(feat, (tuple, list)) else feat
            x = tokens.permute(0, 2, 1).reshape(tokens.shape[0], tokens.shape[-1], patch_h, patch_w)
            x = self.resize_layers[i](self.projects[i](x))
            layers.append(x)
        s = self.scratch
        l1, l2, l3, l4 = (s.layer1_rn(layers[0]), s.layer2_rn(layers[1]), s.layer3_rn(layers[2]),
                          s.layer4_rn(layers[3]))
        path_4 = s.refinenet4(l4, size=l3.shape[2:])
        path_3 = s.refinenet3(path_4, l3, size=l2.shape[2:])
        path_2 = s.refinenet2(path_3, l2, size=l1.shape[2:])
        path_1 = s.refinenet1(path_2, l1)
        out_conv1 = s.output_conv1(path_1)
        out = F.interpolate(out_conv1, (int(patch_h * PATCH_SIZE), int(patch_w * PATCH_SIZE)),
                            mode="bilinear", align_corners=True)
        out = s.output_conv2(out)
        if return_features:
            feats = {"layer4_rn": l4, "path_4": path_4, "path_3": path_3, "path_2": path_2,
                     "path_1": path_1, "out_conv1": out_conv1}
            return out, feats
        return out
