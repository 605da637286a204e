"""`dabench finetune metric`: fine-tune a relative Depth Anything model into a metric-depth one.

Flow: the typed config (``dabench.finetune.metric_config``: ``dabench/configs/heads/metric/{head}_{dataset}.py``
on ``_base_/``, + ``_base_/tiny.py`` for ``--preset tiny`` + ``--cfg-option`` overrides, merged by mmengine,
built once into ``FinetuneMetricConfig``)
-> checks (init checkpoint, dataset card, depth range; all before any training step) -> the
relative model from ``--init`` (or a seeded random one, ``random_init``) wrapped with a metric head (``dabench.finetune.metric_heads``) ->
``dabench.train.engine.Trainer`` (AdamW groups, OneCycle/poly, bf16 on CUDA, DDP under torchrun,
grad clip, exact resume, TensorBoard) with the SILog loss -> ``OUT/final.safetensors`` (metadata:
relative arch, head ``metric_zoe``/``metric_simple``, head config) registered in
``checkpoints_dir()`` -> evaluation of the held-out split (``dabench.finetune.metric_eval``, through
``dabench.eval.runner`` at the training size) so the records land in the results store.
"""
from __future__ import annotations

import math
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from dabench.errors import CheckpointError, ConfigError, MissingFileError
from dabench.finetune.metric_config import HEADS, FinetuneMetricConfig, load_config, resolve_config
from dabench.finetune.metric_heads import HEAD_NAMES, INIT_PARTS, wrap_relative_model

MAX_WARMUP_FRACTION = 0.1  # of the optimiser steps; see effective_warmup


# ---------------------------------------------------------------------------------------------
# loss
# ---------------------------------------------------------------------------------------------
def silog_loss(pred: torch.Tensor, target: torch.Tensor, valid: torch.Tensor, lambd: float = 0.85,
               scale: float = 10.0, eps: float = 1e-7) -> torch.Tensor:
    """Scale-invariant log loss over all valid pixels of the batch (pooled), depths in metres.

    ``scale * sqrt(mean(g^2) - lambd * mean(g)^2)`` with ``g = log(pred) - log(target)``.
    ZoeDepth (DA V1): lambd 0.85, scale 10 (its ``10 sqrt(var(g) + 0.15 mean(g)^2)``, with the
    population variance); DA V2: lambd 0.5, scale 1. No valid pixel -> a zero loss that keeps the graph.
    """
    pred = pred.float()
    target = target.float()
    if pred.shape != target.shape:
        raise ValueError(f"silog_loss: prediction {tuple(pred.shape)} and target {tuple(target.shape)} differ")
    valid = valid.bool()
    if not bool(valid.any()):
        return pred.sum() * 0.0
    g = torch.log(pred[valid] + eps) - torch.log(target[valid] + eps)
    d = (g * g).mean() - lambd * g.mean() ** 2
    return scale * torch.sqrt(d.clamp_min(1e-12))


LOSSES = {"silog": silog_loss}


# ---------------------------------------------------------------------------------------------
# the relative model from --init
# ---------------------------------------------------------------------------------------------
def check_relative_arch(arch: str, what: str = "--arch") -> str:
    """``arch`` must be a registered Depth Anything (relative) architecture."""
    from dabench.models import MODELS, is_baseline

    MODELS.check(arch)
    if is_baseline(arch) or MODELS.meta(arch).get("family") != "depth_anything":
        raise ConfigError(f"{what} {arch!r} is not a Depth Anything model")
    return arch


