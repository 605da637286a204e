"""Metric-depth heads on top of a relative Depth Anything model.

Two heads, as in the Depth Anything papers:

- ``metric_zoe``: the ZoeDepth metric-bins module the V1 paper fine-tuned on NYUv2/KITTI. A seed
  regressor predicts ``n_bins`` depth-bin centres from the DPT bottleneck (``layer4_rn``); four
  attractor stages (16, 8, 4, 1 attractor points) move those centres using the DPT fusion outputs
  ``path_4 .. path_1``; a per-pixel log-binomial distribution over the bins (conditioned on the DPT
  output features and the relative prediction) gives depth = sum_k p_k * centre_k, in metres.
  Bin centres are either unbounded (``softplus``, NYU) or bounded to [min, max] (``normed``, KITTI).
- ``metric_simple``: the V2 metric model: the DPT head's final ReLU becomes a sigmoid and the output
  is multiplied by ``max_depth``. Parameter names equal the relative model's (``pretrained.*``,
  ``depth_head.*``), so an official V2 metric ``.pth`` loads as is.

Maths follow ZoeDepth (Bhat et al. 2023, arXiv 2302.12288) with two documented choices:
the binomial coefficient is exact (``lgamma``) rather than Stirling's approximation, and the
attractor points of the bounded (``normed``) variant are normalised as the paper describes.

``build_metric_model(arch, config)`` is what the models' ``HEADS`` registry calls to rebuild a
metric checkpoint; ``wrap_relative_model(base, config)`` wraps an already-built relative model.
"""
from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Annotated, Any, Literal

import torch
import torch.nn as nn
import torch.nn.functional as F

from dabench.errors import ConfigError
from dabench.typed_config import NonNegativeFloat, PositiveFloat, PositiveInt, Range, build, to_dict

HEAD_NAMES = {"zoe": "metric_zoe", "simple": "metric_simple"}
INIT_PARTS = ("pretrained", "depth_head")


@dataclass(frozen=True)
class MetricHeadConfig:
    """A metric head's configuration (the ``model`` section of a fine-tuning config, and the
    ``config`` stored in a fine-tuned checkpoint's metadata). ``min_depth`` / ``max_depth``: metres
    (None in a config file: the dataset card's range). The bins settings default to the ZoeDepth
    config Depth Anything used (metric_depth/zoedepth/models/zoedepth/config_zoedepth.json); the
    simple head has none. ``init_parts``: which parts of the ``--init`` relative checkpoint load."""

    head: Literal["zoe", "simple"] = "zoe"
    min_depth: NonNegativeFloat | None = None
    max_depth: PositiveFloat | None = None
    n_bins: Annotated[int, Range(ge=2)] = 64
    bin_embedding_dim: PositiveInt = 128
    n_attractors: tuple[PositiveInt, ...] = (16, 8, 4, 1)
    attractor_alpha: PositiveFloat = 1000.0
    attractor_gamma: Annotated[int | float, Range(gt=0)] = 2
    attractor_kind: Literal["mean", "sum"] = "mean"
    attractor_type: Literal["inv", "exp"] = "inv"
    bin_centers_type: Literal["softplus", "normed"] = "softplus"
    min_temp: PositiveFloat = 0.0212
    max_temp: PositiveFloat = 50.0
    seed_mlp_dim: PositiveInt = 256
    mlp_dim: PositiveInt = 128
    init_parts: tuple[Literal["pretrained", "depth_head"], ...] = INIT_PARTS

    def validate_section(self, key: str) -> None:
        if "pretrained" not in self.init_parts:
            raise ConfigError(f"config key '{key}.init_parts' must hold 'pretrained' (and optionally 'depth_head'), "
                              f"got {list(self.init_parts)}")


#: the ZoeDepth bins settings (defaults of ``MetricHeadConfig``; the simple head has none of them)
ZOE_DEFAULTS: dict[str, Any] = {f.name: to_dict(f.default) for f in fields(MetricHeadConfig)
                                if f.name not in ("head", "min_depth", "max_depth", "init_parts")}


