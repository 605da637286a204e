"""What the teacher, pseudo-label and student stages share: building the model with its DINOv2
initialisation, the data sources, and the per-step crop/flip augmentation.

Images travel as float ``B×3×H×W`` in [0, 1] until ``normalise`` (ImageNet mean/std) right
before the network, so photometric perturbations act on real colours.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Sequence

import numpy as np
import torch
import torch.nn.functional as F

from dabench.errors import ConfigError, DataError

if TYPE_CHECKING:
    from dabench.train.config import DatasetSpec, TrainingConfig

log = logging.getLogger("dabench.train")



def normalise(images: torch.Tensor) -> torch.Tensor:
    """[0, 1] RGB B×3×H×W -> network input normalised with Depth Anything's data config (ImageNet mean/std)."""
    from dabench.models.depth_anything import default_data_config

    cfg = default_data_config()
    mean = torch.tensor(cfg.mean).view(1, 3, 1, 1).to(images)
    std = torch.tensor(cfg.std).view(1, 3, 1, 1).to(images)
    return (images - mean) / std


# ---------------------------------------------------------------- model
def encoder_init_note(cfg: TrainingConfig, weights: str | None = None) -> str:
    w = weights if weights is not None else cfg.model.encoder_weights
    return f"weights:{w}" if w else f"random(init_seed={cfg.model.init_seed})"


def build_model(cfg: TrainingConfig, *, encoder_weights: str | None = None, seed_offset: int = 0) -> torch.nn.Module:
    """The registered ``model.arch`` with a deterministic init (``model.init_seed``): the encoder
    from ``encoder_weights`` (default ``model.encoder_weights``) when given, else the seeded
    random init — the stand-in for DINOv2 that every stage shares."""
    from dabench.models import create_model

    arch = cfg.model.arch
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(int(cfg.model.init_seed) + seed_offset)
        model = create_model(arch)
    if not hasattr(model, "pretrained"):
        raise ConfigError(f"model.arch {arch!r} is not a Depth Anything network (no DINOv2 encoder to train)")
    weights = encoder_weights if encoder_weights is not None else cfg.model.encoder_weights
    if weights:
        from dabench.models import load_encoder_weights

        load_encoder_weights(model, weights)
    _positive_output_bias(model)
    model.input_size = int(cfg.data.crop_size)  # native inference size, saved in the checkpoint metadata
    return model


def _positive_output_bias(model: torch.nn.Module, value: float = 1.0) -> None:
    """Start the DPT head's last convolution (the one before the output ReLU) with bias ``value``.

    With PyTorch's default init that bias is tiny and, when the encoder features barely vary
    across pixels (a random-init encoder), the pre-activation is often negative everywhere: the
    output ReLU is then dead, the prediction is all zeros and no gradient flows. A positive bias
    makes the initial prediction positive so the affine-invariant loss can train it."""
    last = None
    for mod in model.depth_head.modules():
        if isinstance(mod, torch.nn.Conv2d) and mod.out_channels == 1:
            last = mod
    if last is not None and last.bias is not None:
        with torch.no_grad():
            last.bias.fill_(value)


def warn_random_encoder(cfg: TrainingConfig, what: str) -> None:
    if not cfg.model.encoder_weights:
        msg = (f"{what}: NO DINOv2 WEIGHTS GIVEN (model.encoder_weights is null): the encoder starts from a "
               f"seeded RANDOM init (init_seed={cfg.model.init_seed}), not DINOv2")
        log.warning(msg)


def param_groups(model: torch.nn.Module, lr: float, head_lr_mult: float) -> list[dict]:
    """AdamW groups: encoder (``pretrained.*``) at ``lr``, everything else (the DPT head) at
    ``lr * head_lr_mult`` (the paper's 10x decoder LR)."""
    enc = [p for n, p in model.named_parameters() if n.startswith("pretrained.")]
    head = [p for n, p in model.named_parameters() if not n.startswith("pretrained.")]
    return [dict(params=enc, lr=lr, name="encoder"), dict(params=head, lr=lr * head_lr_mult, name="head")]


# ---------------------------------------------------------------- data sources
def build_source(spec: DatasetSpec, data_root: str | None = None):
    """One dataset from a config ``DatasetSpec`` (name, split, limit, kwargs): a registered dataset, or
    an image source ``wds:<brace pattern>`` / ``list:<file>`` / ``folder:<dir>``
    (``dabench.data.sources``)."""
    from dabench.data.sources import build_image_source, is_image_source

    name = spec.name
    if is_image_source(name):
        return build_image_source(name, limit=spec.limit, follow_symlinks=spec.follow_symlinks)
    from dabench.data import build_dataset

    return build_dataset(name, split=spec.split, data_root=data_root, limit=spec.limit, **dict(spec.kwargs))