def resolve_init_arch(init: str | os.PathLike, arch: str | None = None) -> str:
    """The registered relative architecture of an ``--init`` checkpoint (metadata, ``--arch`` or the weights)."""
    from dabench.models import MODELS
    from dabench.models import checkpoint as ckpt

    path = Path(init)
    if not path.is_file():
        raise MissingFileError(f"--init checkpoint {path} does not exist")
    meta = ckpt.read_metadata(path)
    meta_arch = meta.get(ckpt.META_ARCH)
    head = meta.get(ckpt.META_HEAD, ckpt.RELATIVE_HEAD)
    if head != ckpt.RELATIVE_HEAD:
        raise CheckpointError(f"--init {path} is a {head!r} checkpoint; metric fine-tuning starts from a relative-depth "
                              "checkpoint (official .pth or dabench train's final.safetensors)")
    if arch is not None:
        check_relative_arch(arch)
        if meta_arch and meta_arch != arch:
            raise CheckpointError(f"--init {path} was written for {meta_arch!r}, not --arch {arch!r}")
        return arch
    if meta_arch:
        if meta_arch not in MODELS or MODELS.meta(meta_arch).get("family") != "depth_anything":
            raise CheckpointError(f"--init {path} names {meta_arch!r}, which is not a Depth Anything model")
        return meta_arch
    sd = ckpt.to_dabench_keys(ckpt.read_shapes(path))  # shapes only: no tensor data is read to name the arch
    matches = ckpt._matching_archs(sd)
    if not matches:
        raise CheckpointError(f"--init {path} is not a Depth Anything checkpoint: it holds {ckpt.describe_state_dict(sd)}")
    if len(matches) > 1:  # V1 and V2 share shapes; the official file names say which
        version = 2 if re.search(r"v2", path.name, re.I) else 1
        matches = [m for m in matches if m.startswith(f"da{version}_")] or matches
    if len(matches) != 1:
        raise CheckpointError(f"--init {path} fits several architectures ({', '.join(matches)}); pass --arch")
    return matches[0]


def load_relative_model(init: str | os.PathLike, arch: str | None = None, parts: Sequence[str] = INIT_PARTS
                        ) -> tuple[str, nn.Module]:
    """Build the relative model of ``--init`` (strict load), re-initialising the parts not in ``parts``."""
    from dabench.models import create_model

    arch = resolve_init_arch(init, arch)
    base = create_model(arch, checkpoint=init)
    if "depth_head" not in parts:
        fresh = create_model(arch)
        base.depth_head.load_state_dict(fresh.depth_head.state_dict())
    return arch, base


def random_relative_model(arch: str, seed: int) -> nn.Module:
    """``--random-init``: the relative model ``arch`` with a seeded RANDOM init (tests the pipeline,
    not the transfer of Depth Anything features)."""
    from dabench.models import create_model

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(int(seed))
        return create_model(check_relative_arch(arch))


# ---------------------------------------------------------------------------------------------
# data
# ---------------------------------------------------------------------------------------------
def _kb_crop(arr: np.ndarray) -> np.ndarray:
    from dabench.data.crops import kb_crop

    return kb_crop(arr)


def preprocess_sample(sample: dict, input_size: tuple[int, int], train_crop: str = "none") -> dict:
    """Sample dict -> tensors: image normalised and resized to ``input_size`` (3×H×W, cubic), depth
    (metres) and valid mask at their own resolution."""
    import cv2

    image, depth, valid = sample["image"], sample["depth"], sample["valid"]
    if train_crop == "kb":
        image, depth, valid = _kb_crop(image), _kb_crop(depth), _kb_crop(valid)
    h, w = input_size
    img = cv2.resize(np.ascontiguousarray(image), (w, h), interpolation=cv2.INTER_CUBIC).astype(np.float32) / 255.0
    from dabench.models.depth_anything import default_data_config  # the relative model's mean/std

    cfg = default_data_config()
    img = (img - np.asarray(cfg.mean, np.float32)) / np.asarray(cfg.std, np.float32)
    return {"image": torch.from_numpy(np.ascontiguousarray(img.transpose(2, 0, 1))),
            "depth": torch.from_numpy(np.ascontiguousarray(depth, dtype=np.float32)),
            "valid": torch.from_numpy(np.ascontiguousarray(valid, dtype=bool))}