# ---------------------------------------------------------------------------------------------
# maths
# ---------------------------------------------------------------------------------------------
def attractor_shift(dx: torch.Tensor, alpha: float, gamma: float, kind: str = "inv") -> torch.Tensor:
    """Shift of a bin centre towards an attractor, ``dx = attractor - centre``.

    ``inv``: dx / (1 + alpha |dx|^gamma);  ``exp``: dx * exp(-alpha |dx|^gamma).
    """
    mag = dx.abs().pow(gamma)
    if kind == "inv":
        return dx / (1.0 + alpha * mag)
    if kind == "exp":
        return dx * torch.exp(-alpha * mag)
    raise ConfigError(f"attractor_type {kind!r} is not one of: inv, exp")


def attract_centres(centres: torch.Tensor, attractors: torch.Tensor, alpha: float, gamma: float,
                    attractor_type: str = "inv", kind: str = "mean") -> torch.Tensor:
    """New bin centres: ``c_k + agg_i shift(a_i - c_k)``.

    centres: B×K×h×w, attractors: B×A×h×w; ``kind`` aggregates over the A attractors (mean | sum).
    Loops over attractors so memory stays at B×K×h×w (the memory-efficient form).
    """
    delta = torch.zeros_like(centres)
    for i in range(attractors.shape[1]):
        delta = delta + attractor_shift(attractors[:, i:i + 1] - centres, alpha, gamma, attractor_type)
    if kind == "mean":
        delta = delta / attractors.shape[1]
    elif kind != "sum":
        raise ConfigError(f"attractor_kind {kind!r} is not one of: mean, sum")
    return centres + delta


def log_binomial_coefficient(n: torch.Tensor, k: torch.Tensor) -> torch.Tensor:
    """log C(n, k) (exact, via lgamma)."""
    return torch.lgamma(n + 1) - torch.lgamma(k + 1) - torch.lgamma(n - k + 1)


def log_binomial_probs(p: torch.Tensor, temperature: torch.Tensor | float, n_bins: int,
                       eps: float = 1e-4) -> torch.Tensor:
    """Per-pixel distribution over ``n_bins`` ordered bins: softmax_k(log Binom(k; K-1, p) / t).

    p: B×h×w in (0, 1) (success probability), temperature: B×1×h×w or a float. Returns B×K×h×w.
    At t = 1 this is exactly the binomial pmf.
    """
    k = torch.arange(n_bins, device=p.device, dtype=p.dtype).view(1, -1, 1, 1)
    n = torch.full_like(k, float(n_bins - 1))
    p = p.unsqueeze(1)
    log_p = torch.log(p.clamp(eps, 1.0))
    log_q = torch.log((1.0 - p).clamp(eps, 1.0))
    logits = log_binomial_coefficient(n, k) + k * log_p + (n - k) * log_q
    return torch.softmax(logits / temperature, dim=1)


def normed_bin_centres(widths_raw: torch.Tensor, min_depth: float, max_depth: float) -> tuple[torch.Tensor, torch.Tensor]:
    """Bounded bins: non-negative raw widths (B×K×h×w) -> (normalised widths, centres in metres).

    Widths are normalised to sum to one and scaled to ``max - min``; edges start at ``min``;
    centres are the midpoints of consecutive edges.
    """
    widths = widths_raw + 1e-3
    widths = widths / widths.sum(dim=1, keepdim=True)
    edges = min_depth + torch.cumsum(F.pad(widths * (max_depth - min_depth), (0, 0, 0, 0, 1, 0)), dim=1)
    centres = 0.5 * (edges[:, :-1] + edges[:, 1:])
    return widths, centres


def _resize(x: torch.Tensor, size) -> torch.Tensor:
    if tuple(x.shape[-2:]) == tuple(size):
        return x
    return F.interpolate(x, size=size, mode="bilinear", align_corners=True)


def _mlp(cin: int, hidden: int, cout: int, act: nn.Module, out_act: nn.Module | None) -> nn.Sequential:
    layers: list[nn.Module] = [nn.Conv2d(cin, hidden, 1), act, nn.Conv2d(hidden, cout, 1)]
    if out_act is not None:
        layers.append(out_act)
    return nn.Sequential(*layers)


