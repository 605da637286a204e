"""Training configs: mmengine ``Config`` files composed through ``_base_``, built once into the
typed, frozen ``TrainingConfig`` (``dabench.typed_config.build``: the field types are the schema),
so an unknown key, a wrong type or a value out of range fails before anything runs, naming the key.
Every stage takes the ``TrainingConfig``; ``to_dict`` gives the plain form (dumped ``config.py``,
fingerprints, checkpoint metadata).

Presets live in ``dabench/configs/train/<preset>.py`` (``-`` in a preset name reads as ``_``):
``tiny`` (CPU minutes, synthetic world, ``da2_test``), ``tiny-ll`` / ``tiny-lu`` / ``tiny-strong``
(the Table 9 ablation rows; ``tiny`` is the full "+L_feat" row), ``paper`` (ViT-L at 518),
``paper-vitb``, ``paper-vits``. ``--config FILE`` may ``_base_`` on any of them; ``--set
key=value`` (also spelled ``--cfg-option``) overrides single keys (``--set student.feat_alpha=0.7``).
"""
from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any, Mapping, Sequence

from dabench.errors import ConfigError, MissingFileError, excerpt
from dabench.train.sections import LoopSection, ScheduleName
from dabench.typed_config import (Count, NonNegativeFloat, PositiveFloat, PositiveInt, Probability, Range, build,
                                  check_override_keys, to_dict)

#: data keys that set how batches are made, not what they are
LOADER_KEYS = ("num_workers", "prefetch_factor")


# ---------------------------------------------------------------- the typed sections
@dataclass(frozen=True)
class DatasetSpec:
    """One dataset of a list: a registered dataset name or an image source (``wds:``, ``list:``,
    ``folder:``), its split, the first ``limit`` samples, and ``build_dataset`` keyword arguments."""

    name: str
    split: str | None = None
    limit: Count | None = None
    kwargs: dict = field(default_factory=dict)
    #: folder:/list: sources: read symlinks leading outside (absent from the plain form when false, so
    #: resume fingerprints of earlier runs still match)
    follow_symlinks: bool = field(default=False, metadata={"omit_default": True})


@dataclass(frozen=True)
class ModelSection:
    arch: str
    encoder_weights: str | None
    init_seed: Count


@dataclass(frozen=True)
class DataSection:
    labelled: tuple[DatasetSpec, ...]
    unlabelled: tuple[DatasetSpec, ...]
    data_root: str | None
    crop_size: PositiveInt
    flip: bool
    flip_unlabelled: bool
    cache: bool
    num_workers: Count | None
    prefetch_factor: PositiveInt

    def validate_section(self, key: str) -> None:
        from dabench.models.depth_anything import default_data_config

        multiple = default_data_config().multiple_of  # the Depth Anything data config's (the patch size)
        if self.crop_size % multiple:
            raise ConfigError(f"config key '{key}.crop_size' must be a multiple of {multiple} (the patch size), got "
                              f"{self.crop_size}")


@dataclass(frozen=True)
class StageSection:
    """One training stage's optimiser and schedule (``teacher`` / ``student``)."""

    steps: PositiveInt
    batch_size: PositiveInt
    lr: PositiveFloat
    head_lr_mult: PositiveFloat
    weight_decay: NonNegativeFloat
    schedule: ScheduleName
    warmup_steps: Count
    grad_clip: PositiveFloat | None


@dataclass(frozen=True)
class PseudoLabelSection:
    batch_size: PositiveInt
    shard_size: PositiveInt
    input_size: PositiveInt | None


@dataclass(frozen=True)
class PerturbConfig:
    """Strong perturbation strengths (``dabench.train.perturb``); the defaults follow UniMatch."""

    brightness: NonNegativeFloat = 0.5
    contrast: NonNegativeFloat = 0.5
    saturation: NonNegativeFloat = 0.5
    hue: Annotated[float, Range(ge=0, le=0.5)] = 0.25
    jitter_p: Probability = 0.8
    grayscale_p: Probability = 0.2
    blur_p: Probability = 0.5
    blur_sigma: tuple[PositiveFloat, PositiveFloat] = (0.1, 2.0)
    cutmix_p: Probability = 0.5
    cutmix_area: tuple[Probability, Probability] = (0.02, 0.4)
    cutmix_ratio: tuple[PositiveFloat, PositiveFloat] = (0.3, 1 / 0.3)


@dataclass(frozen=True)
class StudentSection(StageSection):
    unlabelled_ratio: Count
    use_unlabelled: bool
    strong_perturb: bool
    feat_align: bool
    feat_alpha: Probability
    frozen_encoder_weights: str | None
    perturb: PerturbConfig