def collate(items: list[dict], input_size: tuple[int, int], flips: Sequence[bool] = ()) -> dict:
    """Stack preprocessed samples. Ground truth keeps its resolution when all maps agree, else is
    resized (nearest) to ``input_size``. ``flips[i]`` mirrors sample i horizontally."""
    shapes = {tuple(it["depth"].shape) for it in items}
    out = {"image": [], "depth": [], "valid": []}
    for i, it in enumerate(items):
        img, depth, valid = it["image"], it["depth"], it["valid"]
        if len(shapes) > 1:
            depth = F.interpolate(depth[None, None], size=input_size, mode="nearest")[0, 0]
            valid = F.interpolate(valid[None, None].float(), size=input_size, mode="nearest")[0, 0] > 0.5
        if i < len(flips) and flips[i]:
            img, depth, valid = img.flip(-1), depth.flip(-1), valid.flip(-1)
        out["image"].append(img)
        out["depth"].append(depth)
        out["valid"].append(valid)
    return {k: torch.stack(v) for k, v in out.items()}


# ---------------------------------------------------------------------------------------------
# training
# ---------------------------------------------------------------------------------------------
@dataclass
class FinetuneResult:
    out_dir: Path
    checkpoint: Path
    arch: str
    head: str
    config: FinetuneMetricConfig
    metrics: dict = field(default_factory=dict)
    records: list = field(default_factory=list)
    registered: Path | None = None
    train_skipped_missing: int = 0
    warmup_steps: int = 0


def _param_groups(model, cfg: FinetuneMetricConfig) -> list[dict]:
    opt = cfg.optimizer
    groups = []
    for name, params in model.param_groups().items():
        if params:
            groups.append({"params": params, "lr": opt.lr * getattr(opt.lr_mult, name), "name": name})
    return groups


def run_name_for(arch: str, head: str, dataset: str, preset: str) -> str:
    return f"{arch}_metric-{head}_{dataset}" + ("_tiny" if preset == "tiny" else "")


def effective_warmup(warmup_steps: int, steps: int) -> int:
    """Linear warm-up steps actually used: at most ``MAX_WARMUP_FRACTION`` of the run (so a short
    ``--iters`` run of a recipe with a long warm-up still reaches its base rate and decays), and none
    when that leaves fewer than 2 steps (a 1-step warm-up is just the base rate)."""
    w = min(int(warmup_steps), int(MAX_WARMUP_FRACTION * int(steps)))
    return w if w >= 2 else 0


@dataclass(frozen=True)
class Prepared:
    """What ``prepare`` checked: the resolved typed config, the relative architecture, the card."""

    cfg: FinetuneMetricConfig
    arch: str
    card: dict


def prepare(dataset: str, head: str, init: str | os.PathLike | None, *, preset: str = "paper",
            arch: str | None = None, config_file: str | os.PathLike | None = None, overrides: dict | None = None,
            data_root: str | os.PathLike | None = None, random_init: bool = False) -> Prepared:
    """Every check that must pass before training (and before an output folder is claimed): config,
    card, range, ``--init`` (or ``random_init`` with an architecture: ``--arch`` or config key
    ``arch``)."""
    from dabench.data.cards import load_card, resolve_split

    if head not in HEADS:
        raise ConfigError(f"unknown metric head {head!r}; valid heads: {', '.join(HEADS)}")
    if init is not None and random_init:
        raise ConfigError("--init and --random-init are exclusive")
    if init is None and not random_init:
        raise ConfigError("pass --init CKPT (official Depth Anything .pth or dabench train's final.safetensors), "
                          "or --random-init to fine-tune a randomly initialised relative model")
    cfg = load_config(dataset, head, preset, config_file, overrides)
    card = load_card(dataset)
    if card.get("task") != "depth":
        raise ConfigError(f"dataset {dataset!r} is a {card.get('task')} dataset; metric fine-tuning needs depth")
    cfg = resolve_config(cfg, card)
    for key in ("train_split", "eval_split"):
        try:
            resolve_split(card, getattr(cfg.data, key))
        except ConfigError as e:
            raise ConfigError(f"data.{key}: {e}" + (" (metric fine-tuning trains on it)" if key == "train_split" else "")
                              ) from None
    if random_init:
        arch = arch or cfg.arch
        if arch is None:
            raise ConfigError("--random-init needs an architecture: pass --arch (e.g. da2_test) or set config key 'arch'")
        arch = check_relative_arch(arch)
    else:
        arch = resolve_init_arch(init, arch)
    return Prepared(cfg=cfg, arch=arch, card=card)