# ---------------------------------------------------------------------------------------------
# ZoeDepth-style metric bins head
# ---------------------------------------------------------------------------------------------
class SeedBins(nn.Module):
    """First bin centres from the bottleneck. Returns (bins for the attractors, centres in metres)."""

    def __init__(self, cin: int, n_bins: int, mlp_dim: int, bounded: bool, min_depth: float, max_depth: float):
        super().__init__()
        self.bounded, self.min_depth, self.max_depth = bounded, min_depth, max_depth
        self.net = _mlp(cin, mlp_dim, n_bins, nn.ReLU(inplace=True), nn.ReLU() if bounded else nn.Softplus())

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        raw = self.net(x)
        if not self.bounded:
            return raw, raw
        _, centres = normed_bin_centres(raw, self.min_depth, self.max_depth)
        # the attractors work on centres normalised to [0, 1]
        return (centres - self.min_depth) / (self.max_depth - self.min_depth), centres


class AttractorStage(nn.Module):
    """Predicts attractor points from (features + previous bin embedding) and moves the bin centres."""

    def __init__(self, cin: int, n_attractors: int, mlp_dim: int, bounded: bool, min_depth: float, max_depth: float,
                 alpha: float, gamma: float, attractor_type: str, kind: str):
        super().__init__()
        self.n_attractors, self.bounded = n_attractors, bounded
        self.min_depth, self.max_depth = min_depth, max_depth
        self.alpha, self.gamma, self.attractor_type, self.kind = alpha, gamma, attractor_type, kind
        if bounded:  # two non-negative outputs per attractor, linearly normalised to a point in (0, 1)
            self.net = _mlp(cin, mlp_dim, 2 * n_attractors, nn.ReLU(inplace=True), nn.ReLU())
        else:  # attractor points in metres
            self.net = _mlp(cin, mlp_dim, n_attractors, nn.ReLU(inplace=True), nn.Softplus())

    def forward(self, embedding: torch.Tensor, prev_bins: torch.Tensor, prev_embedding: torch.Tensor
                ) -> tuple[torch.Tensor, torch.Tensor]:
        size = embedding.shape[-2:]
        raw = self.net(embedding + _resize(prev_embedding, size))
        if self.bounded:
            raw = raw + 1e-3
            b, _, h, w = raw.shape
            raw = raw.view(b, self.n_attractors, 2, h, w)
            attractors = raw[:, :, 0] / raw.sum(dim=2)
        else:
            attractors = raw
        bins = attract_centres(_resize(prev_bins, size), attractors, self.alpha, self.gamma,
                               self.attractor_type, self.kind)
        if not self.bounded:
            return bins, bins
        centres = (self.max_depth - self.min_depth) * bins + self.min_depth
        centres = torch.sort(centres, dim=1).values.clamp(self.min_depth, self.max_depth)
        return bins, centres


class ConditionalLogBinomial(nn.Module):
    """Per-pixel (p, t) from [main features, bin embedding] -> log-binomial bin probabilities."""

    def __init__(self, cin: int, cond_dim: int, n_bins: int, min_temp: float, max_temp: float, eps: float = 1e-4):
        super().__init__()
        self.n_bins, self.min_temp, self.max_temp, self.eps = n_bins, min_temp, max_temp, eps
        hidden = (cin + cond_dim) // 2
        self.net = _mlp(cin + cond_dim, hidden, 4, nn.GELU(), nn.Softplus())

    def forward(self, x: torch.Tensor, cond: torch.Tensor) -> torch.Tensor:
        out = self.net(torch.cat([x, cond], dim=1)) + self.eps
        p = out[:, 0] / (out[:, 0] + out[:, 1])
        t = (out[:, 2] / (out[:, 2] + out[:, 3])).unsqueeze(1)
        t = (self.max_temp - self.min_temp) * t + self.min_temp
        return log_binomial_probs(p, t, self.n_bins)


