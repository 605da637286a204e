"""Weight-free reference predictors. Any useful model must beat them on every dataset.

Both output relative disparity (``output_space = "disparity"``), so they go through the same
alignment as Depth Anything:

- ``constant``: the same disparity (1.0) everywhere. After scale-and-shift alignment this is the
  best constant fit, i.e. a "predict the mean" floor.
- ``horizon_prior``: a flat-ground prior. For a level camera above a ground plane, the ground
  point seen at image row ``y`` below the horizon row ``y_h`` lies at depth ∝ 1 / (y − y_h), so its
  disparity grows linearly from 0 at the horizon to its maximum at the bottom row. Rows at or above
  the horizon (``horizon`` = 0.5 of the height by default) get a small floor disparity
  (``floor`` = 0.01, i.e. far away). The map is constant along each row.
"""
from __future__ import annotations

import torch
from torch import nn

from dabench.errors import ConfigError
from dabench.models._registry import register_model
from dabench.models.depth_anything import default_data_config

FAMILY = "baseline"
OUTPUT_SPACE = "disparity"
IS_METRIC = False
#: The baselines look only at the input's shape; they take Depth Anything's input so that their
#: predictions go through the same resizing as the networks they are compared with.
default_cfgs = {"constant": default_data_config(), "horizon_prior": default_data_config()}


class ConstantDisparity(nn.Module):
    """Predicts ``value`` (disparity) at every pixel: ``B×3×H×W → B×H×W``."""

    output_space = "disparity"

    def __init__(self, value: float = 1.0):
        super().__init__()
        if not value > 0:
            raise ConfigError(f"constant baseline value must be > 0, got {value}")
        self.value = float(value)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, _, h, w = x.shape
        return torch.full((b, h, w), self.value, dtype=x.dtype, device=x.device)


class HorizonPrior(nn.Module):
    """Ground-plane disparity: linear in the row below the horizon, ``floor`` above it."""

    output_space = "disparity"

    def __init__(self, horizon: float = 0.5, floor: float = 0.01):
        super().__init__()
        if not 0.0 <= horizon < 1.0:
            raise ConfigError(f"horizon_prior horizon must be a fraction of the height in [0, 1), got {horizon}")
        if not floor > 0:
            raise ConfigError(f"horizon_prior floor must be > 0, got {floor}")
        self.horizon = float(horizon)
        self.floor = float(floor)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, _, h, w = x.shape
        rows = torch.arange(h, device=x.device, dtype=torch.float32) + 0.5  # pixel centres
        y_h = self.horizon * h
        disp = ((rows - y_h) / (h - y_h)).clamp(min=self.floor)
        return disp.to(x.dtype).view(1, h, 1).expand(b, h, w).contiguous()


@register_model(test=True)
def constant(**kwargs) -> ConstantDisparity:
    """constant disparity (no weights)."""
    return ConstantDisparity(**kwargs)


@register_model(test=True)
def horizon_prior(**kwargs) -> HorizonPrior:
    """flat-ground prior: disparity linear below a mid-image horizon (no weights)."""
    return HorizonPrior(**kwargs)