def finetune_metric(dataset: str, head: str, init: str | os.PathLike | None, out_dir: str | os.PathLike, *,
                    preset: str = "paper", arch: str | None = None, config_file: str | os.PathLike | None = None,
                    overrides: dict | None = None, data_root: str | os.PathLike | None = None, resume: bool = False,
                    device: str | None = None, evaluate: bool = True, results_dir: str | os.PathLike | None = None,
                    run_name: str | None = None, progress: bool = True, skip_missing: bool = False,
                    random_init: bool = False) -> FinetuneResult:
    """Fine-tune ``--init`` (or, ``random_init``, a seeded random relative model) into a metric model
    on ``dataset``; write ``out_dir/final.safetensors``, register it, and (``evaluate``) score the
    held-out split into the results store at the training input size. ``skip_missing``: split
    entries whose files are missing are skipped and counted (training: ``config.json`` and the
    record's ``config.train_skipped_missing``; evaluation: ``samples.skipped_missing``) instead of
    stopping the run."""
    from dabench.data import build_dataset
    from dabench.train.checkpoint import latest_checkpoint
    from dabench.train.distributed import init_distributed
    from dabench.train.engine import FinalWeights, TrainConfig, Trainer
    from dabench.train.loader import EpochSampler, LoaderConfig

    prep = prepare(dataset, head, init, preset=preset, arch=arch, config_file=config_file, overrides=overrides,
                   data_root=data_root, random_init=random_init)
    cfg, arch = prep.cfg, prep.arch
    m, d, t, sched = cfg.model, cfg.data, cfg.train, cfg.schedule
    out_dir = Path(out_dir)
    final_path = out_dir / "final.safetensors"
    if not resume and latest_checkpoint(out_dir) is not None:
        raise ConfigError(f"{out_dir} already holds a run's checkpoints; pass --resume to continue it, or choose "
                          "another --out")
    dist_ = init_distributed(device)

    train_ds = build_dataset(dataset, split=d.train_split, data_root=data_root, limit=d.train_limit,
                             skip_missing=skip_missing)
    train_missing = int(getattr(train_ds, "skipped_missing", 0) or 0)
    if len(train_ds) == 0:
        raise ConfigError(f"dataset {dataset!r} split {d.train_split!r} has no samples")
    if random_init:
        import sys

        print(f"WARNING: --random-init: the {arch} relative model starts from RANDOM weights; this measures the "
              "head and the schedule, not the transfer of Depth Anything features.", file=sys.stderr)
        base = random_relative_model(arch, t.seed)
    else:
        _, base = load_relative_model(init, arch, m.init_parts)
    model = wrap_relative_model(base, m)

    input_size = tuple(d.input_size)
    model.input_size = min(input_size)  # native inference size, saved in the checkpoint metadata
    bs = t.batch_size
    steps = sched.steps
    if steps is None:
        steps = max(1, math.ceil(sched.epochs * len(train_ds) / (bs * dist_.world_size)))
    min_d, max_d = m.min_depth, m.max_depth
    sampler = EpochSampler(len(train_ds), bs, seed=t.seed, rank=dist_.rank, world_size=dist_.world_size)
    hflip, train_crop = d.hflip, d.train_crop
    loss_fn = LOSSES[cfg.loss.type]
    loss_kw = {"lambd": cfg.loss.lambd, "scale": cfg.loss.scale}

    cache: dict[int, dict] | None = {} if d.cache else None

    def load(i: int) -> dict:
        if cache is not None and i in cache:
            return cache[i]
        item = preprocess_sample(train_ds[i], input_size, train_crop)
        if cache is not None:
            cache[i] = item
        return item

    def batch_fn(step: int, gen: torch.Generator) -> dict:
        idx = sampler.indices(step)
        items = [load(i) for i in idx]
        flips = (torch.rand(len(items), generator=gen) < 0.5).tolist() if hflip else []
        return collate(items, input_size, flips)

    def step_fn(net: nn.Module, batch: dict, ctx) -> dict:
        pred = net(batch["image"]).float()
        depth, valid = batch["depth"], batch["valid"]
        if pred.shape[-2:] != depth.shape[-2:]:
            pred = F.interpolate(pred[:, None], size=depth.shape[-2:], mode="bilinear", align_corners=True)[:, 0]
        valid = valid & (depth >= min_d) & (depth <= max_d)
        loss = loss_fn(pred, depth, valid, **loss_kw)
        return {"loss": loss}

    warmup = effective_warmup(sched.warmup_steps, int(steps))
    head_name = HEAD_NAMES[m.head]
    run_name = run_name or run_name_for(arch, m.head, dataset, preset)
    from dabench.safety import registered_checkpoint_path

    registered_checkpoint_path(run_name)  # a --name leaving the checkpoints folder fails before training
    train_cfg = TrainConfig(
        steps=int(steps), checkpoint_every=t.checkpoint_every, keep_checkpoints=t.keep_checkpoints,
        log_every=t.log_every, amp=t.amp, schedule=sched.type, warmup_steps=warmup, poly_power=sched.poly_power,
        onecycle_pct_start=sched.pct_start, onecycle_div_factor=sched.div_factor,
        onecycle_final_div_factor=sched.final_div_factor, weight_decay=cfg.optimizer.weight_decay,
        betas=cfg.optimizer.betas, grad_clip=t.grad_clip, seed=t.seed, samples_per_step=bs, device=device,
        progress=progress, desc=f"finetune-metric-{m.head}", loader=LoaderConfig(num_workers=d.num_workers))
    plain = cfg.to_dict()
    head_cfg = model.config  # the resolved head config (a plain dict), as the checkpoint stores it
    fingerprint = {"arch": arch, "head": head_name, "dataset": dataset, "preset": preset,
                   **({"random_init": True} if random_init else {}),
                   "config": {**{k: v for k, v in plain.items() if k not in ("source", "evaluation", "arch")},
                              "model": head_cfg}}
    trainer = Trainer(model, _param_groups(model, cfg), step_fn, batch_fn, train_cfg, out_dir,
                      fingerprint=fingerprint, dist_=dist_,
                      final=FinalWeights(arch=arch, head=head_name, config=head_cfg, register_as=run_name))
    if dist_.is_main:
        from dabench.provenance import atomic_write_json

        out_dir.mkdir(parents=True, exist_ok=True)
        atomic_write_json(out_dir / "config.json", {"dataset": dataset, "head": head_name, "arch": arch,
                                                    "init": None if init is None else str(init),
                                                    "random_init": bool(random_init), "preset": preset,
                                                    "steps": int(steps), "warmup_steps": warmup,
                                                    "train_samples": len(train_ds),
                                                    "train_skipped_missing": train_missing, "config": plain})
    model = trainer.fit(resume=resume)
    result = FinetuneResult(out_dir=out_dir, checkpoint=final_path, arch=arch, head=head_name, config=cfg,
                            registered=registered_checkpoint_path(run_name),
                            train_skipped_missing=train_missing, warmup_steps=warmup)
    if evaluate:  # every rank takes part (the runner shards and reduces under torch.distributed)
        del model, trainer
        ckpt = result.registered if result.registered.is_file() else final_path
        from dabench.finetune.metric_eval import evaluate_checkpoint

        rec = evaluate_checkpoint(ckpt, dataset, cfg, data_root=data_root, results_dir=results_dir,
                                  device=str(dist_.device), show_progress=progress, skip_missing=skip_missing,
                                  train_skipped_missing=train_missing)
        result.records.append(rec)
        result.metrics = rec.get("metrics", {})
    return result
