"""The generic, exactly-resumable training loop behind ``dabench train`` and ``dabench finetune``.

One ``Trainer`` runs any stage: it owns the optimiser (AdamW over caller-given parameter groups),
the learning-rate schedule, bf16 autocast on CUDA, DDP under ``torchrun`` (NCCL on GPU, gloo on
CPU), gradient clipping, checkpoints every N steps, exact resume, TensorBoard scalars, a JSONL
log, rich progress (loss and throughput) and the final ``final.safetensors``.

Usage::

    from dabench.train.engine import Trainer, TrainConfig, FinalWeights
    from dabench.train.loader import EpochSampler

    sampler = EpochSampler(len(dataset), batch_size=8, seed=0)      # deterministic data position

    def batch_fn(step, gen):           # the batch this rank trains on at global step `step`
        return collate([augment(dataset[i], gen) for i in sampler.indices(step)])

    def step_fn(model, batch, ctx):    # runs inside autocast (and inside DDP's forward)
        pred = model(batch["image"])
        loss = my_loss(pred.float(), batch["target"])
        return {"loss": loss, "l1": loss.detach()}          # "loss" is back-propagated

    trainer = Trainer(model, [dict(params=enc, lr=5e-6), dict(params=head, lr=5e-5)],
                      step_fn, batch_fn, TrainConfig(steps=1000, checkpoint_every=100),
                      out_dir="runs/x", fingerprint={"arch": "da2_vits14", "lr": 5e-6},
                      final=FinalWeights(arch="da2_vits14", head="relative", config=cfg_dict))
    model = trainer.fit(resume=False)

Contracts that make resume exact (a run killed with SIGKILL and resumed ends with bit-identical
weights to an uninterrupted one):

- ``batch_fn(step, generator)`` must be a pure function of ``step``, the rank and the
  ``generator`` (a ``torch.Generator`` seeded from ``(seed, step, rank)`` for that step), or of
  per-sample generators (``sample_generator(seed, stream, position)``, position from
  ``EpochSampler.positions``): use them for every random augmentation. ``EpochSampler`` gives the
  per-step sample indices. It runs in ``TrainConfig.loader.num_workers`` DataLoader workers
  (``dabench.train.loader``), so the batch must not depend on which process makes it.
- ``step_fn(model, batch, ctx)`` may draw randomness only from ``ctx.generator`` (seeded from
  ``(seed, step, rank)``, separate from the batch generator).
- The model, optimiser, scheduler, global RNG states (torch/CUDA/numpy/python, per rank) and
  the step are saved; weights as safetensors, the rest in ``state.pt`` that loads with
  ``torch.load(weights_only=True)``.
- ``fingerprint`` (any JSON-able dict: arch, config, ...) is stored with each checkpoint; a resume
  whose fingerprint differs raises ``CheckpointError`` listing every differing key.

Out-dir layout: ``checkpoints/step_XXXXXXX/{model.safetensors,state.pt}``,
``checkpoints/latest.json``, ``tb/`` (TensorBoard), ``log.jsonl``, ``train.log``,
``final.safetensors``.
"""
from __future__ import annotations

import contextlib
import json
import logging
import math
import os
import shutil
import time
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

import torch
from torch import nn

from dabench.errors import CheckpointError, ConfigError
from dabench.provenance import atomic_path, atomic_write_json, atomic_write_text
from dabench.train.checkpoint import (LAST_CHECKPOINT, fingerprint_diff, latest_checkpoint, load_weights, rng_state,
                                      save_weights, set_rng_state)
from dabench.train.distributed import DistInfo, all_gather_object, all_reduce_mean, barrier, init_distributed
from dabench.train.loader import LoaderConfig, build_step_loader, step_generator
from dabench.train.sections import AdamWSection, DecaySection, LoopSection, OneCycleSection, ScheduleName

log = logging.getLogger("dabench.train")


