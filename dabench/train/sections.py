"""Typed sections that training (``dabench train``), metric fine-tuning (``dabench finetune
metric``) and the loop itself (``dabench.train.engine.TrainConfig``) share, so each default is
stated once. Built and checked by ``dabench.typed_config.build``; no torch import here."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from dabench.typed_config import Count, NonNegativeFloat, PositiveFloat, PositiveInt, Probability

Amp = Literal["auto", "bf16", "none"]
#: learning-rate schedules of the loop (``dabench.train.engine.build_scheduler``)
ScheduleName = Literal["linear", "poly", "cosine", "constant", "onecycle"]


@dataclass(frozen=True, kw_only=True)
class LoopSection:
    """How the loop checkpoints and logs: ``checkpoint_every`` steps (0: only the last step),
    ``keep_checkpoints`` most recent kept, a log line every ``log_every`` steps, ``amp``: ``auto``
    (bf16 autocast on CUDA, none on CPU), ``bf16`` or ``none``."""

    checkpoint_every: Count = 0
    keep_checkpoints: PositiveInt = 2
    log_every: PositiveInt = 10
    amp: Amp = "auto"


@dataclass(frozen=True, kw_only=True)
class AdamWSection:
    """AdamW's settings besides the learning rates (which live in the parameter groups)."""

    weight_decay: NonNegativeFloat = 0.01
    betas: tuple[Probability, Probability] = (0.9, 0.999)


@dataclass(frozen=True, kw_only=True)
class DecaySection:
    """Linear warm-up steps, and the power of the ``poly`` decay ``(1 - t)^poly_power``."""

    warmup_steps: Count = 0
    poly_power: PositiveFloat = 0.9


@dataclass(frozen=True, kw_only=True)
class OneCycleSection:
    """``onecycle`` (as ZoeDepth's, ``torch.optim.lr_scheduler.OneCycleLR``) settings."""

    pct_start: Probability = 0.7
    div_factor: PositiveFloat = 1.0
    final_div_factor: PositiveFloat = 1e4
