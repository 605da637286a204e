"""The typed configuration of ``dabench finetune metric``: the head config files
(``dabench/configs/heads/metric/{head}_{dataset}.py`` on ``_base_/``, ``_base_/tiny.py`` merged on
top for ``--preset tiny``, then ``--cfg-option`` overrides, composed by mmengine) built once into the
frozen ``FinetuneMetricConfig`` by ``dabench.typed_config.build``: an unknown key, a wrong type or a
value out of range fails (exit 2, naming the key) before any folder is claimed or any data read.

The loop's cadence/AMP, AdamW and decay settings are the shared sections of
``dabench.train.sections`` (the same ones ``dabench.train.engine.TrainConfig`` and
``dabench train``'s ``runtime`` use); the head section is ``dabench.finetune.metric_heads.
MetricHeadConfig``, the one that also rebuilds a fine-tuned checkpoint.
"""
from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from dabench import configs
from dabench.errors import ConfigError, MissingFileError
from dabench.finetune.metric_heads import HEAD_NAMES, MetricHeadConfig, check_depth_range
from dabench.train.sections import AdamWSection, DecaySection, LoopSection, OneCycleSection, ScheduleName
from dabench.typed_config import (Count, NonNegativeFloat, PositiveFloat, PositiveInt, Probability, build,
                                  check_override_keys, to_dict)

PRESETS = ("paper", "tiny")
HEADS = tuple(HEAD_NAMES)  # ("zoe", "simple")


@dataclass(frozen=True)
class MetricDataSection:
    train_split: str
    eval_split: str
    input_size: tuple[PositiveInt, PositiveInt] | PositiveInt  # network input H x W (one number: square)
    hflip: bool
    train_crop: Literal["none", "kb"] | None  # None: the card's ("kb" for KITTI-cropped cards)
    train_limit: PositiveInt | None
    eval_limit: PositiveInt | None
    cache: bool
    num_workers: Count | None  # DataLoader workers (None: automatic, 0: in the training process)

    def validate_section(self, key: str) -> None:
        from dabench.models.depth_anything import default_data_config

        size = self.input_size if isinstance(self.input_size, tuple) else (self.input_size, self.input_size)
        m = default_data_config().multiple_of  # the Depth Anything data config's (the patch size)
        if any(v % m for v in size):
            raise ConfigError(f"config key '{key}.input_size' must be [H, W], multiples of {m} (pixels), got "
                              f"{list(size)}")
        object.__setattr__(self, "input_size", size)  # always a pair once built


@dataclass(frozen=True)
class LrMult:
    """Learning rate of each parameter group = ``optimizer.lr`` x its multiplier."""

    encoder: NonNegativeFloat
    decoder: NonNegativeFloat
    head: NonNegativeFloat


@dataclass(frozen=True, kw_only=True)
class MetricOptimizerSection(AdamWSection):
    lr: PositiveFloat
    lr_mult: LrMult


@dataclass(frozen=True, kw_only=True)
class MetricScheduleSection(DecaySection, OneCycleSection):
    """``type``: the loop's schedule; ``steps`` (or, when null, ``epochs`` x training images /
    global batch) optimiser steps."""

    type: ScheduleName
    epochs: PositiveFloat | None
    steps: PositiveInt | None

    def validate_section(self, key: str) -> None:
        if self.steps is None and self.epochs is None:
            raise ConfigError(f"config key '{key}' needs steps or epochs (both are null)")


@dataclass(frozen=True)
class LossSection:
    """SILog: ``scale * sqrt(mean(g^2) - lambd * mean(g)^2)``."""

    type: Literal["silog"]
    lambd: Probability
    scale: PositiveFloat


@dataclass(frozen=True, kw_only=True)
class MetricTrainSection(LoopSection):
    batch_size: PositiveInt
    grad_clip: PositiveFloat | None
    seed: Count


@dataclass(frozen=True)
class MetricEvalSection:
    flip_tta: bool
    crop: str | None  # None: the card's evaluation crop
    batch_size: PositiveInt


@dataclass(frozen=True)
class ConfigSource:
    file: str
    preset: str


def _internal(default=None):
    """A field set by dabench, not by a config file (``typed_config.build`` never reads it)."""
    return field(default=default, metadata={"internal": True})