@dataclass(frozen=True, kw_only=True)
class RuntimeSection(LoopSection):
    device: str | None = None
    progress: bool = True
    tensorboard: bool = True


@dataclass(frozen=True)
class EvaluationSection:
    datasets: tuple[DatasetSpec, ...]
    input_size: PositiveInt | None
    batch_size: PositiveInt


@dataclass(frozen=True)
class TrainingConfig:
    """A whole training config (``dabench/configs/train/_base_/default.py`` lists every key)."""

    preset: str | None
    run_name: str | None
    seed: Count
    model: ModelSection
    data: DataSection
    teacher: StageSection
    pseudo_label: PseudoLabelSection
    student: StudentSection
    runtime: RuntimeSection
    evaluation: EvaluationSection

    def to_dict(self) -> dict:
        return to_dict(self)


def validate(cfg: Mapping) -> TrainingConfig:
    """The typed ``TrainingConfig`` of the plain mapping ``cfg`` (unknown key / wrong type / value out
    of range / missing key -> ``ConfigError`` naming it)."""
    return build(TrainingConfig, cfg)


# ---------------------------------------------------------------- loading
def preset_names() -> list[str]:
    """Training presets, shipped (``dabench/configs/train``) and from ``$DABENCH_CONFIG_PATH``."""
    from dabench import configs

    return sorted(n.replace("_", "-") for n in configs.names("train"))


def preset_path(name: str) -> Path:
    from dabench import configs

    p = None if name.startswith("_") else configs.find("train", name.replace("-", "_"))
    if p is None:
        raise ConfigError(f"unknown preset {excerpt(name)}; valid presets: {', '.join(preset_names())}")
    return p


def parse_overrides(items: Sequence[str] | None) -> dict[str, Any]:
    """``--set key=value`` items -> ``{"key": value}``, parsed as ``--cfg-option`` is
    (``dabench.overrides``: JSON, then mmengine's ``DictAction``)."""
    from dabench.overrides import parse_cfg_options

    return parse_cfg_options(items, flag="--set", example="student.feat_alpha=0.7")


def load_config(config: str | os.PathLike | None = None, preset: str | None = None,
                overrides: Mapping[str, Any] | None = None) -> TrainingConfig:
    """Compose a training config: a config file (which may ``_base_`` on presets), else a preset
    (default ``tiny``), then ``overrides`` (``{"student.feat_alpha": 0.7}``); validated once into
    the typed ``TrainingConfig`` that every stage takes."""
    from mmengine.config import Config

    from dabench.safety import load_config_file

    if config is not None and preset is not None:
        raise ConfigError("give either --config or --preset, not both (a config file can _base_ on a preset)")
    if config is not None:
        path = Path(config)
        if not path.is_file():
            raise MissingFileError(f"config file {path} does not exist")
    else:
        preset = preset or "tiny"
        path = preset_path(preset)
    try:
        cfg = load_config_file(path)
    except ConfigError:
        raise
    except Exception as e:  # noqa: BLE001 - mmengine raises many types for a bad file
        raise ConfigError(f"cannot read config {path}: {e}") from e
    d = cfg.to_dict()
    if preset is not None and d.get("preset") is None:
        d["preset"] = preset
    if overrides:
        from dabench.overrides import apply_cfg_options

        check_override_keys(TrainingConfig, overrides, flag="--cfg-option/--set")
        d = apply_cfg_options(Config(d), overrides, str(path), flag="--cfg-option/--set").to_dict()
    return validate(d)


def dump_config(cfg: TrainingConfig, path: str | os.PathLike) -> None:
    """Write ``cfg`` as an mmengine-readable ``.py`` config (atomic)."""
    from mmengine.config import Config

    from dabench.provenance import atomic_write_text

    atomic_write_text(path, Config(to_dict(cfg)).pretty_text)


def stage_fingerprint(cfg: TrainingConfig, stage: str) -> dict:
    """What a resume of ``stage`` must match: the model and the settings that shape its training
    (not checkpoint/log cadence or progress display)."""
    # how batches are produced (worker count, prefetch) does not change them: not part of a resume's match
    data = {k: v for k, v in to_dict(cfg.data).items() if k not in LOADER_KEYS}
    fp = {"model": to_dict(cfg.model), "seed": cfg.seed, "data": data}
    if stage == "teacher":
        fp["teacher"] = to_dict(cfg.teacher)
    elif stage == "student":
        fp["student"] = to_dict(cfg.student)
    return json.loads(json.dumps(fp, default=str))