# ----------------------------------------------------------------------------- configuration
@dataclass(frozen=True, kw_only=True)
class TrainConfig(LoopSection, AdamWSection, DecaySection):
    """Loop settings (not model/data settings). Learning rates live in the parameter groups.
    Checkpoint/log cadence and ``amp`` (``LoopSection``), AdamW's ``weight_decay``/``betas``
    (``AdamWSection``) and ``warmup_steps``/``poly_power`` (``DecaySection``) are the shared typed
    sections of ``dabench.train.sections``, with their defaults.

    - ``steps``: optimiser steps in total (global, independent of the number of ranks).
    - ``schedule``: ``linear`` (decay to 0, the paper's), ``poly`` (``(1 - t)^poly_power``),
      ``cosine``, ``constant`` or ``onecycle`` (``onecycle_*`` settings, as ZoeDepth's); all after
      ``warmup_steps`` of linear warm-up (not for onecycle).
    - ``samples_per_step``: images per step on one rank, for the throughput figure.
    - ``loader``: the DataLoader settings of ``batch_fn`` (default: in the training process).
    """

    steps: int
    schedule: ScheduleName = "linear"
    onecycle_pct_start: float = OneCycleSection.pct_start
    onecycle_div_factor: float = OneCycleSection.div_factor
    onecycle_final_div_factor: float = OneCycleSection.final_div_factor
    grad_clip: float | None = None
    seed: int = 0
    samples_per_step: int | None = None
    device: str | None = None
    find_unused_parameters: bool = True
    progress: bool = True
    tensorboard: bool = True
    desc: str = "train"
    loader: LoaderConfig = field(default_factory=lambda: LoaderConfig(num_workers=0))

    def __post_init__(self):
        if int(self.steps) < 1:
            raise ConfigError(f"steps must be >= 1, got {self.steps!r}")
        if self.schedule not in _SCHEDULES:
            raise ConfigError(f"schedule {self.schedule!r} is unknown; valid: {', '.join(_SCHEDULES)}")
        if self.amp not in ("auto", "bf16", "none"):
            raise ConfigError(f"amp {self.amp!r} is unknown; valid: auto, bf16, none")


@dataclass
class FinalWeights:
    """How to write ``final.safetensors``: the registered ``arch`` and ``head`` names go into its
    metadata (``dabench.models.save_checkpoint``); ``register_as`` also copies it to
    ``checkpoints_dir()/<register_as>.safetensors`` so ``dabench run`` finds it."""

    arch: str
    head: str = "relative"
    config: dict | None = None
    register_as: str | None = None


@dataclass
class StepContext:
    step: int                       # global step being taken (0-based)
    total_steps: int
    generator: torch.Generator     # seeded from (seed, step, rank): the only randomness step_fn may use
    device: torch.device
    rank: int
    world_size: int
    amp_dtype: torch.dtype | None


# ----------------------------------------------------------------------------- schedules
class _Lambda:
    """LR multiplier as a callable object, so ``LambdaLR.state_dict`` stores its settings."""

    def __init__(self, kind: str, total: int, warmup: int, power: float):
        self.kind, self.total, self.warmup, self.power = kind, int(total), int(warmup), float(power)

    def __call__(self, step: int) -> float:
        if self.warmup > 0 and step < self.warmup:
            return (step + 1) / self.warmup
        span = max(1, self.total - self.warmup)
        t = min(1.0, max(0.0, (step - self.warmup) / span))
        if self.kind == "linear":
            return 1.0 - t
        if self.kind == "poly":
            return (1.0 - t) ** self.power
        if self.kind == "cosine":
            return 0.5 * (1.0 + math.cos(math.pi * t))
        return 1.0


_SCHEDULES = typing.get_args(ScheduleName)


def build_scheduler(optimizer: torch.optim.Optimizer, cfg: TrainConfig):
    if cfg.schedule == "onecycle":
        return torch.optim.lr_scheduler.OneCycleLR(
            optimizer, max_lr=[g["lr"] for g in optimizer.param_groups], total_steps=cfg.steps,
            pct_start=cfg.onecycle_pct_start, div_factor=cfg.onecycle_div_factor,
            final_div_factor=cfg.onecycle_final_div_factor, cycle_momentum=False)
    return torch.optim.lr_scheduler.LambdaLR(
        optimizer, _Lambda(cfg.schedule, cfg.steps, cfg.warmup_steps, cfg.poly_power))


# ----------------------------------------------------------------------------- the loop
class _StepModule(nn.Module):
    """Wraps the model so that DDP sees the whole loss computation as one ``forward``: gradients of
    every parameter used anywhere in ``step_fn`` (encoder features, head) are synchronised."""

    def __init__(self, model: nn.Module, step_fn: Callable):
        super().__init__()
        self.model = model
        self._step_fn = step_fn  # a plain callable, not a submodule (frozen helpers stay out of DDP)

    def forward(self, batch, ctx):
        return self._step_fn(self.model, batch, ctx)


