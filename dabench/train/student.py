"""Stage 3: the student (paper §3.2–3.3).

The encoder is re-initialised (from DINOv2 / the seeded random init, never the teacher's), and
each step sees ``batch_size`` labelled and ``unlabelled_ratio × batch_size`` unlabelled images
(1:2 in the paper). Losses, each behind a switch (Table 9):

- ``L_l``: affine-invariant disparity loss on labelled images (always);
- ``L_u`` (``use_unlabelled``): the same loss against the teacher's pseudo-labels; with
  ``strong_perturb`` the unlabelled inputs get colour jitter / grayscale / blur and CutMix, whose
  loss weights the two regions by their area (``losses.cutmix_unlabelled_loss``);
- ``L_feat`` (``feat_align``): ``1 − mean cos`` between the student's final encoder features and a
  frozen DINOv2 encoder's on the unlabelled inputs, pixels with cos > ``feat_alpha`` excluded.

The total is the mean of the active losses. At tiny scale without real DINOv2 weights, the
"frozen DINOv2" is the seeded random encoder the student starts from: L_feat then keeps the
student near a random encoder (documented, and recorded in the checkpoint metadata).
"""
from __future__ import annotations

import logging
from pathlib import Path
import torch

from dabench.errors import ConfigError, DataError
from dabench.train.common import (UNLABELLED_STREAM, StageResult, Sources, build_model, encoder_init_note,
                                  labelled_batch, normalise, param_groups, random_crop_flip, resize_short_side,
                                  warn_random_encoder, write_data_record)
from dabench.train.config import PerturbConfig, TrainingConfig, dump_config, stage_fingerprint
from dabench.train.distributed import init_distributed
from dabench.train.engine import FinalWeights, Trainer
from dabench.train.loader import EpochSampler, sample_generator
from dabench.train.losses import (affine_invariant_loss, cutmix_unlabelled_loss, feature_alignment_loss)
from dabench.train.perturb import apply_cutmix, cutmix_box, strong_perturb
from dabench.train.pseudo_label import PseudoLabels
from dabench.train.teacher import runtime_train_config

log = logging.getLogger("dabench.train")


class UnlabelledSet:
    """Unlabelled images with their pseudo-labels, resized so the shorter side is the crop size
    (cached in memory when ``data.cache``)."""

    def __init__(self, sources: Sources, labels: PseudoLabels, short_side: int, cache: bool):
        if len(sources) != len(labels):
            raise DataError(f"the pseudo-labels in {labels.dir} cover {len(labels)} images but the unlabelled set "
                            f"has {len(sources)}: re-run `dabench train pseudo-label` for this config")
        self.sources, self.labels, self.short, self.cache = sources, labels, short_side, cache
        self._cache: dict[int, dict] = {}

    def __len__(self) -> int:
        return len(self.sources)

    def __getitem__(self, i: int) -> dict:
        if i in self._cache:
            return self._cache[i]
        s = self.sources[i]
        pseudo = self.labels[i]
        if tuple(pseudo.shape) != tuple(s["image"].shape[-2:]):
            raise DataError(f"pseudo-label {i} is {tuple(pseudo.shape)}, its image {tuple(s['image'].shape[-2:])}")
        out = resize_short_side({"image": s["image"], "pseudo": pseudo.float()}, self.short)
        if self.cache:
            self._cache[i] = out
        return out


def student_batch(labelled: Sources, unl: UnlabelledSet | None, lab_sampler: EpochSampler,
                  unl_sampler: EpochSampler | None, step: int, *, crop: int, seed: int, flip: bool,
                  flip_unlabelled: bool, strong: bool, pcfg: PerturbConfig) -> dict:
    """The student's batch at ``step``: the labelled batch plus (when ``unl``) the unlabelled images
    with their pseudo-labels, each cropped, perturbed and CutMix-boxed with its own generator
    (``sample_generator(seed, UNLABELLED_STREAM, position)``); CutMix pairs image i with i − 1."""
    batch = labelled_batch(labelled, lab_sampler.indices(step), crop, flip, seed=seed,
                           positions=lab_sampler.positions(step))
    if unl is None:
        return batch
    images, pseudo, boxes = [], [], []
    for i, pos in zip(unl_sampler.indices(step), unl_sampler.positions(step)):
        g = sample_generator(seed, UNLABELLED_STREAM, pos)
        c = random_crop_flip(unl[i], crop, g, flip_unlabelled)
        img = c["image"]
        if strong:
            img = strong_perturb(img[None], g, pcfg)[0]
            boxes.append(cutmix_box(crop, crop, g, pcfg.cutmix_p, pcfg.cutmix_area, pcfg.cutmix_ratio))
        images.append(img)
        pseudo.append(c["pseudo"])
    images_t = torch.stack(images)
    if strong:
        box_t = torch.stack(boxes)
        images_t, partner = apply_cutmix(images_t, box_t)
        batch["u_box"], batch["u_partner"] = box_t, partner
    batch["u_image"], batch["u_pseudo"] = images_t, torch.stack(pseudo)
    return batch


def check_switches(cfg: TrainingConfig) -> None:
    s = cfg.student
    if not s.use_unlabelled:
        for k in ("strong_perturb", "feat_align"):
            if getattr(s, k):
                raise ConfigError(f"config key 'student.{k}' needs unlabelled images: set student.use_unlabelled=true "
                                  f"or student.{k}=false")
    if s.use_unlabelled and s.unlabelled_ratio < 1:
        raise ConfigError("config key 'student.unlabelled_ratio' must be >= 1 when student.use_unlabelled is true")