class MetricBinsHead(nn.Module):
    """ZoeDepth metric-bins module on DPT features.

    Inputs: ``bottleneck`` (layer4_rn, C ch), ``blocks`` = [path_4, path_3, path_2, path_1] (C ch each),
    ``last`` = DPT output features (B×32×H×W) and ``relative`` (B×1×H×W relative prediction).
    Output: metric depth B×1×H×W in metres, and the final bin centres.
    """

    def __init__(self, features: int, min_depth: float, max_depth: float, last_channels: int = 32, **cfg: Any):
        super().__init__()
        c = {**ZOE_DEFAULTS, **{k: v for k, v in cfg.items() if k in ZOE_DEFAULTS}}
        if c["bin_centers_type"] not in ("softplus", "normed"):
            raise ConfigError(f"bin_centers_type {c['bin_centers_type']!r} is not one of: softplus, normed")
        bounded = c["bin_centers_type"] == "normed"
        self.min_depth, self.max_depth = float(min_depth), float(max_depth)
        emb = int(c["bin_embedding_dim"])
        self.conv2 = nn.Conv2d(features, features, 1)
        self.seed_bins = SeedBins(features, c["n_bins"], c["seed_mlp_dim"], bounded, self.min_depth, self.max_depth)
        self.seed_projector = _mlp(features, c["mlp_dim"], emb, nn.ReLU(inplace=True), None)
        self.projectors = nn.ModuleList(_mlp(features, c["mlp_dim"], emb, nn.ReLU(inplace=True), None)
                                        for _ in c["n_attractors"])
        self.attractors = nn.ModuleList(
            AttractorStage(emb, int(n), c["mlp_dim"], bounded, self.min_depth, self.max_depth,
                           float(c["attractor_alpha"]), float(c["attractor_gamma"]), c["attractor_type"],
                           c["attractor_kind"])
            for n in c["n_attractors"])
        self.log_binomial = ConditionalLogBinomial(last_channels + 1, emb, c["n_bins"], float(c["min_temp"]),
                                                   float(c["max_temp"]))

    def forward(self, bottleneck: torch.Tensor, blocks: list[torch.Tensor], last: torch.Tensor,
                relative: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        x = self.conv2(bottleneck)
        bins, centres = self.seed_bins(x)
        prev_embedding = self.seed_projector(x)
        embedding = prev_embedding
        for projector, attractor, block in zip(self.projectors, self.attractors, blocks):
            embedding = projector(block)
            bins, centres = attractor(embedding, bins, prev_embedding)
            prev_embedding = embedding
        size = last.shape[-2:]
        probs = self.log_binomial(torch.cat([last, _resize(relative, size)], dim=1), _resize(embedding, size))
        centres = _resize(centres, size)
        return (probs * centres).sum(dim=1, keepdim=True), centres


# ---------------------------------------------------------------------------------------------
# the metric model
# ---------------------------------------------------------------------------------------------
def _dpt_output_tail(depth_head: nn.Module) -> nn.Sequential:
    return depth_head.scratch.output_conv2


class MetricDepthAnything(nn.Module):
    """A relative Depth Anything model turned metric. ``forward(x)`` -> B×H×W depth in metres.

    Holds the relative model's ``pretrained`` (ViT) and ``depth_head`` (DPT) under the same names,
    plus ``metric_head`` for the ZoeDepth variant.
    """

    output_space = "depth"
    is_metric = True  # metres (dabench.models contract)
    input_size = 518  # native inference size; set from the checkpoint's dabench.input_size when present

    def __init__(self, base: nn.Module, config: dict):
        super().__init__()
        config = resolve_head_config(config)
        self.config = config
        self.head_kind = config["head"]
        self.min_depth, self.max_depth = float(config["min_depth"]), float(config["max_depth"])
        self.pretrained = base.pretrained
        self.depth_head = base.depth_head
        self.intermediate_layer_idx = getattr(base, "intermediate_layer_idx", None)
        # the base's own forward_features reads base.pretrained, which is this module's pretrained;
        # keep the base out of the module tree so parameters are not listed twice.
        object.__setattr__(self, "_base", base)
        tail = _dpt_output_tail(self.depth_head)
        if self.head_kind == "zoe":
            features = self.depth_head.scratch.output_conv1.in_channels
            last_channels = tail[0].out_channels
            zoe_cfg = {k: v for k, v in config.items() if k in ZOE_DEFAULTS}
            self.metric_head = MetricBinsHead(features, self.min_depth, self.max_depth, last_channels, **zoe_cfg)
        elif self.head_kind == "simple":
            self.metric_head = None
        for name in ("encoder", "version", "data_config"):  # data_config: the model contract's preprocessing
            if hasattr(base, name):
                setattr(self, name, getattr(base, name))

    def forward_features(self, x: torch.Tensor):
        return self._base.forward_features(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h, w = x.shape[-2:]
        patch = self._base.patch_size  # the relative model's (Depth Anything: 14)
        patch_h, patch_w = h // patch, w // patch
        features = self.forward_features(x)
        _, feats = self.depth_head(features, patch_h, patch_w, return_features=True)
        tail = _dpt_output_tail(self.depth_head)
        # DPT output path, re-run from output_conv1 so both the 32-ch features and the logit are at hand
        y = F.interpolate(feats["out_conv1"], (patch_h * patch, patch_w * patch), mode="bilinear", align_corners=True)
        last = tail[1](tail[0](y))
        # metres need float32: under bf16 autocast, sigmoid x 80 m or a temperature-0.02 softmax over bins
        # would be quantised to tenths of a metre. The layers below are cheap next to the encoder.
        with torch.autocast(device_type=x.device.type, enabled=False):
            last = last.float()
            logit = tail[2](last)
            if self.head_kind == "simple":
                depth = torch.sigmoid(logit) * self.max_depth
            else:
                relative = F.relu(logit)
                blocks = [feats[k].float() for k in ("path_4", "path_3", "path_2", "path_1")]
                depth, _ = self.metric_head(feats["layer4_rn"].float(), blocks, last, relative)
        if depth.shape[-2:] != (h, w):
            depth = F.interpolate(depth, (h, w), mode="bilinear", align_corners=True)
        return depth[:, 0]

    def param_groups(self) -> dict[str, list[nn.Parameter]]:
        """Parameters split as encoder (ViT), decoder (DPT) and head (new metric layers)."""
        return {
            "encoder": [p for p in self.pretrained.parameters() if p.requires_grad],
            "decoder": [p for p in self.depth_head.parameters() if p.requires_grad],
            "head": [p for p in self.metric_head.parameters() if p.requires_grad] if self.metric_head is not None else [],
        }


def check_depth_range(config: MetricHeadConfig) -> None:
    """A head needs its range in metres: both ends given, ``max_depth > min_depth``."""
    for key in ("min_depth", "max_depth"):
        if getattr(config, key) is None:
            raise ConfigError(f"metric head config needs {key} (metres)")
    if config.max_depth <= config.min_depth:
        raise ConfigError(f"max_depth ({config.max_depth}) must be greater than min_depth ({config.min_depth})")


def resolve_head_config(config: dict | MetricHeadConfig) -> dict:
    """A head config (a mapping, e.g. a checkpoint's metadata, or a ``MetricHeadConfig``) checked by
    the typed section and returned as a plain dict: ``head`` (zoe | simple; ``metric_zoe`` is read
    as ``zoe``), ``min_depth``, ``max_depth`` (metres), the bins settings of the zoe head."""
    if isinstance(config, MetricHeadConfig):
        typed = config
    else:
        if not isinstance(config, dict):
            raise ConfigError(f"metric head config must be a mapping, got {type(config).__name__}")
        c = dict(config)
        head = c.get("head")
        if isinstance(head, str) and head in HEAD_NAMES.values():
            c["head"] = head.replace("metric_", "")
        elif head not in HEAD_NAMES:
            raise ConfigError(f"metric head {head!r} is not one of: {', '.join(HEAD_NAMES)}")
        typed = build(MetricHeadConfig, c, "model")
    check_depth_range(typed)
    c = to_dict(typed)
    if typed.head != "zoe":  # the simple head has no bins: drop the zoe-only keys a shared base config carries
        for k in ZOE_DEFAULTS:
            c.pop(k, None)
    return c


def wrap_relative_model(base: nn.Module, config: dict) -> MetricDepthAnything:
    """Turn an already-built relative Depth Anything module into a metric one (new head layers random)."""
    missing = [n for n in ("pretrained", "depth_head", "forward_features") if not hasattr(base, n)]
    if missing:
        raise ConfigError(f"{type(base).__name__} is not a Depth Anything model (missing {', '.join(missing)}); "
                          "a metric head needs the ViT encoder and the DPT decoder")
    return MetricDepthAnything(base, config)


def build_metric_model(arch: str, config: dict) -> MetricDepthAnything:
    """Build a metric model for relative architecture ``arch`` (e.g. ``da2_vits14``) with random weights.

    Used by the models' ``HEADS`` registry (heads ``metric_zoe`` and ``metric_simple``) to rebuild a
    fine-tuned checkpoint before its weights are loaded.
    """
    from dabench.models import create_model

    return wrap_relative_model(create_model(arch), config)