def to_device(obj, device):
    """``obj`` with every tensor in it (nested dicts, lists, tuples) moved to ``device``."""
    if torch.is_tensor(obj):
        return obj.to(device, non_blocking=True)
    if isinstance(obj, dict):
        return {k: to_device(v, device) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return type(obj)(to_device(v, device) for v in obj)
    return obj


class Trainer:
    """Runs ``cfg.steps`` optimiser steps of ``step_fn`` over ``batch_fn``'s batches (see the module
    docstring for the contracts). ``param_groups`` are AdamW groups (``params``, ``lr`` and any
    per-group option); parameters not in a group are not trained. ``fingerprint`` is what a resume
    must match. ``final`` says how to write ``final.safetensors`` (None: not written)."""

    def __init__(self, model: nn.Module, param_groups: Sequence[dict], step_fn: Callable,
                 batch_fn: Callable[[int, torch.Generator], Any], cfg: TrainConfig,
                 out_dir: str | os.PathLike, *, fingerprint: Mapping | None = None,
                 final: FinalWeights | None = None, dist_: DistInfo | None = None,
                 on_checkpoint: Callable[[int], None] | None = None):
        self.cfg = cfg
        self.out_dir = Path(out_dir)
        self.dist = dist_ or init_distributed(cfg.device)
        self.device = self.dist.device
        from mmengine.model import is_model_wrapper

        if is_model_wrapper(model):  # the trainer wraps for DDP itself; it saves the bare model
            model = model.module
        self.model = model.to(self.device)
        self.step_fn, self.batch_fn = step_fn, batch_fn
        self.fingerprint = dict(fingerprint or {})
        self.final = final
        self.on_checkpoint = on_checkpoint
        groups = [dict(g) for g in param_groups]
        for g in groups:
            g["params"] = [p for p in g["params"] if p.requires_grad]
        groups = [g for g in groups if g["params"]]
        if not groups:
            raise ConfigError("no trainable parameters were given to the trainer")
        self.optimizer = torch.optim.AdamW(groups, betas=tuple(cfg.betas), weight_decay=cfg.weight_decay)
        self.scheduler = build_scheduler(self.optimizer, cfg)
        if cfg.amp == "bf16" or (cfg.amp == "auto" and self.device.type == "cuda"):
            self.amp_dtype = torch.bfloat16
        else:
            self.amp_dtype = None
        self.step = 0
        self._ckpt_root = self.out_dir / "checkpoints"

    # -- checkpointing
    def _state(self) -> dict:
        rng_all = all_gather_object(rng_state())  # one entry per rank
        return {"format": "dabench.train_state/1", "step": self.step, "optimizer": self.optimizer.state_dict(),
                "scheduler": self.scheduler.state_dict(), "rng": rng_all,
                "data": {"next_step": self.step, "seed": self.cfg.seed, "world_size": self.dist.world_size},
                "fingerprint": json.dumps(self.fingerprint, sort_keys=True, default=str)}

    def save_checkpoint(self) -> Path:
        state = self._state()  # collective: every rank takes part
        name = f"step_{self.step:07d}"
        final_dir = self._ckpt_root / name
        if self.dist.is_main:
            tmp = self._ckpt_root / f".tmp_{name}"
            shutil.rmtree(tmp, ignore_errors=True)
            tmp.mkdir(parents=True)
            save_weights(self.model, tmp / "model.safetensors", {"dabench.step": str(self.step)})
            torch.save(state, tmp / "state.pt")
            shutil.rmtree(final_dir, ignore_errors=True)
            os.replace(tmp, final_dir)
            atomic_write_json(self._ckpt_root / "latest.json", {"dir": name, "step": self.step})
            atomic_write_text(self._ckpt_root / LAST_CHECKPOINT, name)
            kept = sorted(p for p in self._ckpt_root.glob("step_*") if p.is_dir())
            for old in kept[:-max(1, self.cfg.keep_checkpoints)]:
                shutil.rmtree(old, ignore_errors=True)
            log.info("checkpoint %s", final_dir)
        barrier()
        if self.on_checkpoint is not None:
            self.on_checkpoint(self.step)
        return final_dir

    def load_checkpoint(self, ckpt: Path) -> None:
        from dabench.train.checkpoint import read_checkpoint_files

        state, weights = read_checkpoint_files(ckpt)  # both read before anything is changed
        old_fp = json.loads(state.get("fingerprint", "{}"))
        diffs = fingerprint_diff(old_fp, json.loads(json.dumps(self.fingerprint, sort_keys=True, default=str)))
        if diffs:
            raise CheckpointError(f"cannot resume from {ckpt}: it was made with a different architecture/config: "
                                  + "; ".join(diffs))
        load_weights(self.model, ckpt / "model.safetensors", weights)
        try:
            self.optimizer.load_state_dict(state["optimizer"])
        except (ValueError, KeyError) as e:
            raise CheckpointError(f"cannot resume from {ckpt}: optimizer state does not fit ({e})") from e
        self.scheduler.load_state_dict(state["scheduler"])
        rng = state["rng"]
        if len(rng) == self.dist.world_size:
            set_rng_state(rng[self.dist.rank])
        else:
            log.warning("resuming %s on %d ranks, it was saved on %d: data order and RNG differ from an "
                        "uninterrupted run", ckpt, self.dist.world_size, len(rng))
            set_rng_state(rng[0])
        self.step = int(state["step"])

    # -- the loop
    def _setup_logging(self):
        if not self.dist.is_main:
            return None
        self.out_dir.mkdir(parents=True, exist_ok=True)
        fh = logging.FileHandler(self.out_dir / "train.log")
        fh.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(message)s"))
        log.addHandler(fh)
        if log.level == logging.NOTSET or log.level > logging.INFO:
            log.setLevel(logging.INFO)
        return fh

    def fit(self, resume: bool = False) -> nn.Module:
        """Train to ``cfg.steps`` (continuing from the newest checkpoint when ``resume``) and return
        the trained (unwrapped) model."""
        fh = self._setup_logging()
        try:
            return self._fit(resume)
        finally:
            if fh is not None:
                log.removeHandler(fh)
                fh.close()

    def _fit(self, resume: bool) -> nn.Module:
        cfg = self.cfg
        ckpt = latest_checkpoint(self.out_dir)
        if resume:
            from dabench.train.checkpoint import CorruptCheckpointError, checkpoint_candidates

            candidates = checkpoint_candidates(self.out_dir)
            for cand in candidates:
                try:
                    self.load_checkpoint(cand)
                except CorruptCheckpointError as e:  # e.g. killed while the disk was full: try the previous one
                    log.warning("--resume: %s; falling back to the previous checkpoint", e)
                    continue
                log.info("resumed from %s at step %d", cand, self.step)
                break
            else:
                if candidates:
                    raise CheckpointError(f"--resume: no readable checkpoint in {self._ckpt_root} (tried "
                                          f"{', '.join(p.name for p in candidates)})")
                log.warning("--resume: no checkpoint in %s, starting from step 0", self._ckpt_root)
        elif ckpt is not None:
            raise ConfigError(f"{self.out_dir} already holds a run's checkpoints ({ckpt.name}); pass --resume to "
                              "continue it, or choose another --out")
        final_path = self.out_dir / "final.safetensors"
        if self.step >= cfg.steps and final_path.is_file():
            log.info("%s: already finished (%d steps)", self.out_dir, self.step)
            return self.model

        if self.dist.world_size > 1:
            from torch.nn.parallel import DistributedDataParallel as DDP

            runner = DDP(_StepModule(self.model, self.step_fn),
                         device_ids=[self.device.index] if self.device.type == "cuda" else None,
                         find_unused_parameters=cfg.find_unused_parameters)
        else:
            runner = _StepModule(self.model, self.step_fn)

        writer = None
        if self.dist.is_main and cfg.tensorboard:
            from torch.utils.tensorboard import SummaryWriter

            writer = SummaryWriter(str(self.out_dir / "tb"), purge_step=self.step if self.step else None)
        jsonl = (self.out_dir / "log.jsonl").open("a") if self.dist.is_main else None
        log.info("%s: %d steps from step %d on %s (world size %d, amp %s)", cfg.desc, cfg.steps, self.step,
                 self.device, self.dist.world_size, self.amp_dtype or "off")
        params = [p for g in self.optimizer.param_groups for p in g["params"]]
        sums: dict[str, float] = {}
        n_sum = 0
        t_last, step_last = time.perf_counter(), self.step
        progress = self._progress()
        task = progress.add_task(cfg.desc, total=cfg.steps, completed=self.step, loss="-", speed="-") if progress else None
        loader = batches = None
        try:
            if progress:
                progress.start()
            self.model.train()
            loader = build_step_loader(self.batch_fn, start=self.step, stop=cfg.steps, seed=cfg.seed,
                                       rank=self.dist.rank, cfg=cfg.loader, cuda=self.device.type == "cuda")
            batches = iter(loader)
            while self.step < cfg.steps:
                step = self.step
                batch = to_device(next(batches), self.device)
                ctx = StepContext(step, cfg.steps, step_generator(cfg.seed, step, self.dist.rank, stream=1),
                                  self.device, self.dist.rank, self.dist.world_size, self.amp_dtype)
                amp = (torch.autocast(self.device.type, dtype=self.amp_dtype) if self.amp_dtype is not None
                       else contextlib.nullcontext())
                with amp:
                    out = runner(batch, ctx)
                if "loss" not in out:
                    raise ConfigError("step_fn must return a dict with a 'loss' entry")
                loss = out["loss"]
                if not torch.isfinite(loss.detach()):
                    raise FloatingPointError(f"{cfg.desc}: loss is {loss.item()} at step {step}")
                self.optimizer.zero_grad(set_to_none=True)
                loss.backward()
                if cfg.grad_clip:
                    torch.nn.utils.clip_grad_norm_(params, cfg.grad_clip)
                self.optimizer.step()
                self.scheduler.step()
                self.step += 1
                for k, v in out.items():
                    if torch.is_tensor(v) and v.numel() == 1:
                        sums[k] = sums.get(k, 0.0) + float(v.detach())
                n_sum += 1
                done = self.step == cfg.steps
                if self.step % max(1, cfg.log_every) == 0 or done:
                    means = self._reduce_means(sums, n_sum)
                    now = time.perf_counter()
                    sps = (self.step - step_last) / max(now - t_last, 1e-9)
                    t_last, step_last = now, self.step
                    ips = sps * (cfg.samples_per_step or 0) * self.dist.world_size
                    lrs = [g["lr"] for g in self.optimizer.param_groups]
                    if self.dist.is_main:
                        if writer is not None:
                            for k, v in means.items():
                                writer.add_scalar(f"{cfg.desc}/{k}", v, self.step)
                            for i, lr in enumerate(lrs):
                                writer.add_scalar(f"{cfg.desc}/lr_group{i}", lr, self.step)
                            writer.add_scalar(f"{cfg.desc}/steps_per_s", sps, self.step)
                        rec = {"step": self.step, **{k: round(v, 6) for k, v in means.items()},
                               "lr": lrs, "steps_per_s": round(sps, 3), "images_per_s": round(ips, 2)}
                        jsonl.write(json.dumps(rec) + "\n")
                        jsonl.flush()
                        log.info("%s step %d/%d %s", cfg.desc, self.step, cfg.steps,
                                 " ".join(f"{k}={v:.4f}" for k, v in means.items()))
                    if progress:
                        speed = f"{sps:.2f} it/s" + (f", {ips:.1f} img/s" if ips else "")
                        progress.update(task, loss=f"{means.get('loss', float('nan')):.4f}", speed=speed)
                    sums, n_sum = {}, 0
                if progress:
                    progress.update(task, completed=self.step)
                if (cfg.checkpoint_every and self.step % cfg.checkpoint_every == 0) or done:
                    self.save_checkpoint()
        finally:
            loader = batches = None  # drops the loader's workers
            if progress:
                progress.stop()
            if writer is not None:
                writer.close()
            if jsonl is not None:
                jsonl.close()
        self._write_final()
        return self.model

    def _reduce_means(self, sums: dict, n: int) -> dict[str, float]:
        keys = sorted(sums)
        vals = torch.tensor([sums[k] / max(n, 1) for k in keys], dtype=torch.float64)
        if keys:
            vals = all_reduce_mean(vals)
        return dict(zip(keys, vals.tolist()))

    def _progress(self):
        if not (self.cfg.progress and self.dist.is_main):
            return None
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

        return Progress(TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
                        TextColumn("loss {task.fields[loss]}"), TextColumn("{task.fields[speed]}"),
                        TimeElapsedColumn(), TimeRemainingColumn(), transient=False)

    def _write_final(self) -> None:
        if self.final is None or not self.dist.is_main:
            barrier()
            return
        path = self.out_dir / "final.safetensors"
        from dabench.models import save_checkpoint

        save_checkpoint(self.model, path, arch=self.final.arch, head=self.final.head, config=self.final.config)
        log.info("final weights %s", path)
        if self.final.register_as:
            from dabench.safety import registered_checkpoint_path

            dst = registered_checkpoint_path(self.final.register_as)
            with atomic_path(dst) as tmp:
                shutil.copyfile(path, tmp)
            log.info("registered as %s", dst)
        atomic_write_text(self.out_dir / "DONE", f"{self.step}\n")
        barrier()
