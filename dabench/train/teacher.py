"""Stage 1: the teacher — DINOv2-initialised encoder + DPT head trained on labelled images with
the affine-invariant disparity loss (paper §3.1)."""
from __future__ import annotations

import logging
from pathlib import Path
from dabench.train.common import (StageResult, Sources, build_model, encoder_init_note, labelled_batch, normalise,
                                  param_groups, warn_random_encoder, write_data_record)
from dabench.train.config import TrainingConfig, dump_config, stage_fingerprint
from dabench.train.distributed import init_distributed
from dabench.train.engine import FinalWeights, TrainConfig, Trainer
from dabench.train.loader import EpochSampler, LoaderConfig
from dabench.train.losses import affine_invariant_loss

log = logging.getLogger("dabench.train")


def runtime_train_config(cfg: TrainingConfig, stage: str, samples_per_step: int) -> TrainConfig:
    """The loop settings of ``stage`` (``teacher`` / ``student``): its section plus ``runtime``."""
    rt, st = cfg.runtime, getattr(cfg, stage)
    loader = LoaderConfig(num_workers=cfg.data.num_workers, prefetch_factor=cfg.data.prefetch_factor)
    return TrainConfig(loader=loader, steps=st.steps, checkpoint_every=rt.checkpoint_every,
                       keep_checkpoints=rt.keep_checkpoints, log_every=rt.log_every, schedule=st.schedule,
                       warmup_steps=st.warmup_steps, weight_decay=st.weight_decay, grad_clip=st.grad_clip,
                       amp=rt.amp, seed=cfg.seed, samples_per_step=samples_per_step, device=rt.device,
                       progress=rt.progress, tensorboard=rt.tensorboard, desc=stage)


def train_teacher(cfg: TrainingConfig, out_dir: str | Path, resume: bool = False) -> StageResult:
    """Train the teacher; its weights end in ``out_dir/final.safetensors``."""
    out_dir = Path(out_dir)
    dist = init_distributed(cfg.runtime.device)
    d = cfg.data
    labelled = Sources(d.labelled, d.data_root, "labelled", short_side=d.crop_size, cache=d.cache)
    t = cfg.teacher
    warn_random_encoder(cfg, "teacher")
    model = build_model(cfg)
    sampler = EpochSampler(len(labelled), t.batch_size, seed=cfg.seed, rank=dist.rank,
                           world_size=dist.world_size)
    crop, flip, seed = d.crop_size, d.flip, cfg.seed

    def batch_fn(step, gen):
        return labelled_batch(labelled, sampler.indices(step), crop, flip, seed=seed,
                              positions=sampler.positions(step))

    def step_fn(m, batch, ctx):
        pred = m(normalise(batch["image"]))
        loss = affine_invariant_loss(pred.float(), batch["disparity"], batch["mask"])
        return {"loss": loss, "loss_l": loss.detach()}

    if dist.is_main:
        out_dir.mkdir(parents=True, exist_ok=True)
        dump_config(cfg, out_dir / "config.py")
        write_data_record(out_dir, labelled=labelled)
    meta_cfg = {"stage": "teacher", "preset": cfg.preset, "encoder_init": encoder_init_note(cfg),
                "train_config": cfg.to_dict()}
    trainer = Trainer(model, param_groups(model, t.lr, t.head_lr_mult), step_fn, batch_fn,
                      runtime_train_config(cfg, "teacher", t.batch_size), out_dir,
                      fingerprint=stage_fingerprint(cfg, "teacher"),
                      final=FinalWeights(arch=cfg.model.arch, head="relative", config=meta_cfg), dist_=dist)
    trainer.fit(resume=resume)
    return StageResult("teacher", out_dir, out_dir / "final.safetensors",
                       {"steps": t.steps, "labelled": len(labelled), "encoder_init": encoder_init_note(cfg)})