@dataclass(frozen=True)
class FinetuneMetricConfig:
    """A whole metric fine-tuning config; ``arch`` is the relative architecture ``--random-init``
    builds (``--init``'s own otherwise)."""

    model: MetricHeadConfig
    data: MetricDataSection
    optimizer: MetricOptimizerSection
    schedule: MetricScheduleSection
    loss: LossSection
    train: MetricTrainSection
    evaluation: MetricEvalSection
    arch: str | None = None
    source: ConfigSource | None = _internal()

    def to_dict(self) -> dict:
        return to_dict(self)


def heads_dir() -> Path:
    """The shipped metric-head configs (``dabench/configs/heads/metric``)."""
    return configs.shipped_dir("heads/metric")


def config_file_for(head: str, dataset: str) -> Path:
    """``dabench/configs/heads/metric/{head}_{dataset}.py`` if it exists, else the head's recipe ``dabench/configs/heads/metric/_base_/{head}.py``."""
    if head not in HEADS:
        raise ConfigError(f"unknown metric head {head!r}; valid heads: {', '.join(HEADS)}")
    specific = configs.find("heads/metric", f"{head}_{dataset.replace('-', '_')}")
    if specific is not None:
        return specific
    return heads_dir() / "_base_" / f"{head}.py"


def load_config(dataset: str, head: str = "zoe", preset: str = "paper", config_file: str | os.PathLike | None = None,
                overrides: dict | None = None) -> FinetuneMetricConfig:
    """The typed fine-tuning config: the mmengine config file (``_base_`` composition) ->
    ``_base_/tiny.py`` merged on top for ``preset="tiny"`` -> ``overrides`` (dotted keys, as
    ``dabench.overrides.parse_cfg_options`` returns them; each must name a field) -> ``build``."""
    from mmengine.config import Config

    from dabench.overrides import apply_cfg_options
    from dabench.safety import load_config_file

    if preset not in PRESETS:
        raise ConfigError(f"unknown preset {preset!r}; valid presets: {', '.join(PRESETS)}")
    path = Path(config_file) if config_file else config_file_for(head, dataset)
    if not path.is_file():
        raise MissingFileError(f"metric head config {path} does not exist")
    if overrides:
        check_override_keys(FinetuneMetricConfig, overrides, flag="--cfg-option")
    try:
        cfg = load_config_file(path, "metric head config")
        if preset == "tiny":
            cfg.merge_from_dict(Config.fromfile(str(heads_dir() / "_base_" / "tiny.py")).to_dict())
    except (SyntaxError, KeyError, TypeError, ValueError) as e:
        raise ConfigError(f"cannot read metric head config {path}: {e}") from None
    apply_cfg_options(cfg, overrides, str(path))
    d = cfg.to_dict()
    if config_file is None:
        d.setdefault("model", {})["head"] = head
    typed = build(FinetuneMetricConfig, d)
    return dataclasses.replace(typed, source=ConfigSource(file=str(path), preset=preset))


def resolve_config(cfg: FinetuneMetricConfig, card: dict) -> FinetuneMetricConfig:
    """Fill what the dataset card decides (depth range, train-time and evaluation crops) and check
    what depends on it (max > min depth)."""
    from dabench.data.cards import EVAL_CROPS

    name = card.get("name", "?")
    crop = card.get("eval_crop")
    if crop not in EVAL_CROPS:
        raise ConfigError(f"dataset card {name!r}: eval_crop {crop!r} is unknown; valid crops: {', '.join(EVAL_CROPS)}")
    eval_crop = cfg.evaluation.crop or crop
    if eval_crop not in EVAL_CROPS:
        raise ConfigError(f"config key 'evaluation.crop' {eval_crop!r} is unknown; valid crops: {', '.join(EVAL_CROPS)}")
    train_crop = cfg.data.train_crop or ("kb" if crop.startswith("kb") else "none")
    m = cfg.model
    model = dataclasses.replace(m, min_depth=card.get("min_depth") if m.min_depth is None else m.min_depth,
                                max_depth=card.get("max_depth") if m.max_depth is None else m.max_depth)
    model = build(MetricHeadConfig, to_dict(model), "model")  # the card's values are checked as a file's are
    check_depth_range(model)
    return dataclasses.replace(cfg, model=model, data=dataclasses.replace(cfg.data, train_crop=train_crop),
                               evaluation=dataclasses.replace(cfg.evaluation, crop=eval_crop))