def train_student(cfg: TrainingConfig, out_dir: str | Path, pseudo_dir: str | Path | None, resume: bool = False,
                  register: bool = True) -> StageResult:
    """Train the student; ``pseudo_dir`` holds the pseudo-label stage's output (ignored when
    ``student.use_unlabelled`` is false). Final weights: ``out_dir/final.safetensors``, also
    registered in ``checkpoints_dir()`` as ``run_name`` (default ``<arch>_student``) when
    ``register``."""
    check_switches(cfg)
    out_dir = Path(out_dir)
    dist = init_distributed(cfg.runtime.device)
    d, s = cfg.data, cfg.student
    crop = d.crop_size
    labelled = Sources(d.labelled, d.data_root, "labelled", short_side=crop, cache=d.cache)
    use_u, strong, feat = s.use_unlabelled, s.strong_perturb, s.feat_align
    unl = None
    if use_u:
        if pseudo_dir is None:
            raise ConfigError("student.use_unlabelled is true but no pseudo-label directory was given (--pseudo-labels)")
        labels = PseudoLabels(pseudo_dir)
        unl_src = Sources(d.unlabelled, d.data_root, "unlabelled", keys=("image",))
        unl = UnlabelledSet(unl_src, labels, crop, d.cache)
    warn_random_encoder(cfg, "student")
    model = build_model(cfg)
    frozen = None
    if feat:
        fw = s.frozen_encoder_weights
        frozen = build_model(cfg, encoder_weights=fw)
        frozen.depth_head = torch.nn.Identity()  # only the encoder is used
        frozen.requires_grad_(False).eval().to(dist.device)
        if not (fw or cfg.model.encoder_weights):
            msg = ("student: L_feat aligns to a FROZEN RANDOM encoder (no DINOv2 weights given; "
                   "set model.encoder_weights or student.frozen_encoder_weights for real DINOv2)")
            log.warning(msg)
    bl = s.batch_size
    bu = bl * s.unlabelled_ratio if use_u else 0
    lab_sampler = EpochSampler(len(labelled), bl, seed=cfg.seed, rank=dist.rank, world_size=dist.world_size)
    unl_sampler = (EpochSampler(len(unl), bu, seed=cfg.seed + 1, rank=dist.rank, world_size=dist.world_size)
                   if use_u else None)
    pcfg = s.perturb
    flip, flip_u = d.flip, d.flip_unlabelled
    alpha = float(s.feat_alpha)

    seed = cfg.seed

    def batch_fn(step, gen):
        return student_batch(labelled, unl, lab_sampler, unl_sampler, step, crop=crop, seed=seed, flip=flip,
                             flip_unlabelled=flip_u, strong=strong, pcfg=pcfg)

    def step_fn(m, batch, ctx):
        nl = batch["image"].shape[0]
        if not use_u:
            pred = m(normalise(batch["image"]))
            ll = affine_invariant_loss(pred.float(), batch["disparity"], batch["mask"])
            return {"loss": ll, "loss_l": ll.detach()}
        x = normalise(torch.cat([batch["image"], batch["u_image"]]))
        pred, enc = m.forward_with_features(x)
        pred = pred.float()
        ll = affine_invariant_loss(pred[:nl], batch["disparity"], batch["mask"])
        pu, pseudo = pred[nl:], batch["u_pseudo"]
        if strong:
            lu = cutmix_unlabelled_loss(pu, pseudo, pseudo[batch["u_partner"]], batch["u_box"])
        else:
            lu = affine_invariant_loss(pu, pseudo, torch.ones_like(pseudo, dtype=torch.bool))
        losses = [ll, lu]
        out = {"loss_l": ll.detach(), "loss_u": lu.detach()}
        if feat:
            with torch.no_grad():
                target = frozen.forward_encoder_features(x[nl:])
            lf = feature_alignment_loss(enc[nl:], target, alpha)
            losses.append(lf)
            out["loss_feat"] = lf.detach()
        out["loss"] = torch.stack(losses).mean()
        return out

    if dist.is_main:
        out_dir.mkdir(parents=True, exist_ok=True)
        dump_config(cfg, out_dir / "config.py")
        write_data_record(out_dir, labelled=labelled, unlabelled=unl_src if use_u else None)
    arch = cfg.model.arch
    run_name = cfg.run_name or f"{arch}_student"
    meta_cfg = {"stage": "student", "preset": cfg.preset, "encoder_init": encoder_init_note(cfg),
                "feat_align_target": (encoder_init_note(cfg, s.frozen_encoder_weights) if feat else None),
                "switches": {"use_unlabelled": use_u, "strong_perturb": strong, "feat_align": feat},
                "pseudo_labels": str(pseudo_dir) if use_u else None, "train_config": cfg.to_dict()}
    fingerprint = stage_fingerprint(cfg, "student")
    if use_u:  # the pseudo-labels' teacher is part of what a resume must match
        fingerprint["pseudo_labels_teacher_sha256"] = labels.index["fingerprint"]["teacher_sha256"]
    trainer = Trainer(model, param_groups(model, s.lr, s.head_lr_mult), step_fn, batch_fn,
                      runtime_train_config(cfg, "student", bl + bu), out_dir,
                      fingerprint=fingerprint,
                      final=FinalWeights(arch=arch, head="relative", config=meta_cfg,
                                         register_as=run_name if register else None), dist_=dist)
    trainer.fit(resume=resume)
    return StageResult("student", out_dir, out_dir / "final.safetensors",
                       {"steps": s.steps, "labelled": len(labelled), "unlabelled": len(unl) if unl else 0,
                        "switches": meta_cfg["switches"], "registered_as": run_name if register else None})