class Sources:
    """Several datasets seen as one indexable sequence (global index -> (dataset, local index)),
    optionally caching samples in memory, already resized so the shorter side is ``short_side``."""

    def __init__(self, specs: Sequence[DatasetSpec], data_root: str | None, what: str, *, short_side: int | None = None,
                 cache: bool = False, keys: Sequence[str] = ("image", "depth", "valid", "sky")):
        if not specs:
            raise ConfigError(f"config key 'data.{what}' lists no datasets: the {what} set is empty")
        self.specs = list(specs)
        self.datasets = [build_source(s, data_root) for s in self.specs]
        self.lengths = [len(d) for d in self.datasets]
        for s, n in zip(self.specs, self.lengths):
            if n == 0:
                raise DataError(f"{what} dataset {s.name!r} (split {s.split!r}) has no samples: "
                                f"the {what} set must not be empty")
        self.offsets = np.cumsum([0] + self.lengths)
        self.short_side, self.cache, self.keys = short_side, cache, tuple(keys)
        self._cache: dict[int, dict] = {}

    def __len__(self) -> int:
        return int(self.offsets[-1])

    def report(self) -> list[dict]:
        """Per dataset: its name and sample count, plus what a ``wds:`` source read (shards, and any
        shard whose tail was cut, with the members read from it)."""
        out = []
        for spec, ds, n in zip(self.specs, self.datasets, self.lengths):
            extra = ds.report() if hasattr(ds, "report") else {}
            out.append({"name": spec.name, "samples": int(n), **{k: v for k, v in extra.items() if k != "source"}})
        return out

    def locate(self, i: int) -> tuple[int, int]:
        d = int(np.searchsorted(self.offsets, i, side="right") - 1)
        return d, int(i - self.offsets[d])

    def raw(self, i: int) -> dict:
        d, j = self.locate(i)
        return self.datasets[d][j]

    def __getitem__(self, i: int) -> dict:
        i = int(i)
        if i in self._cache:
            return self._cache[i]
        s = self.raw(i)
        out = {}
        for k in self.keys:
            if k in s and s[k] is not None:
                out[k] = torch.from_numpy(np.ascontiguousarray(s[k]))
        if "image" not in out:
            raise DataError(f"sample {s.get('name', i)!r} has no image")
        out["image"] = out["image"].permute(2, 0, 1).float().div_(255.0)
        out["name"] = s.get("name", str(i))
        if self.short_side:
            out = resize_short_side(out, self.short_side)
        if self.cache:
            self._cache[i] = out
        return out


def write_data_record(out_dir, **sources: "Sources | None") -> None:
    """``out_dir/data.json``: what each training set read (:meth:`Sources.report`), so a cut shard's
    member counts stay in the run's records."""
    from dabench.provenance import atomic_write_json

    atomic_write_json(Path(out_dir) / "data.json", {k: v.report() for k, v in sources.items() if v is not None})


def resize_short_side(s: dict, short: int) -> dict:
    """Resize so the shorter side is ``short`` pixels: the image bilinearly (antialiased), depth,
    validity and sky nearest (never mixing valid and invalid depths), pseudo-labels bilinearly."""
    h, w = s["image"].shape[-2:]
    scale = short / min(h, w)
    nh, nw = max(short, int(round(h * scale))), max(short, int(round(w * scale)))
    if (nh, nw) == (h, w):
        return s
    out = dict(s)
    out["image"] = F.interpolate(s["image"][None], (nh, nw), mode="bilinear", align_corners=False,
                                 antialias=True)[0].clamp(0, 1)
    for k in ("depth", "valid", "sky"):
        if k in s:
            out[k] = F.interpolate(s[k][None, None].float(), (nh, nw), mode="nearest")[0, 0].to(s[k].dtype)
    if "pseudo" in s:
        out["pseudo"] = F.interpolate(s["pseudo"][None, None], (nh, nw), mode="bilinear", align_corners=False)[0, 0]
    return out


def random_crop_flip(s: dict, crop: int, g: torch.Generator, flip: bool) -> dict:
    """A random ``crop``×``crop`` window (same for every map of the sample) and, when ``flip``, a
    horizontal flip with probability 0.5."""
    h, w = s["image"].shape[-2:]
    if h < crop or w < crop:
        s = resize_short_side(s, crop)
        h, w = s["image"].shape[-2:]
    y = int(torch.randint(0, h - crop + 1, (), generator=g))
    x = int(torch.randint(0, w - crop + 1, (), generator=g))
    do_flip = flip and bool(torch.rand((), generator=g) < 0.5)
    out = {}
    for k, v in s.items():
        if not torch.is_tensor(v):
            continue
        v = v[..., y:y + crop, x:x + crop]
        if do_flip:
            v = v.flip(-1)
        out[k] = v.contiguous()
    return out


def collate(samples: Sequence[dict]) -> dict[str, torch.Tensor]:
    keys = set(samples[0])
    for s in samples[1:]:
        keys &= set(s)
    return {k: torch.stack([s[k] for s in samples]) for k in sorted(keys)}


#: ``sample_generator`` streams: labelled and unlabelled samples draw independent augmentations
LABELLED_STREAM, UNLABELLED_STREAM = 0, 1


def labelled_batch(src: Sources, indices: Sequence[int], crop: int, flip: bool, *, seed: int,
                   positions: Sequence[int]) -> dict:
    """A labelled training batch: ``image`` B×3×c×c in [0, 1], ``disparity`` target and ``mask``
    (valid pixels plus sky at disparity 0). Sample ``indices[j]``'s crop and flip are drawn from
    ``sample_generator(seed, LABELLED_STREAM, positions[j])``."""
    from dabench.train.loader import sample_generator
    from dabench.train.losses import depth_to_disparity

    items = []
    for i, pos in zip(indices, positions):
        s = src[i]
        if "depth" not in s or "valid" not in s:
            raise DataError(f"labelled sample {s.get('name', i)!r} has no depth/valid map")
        c = random_crop_flip(s, crop, sample_generator(seed, LABELLED_STREAM, pos), flip)
        sky = c.get("sky")
        disp, mask = depth_to_disparity(c["depth"][None], c["valid"][None], None if sky is None else sky[None])
        items.append({"image": c["image"], "disparity": disp[0], "mask": mask[0]})
    return collate(items)


@dataclass
class StageResult:
    stage: str
    out_dir: Path
    final: Path | None
    info: dict[str, Any]
