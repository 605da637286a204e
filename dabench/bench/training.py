"""Training: one student step (strong perturbations + CutMix on the unlabelled images, pseudo-label
loss, feature alignment to a frozen encoder) against one teacher step, at the ``tiny`` preset.

The headline ratio gives the teacher step as many images as the student step (the preset's student
takes ``batch_size`` labelled + ``unlabelled_ratio × batch_size`` unlabelled images, the teacher
``batch_size``), so it measures what the student's extra machinery costs; the ratio against the
teacher at the preset's own batch size is reported next to it (``preset_batches``).

Both steps are dabench's own: ``train_teacher`` / ``train_student`` are run with their ``Trainer``
replaced by a recorder, so the bench gets the stages' real ``batch_fn`` and ``step_fn`` (data
sampling, crops, perturbations and losses exactly as training runs them), then takes steps the way
``Trainer`` does (batch, forward + losses, zero_grad, backward, grad clip, AdamW, schedule).
A step's time includes making its batch (that is where the perturbations and CutMix happen);
sample rendering is excluded: the preset caches samples and the warm-up steps fill the cache.
"""
from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any
from unittest import mock


class _Recorder:
    """Stands in for ``dabench.train.engine.Trainer``: keeps the real trainer's inputs, fits nothing."""

    last: dict[str, Any] = {}

    def __init__(self, model, param_groups, step_fn, batch_fn, cfg, out_dir, **kw):
        _Recorder.last = dict(model=model, param_groups=param_groups, step_fn=step_fn, batch_fn=batch_fn, cfg=cfg)
        self.model = model

    def fit(self, resume: bool = False):
        return self.model


class StepRunner:
    """Takes optimiser steps of a recorded stage exactly as ``Trainer._fit`` does (no logging/checkpoints)."""

    def __init__(self, recorded: dict[str, Any], device: str = "cpu"):
        import torch

        from dabench.train.engine import Trainer

        # the trainer's work folder: removed with this object (it used to stay in the temp folder)
        self._work = tempfile.TemporaryDirectory(prefix="dabench-bench-")
        self.t = Trainer(recorded["model"], recorded["param_groups"], recorded["step_fn"], recorded["batch_fn"],
                         recorded["cfg"], self._work.name)
        self.samples = recorded["cfg"].samples_per_step
        self.step_idx = 0
        self.params = [p for g in self.t.optimizer.param_groups for p in g["params"]]
        self.torch = torch

    def step(self) -> float:
        import contextlib

        from dabench.train.engine import StepContext, to_device
        from dabench.train.loader import step_generator

        torch, t, cfg = self.torch, self.t, self.t.cfg
        s = self.step_idx
        t.model.train()
        batch = to_device(t.batch_fn(s, step_generator(cfg.seed, s, 0, stream=0)), t.device)
        ctx = StepContext(s, cfg.steps, step_generator(cfg.seed, s, 0, stream=1), t.device, 0, 1, t.amp_dtype)
        amp = torch.autocast(t.device.type, dtype=t.amp_dtype) if t.amp_dtype is not None else contextlib.nullcontext()
        with amp:
            out = t.step_fn(t.model, batch, ctx)
        loss = out["loss"]
        t.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        if cfg.grad_clip:
            torch.nn.utils.clip_grad_norm_(self.params, cfg.grad_clip)
        t.optimizer.step()
        t.scheduler.step()
        self.step_idx += 1
        return float(loss.detach())


def tiny_config(num_samples: int = 16, device: str = "cpu", crop_size: int | None = None):
    """The ``tiny`` preset with small synthetic sets (the per-step work does not depend on the set size)."""
    from dabench.train.config import load_config
    from dabench.typed_config import to_dict

    base = load_config(preset="tiny")
    ov: dict = {f"data.{key}": [dict(to_dict(spec), kwargs=dict(spec.kwargs, num_samples=num_samples))
                                for spec in getattr(base.data, key)] for key in ("labelled", "unlabelled")}
    if crop_size is not None:
        ov["data.crop_size"] = int(crop_size)
    ov.update({"runtime.progress": False, "runtime.tensorboard": False, "runtime.device": device,
               "teacher.steps": 10 ** 6, "student.steps": 10 ** 6})
    return load_config(preset="tiny", overrides=ov)


def build_runners(cfg, workdir: Path) -> tuple[StepRunner, StepRunner, StepRunner]:
    """Step runners of the teacher at the preset's batch, the teacher at the student's images per
    step, and the student (pseudo-labels made by an untrained teacher)."""
    import dataclasses
    import logging

    from dabench.models import save_checkpoint
    from dabench.train import student as student_mod, teacher as teacher_mod
    from dabench.train.common import build_model
    from dabench.train.pseudo_label import make_pseudo_labels

    logging.getLogger("dabench.train").setLevel(logging.ERROR)
    s = cfg.student
    student_images = s.batch_size * (1 + (s.unlabelled_ratio if s.use_unlabelled else 0))
    teachers = []
    for i, bs in enumerate((cfg.teacher.batch_size, student_images)):
        tcfg = dataclasses.replace(cfg, teacher=dataclasses.replace(cfg.teacher, batch_size=bs))
        with mock.patch.object(teacher_mod, "Trainer", _Recorder):
            teacher_mod.train_teacher(tcfg, workdir / f"teacher{i}")
        teachers.append(StepRunner(_Recorder.last, cfg.runtime.device or "cpu"))
    ckpt = workdir / "teacher.safetensors"
    save_checkpoint(build_model(cfg), ckpt, arch=cfg.model.arch)
    make_pseudo_labels(cfg, workdir / "pseudo", ckpt)
    with mock.patch.object(student_mod, "Trainer", _Recorder):
        student_mod.train_student(cfg, workdir / "student", workdir / "pseudo", register=False)
    student = StepRunner(_Recorder.last, cfg.runtime.device or "cpu")
    return teachers[0], teachers[1], student


def run(warmup: int = 8, steps: int = 12, num_samples: int = 16, crop_size: int | None = None,
        device: str = "cpu") -> dict:
    """Median seconds of a student step over a teacher step taking as many images (goal <= 1.6);
    the ratio against the teacher at the preset's own batch size is reported too."""
    import contextlib
    import io
    import statistics

    from dabench.bench.timing import timed

    cfg = tiny_config(num_samples, device, crop_size)
    with tempfile.TemporaryDirectory(prefix="dabench-bench-train-") as tmp, \
            contextlib.redirect_stdout(io.StringIO()):  # the stages print their random-init warnings
        teacher, teacher_eq, student = build_runners(cfg, Path(tmp))
        runners = [teacher, teacher_eq, student]
        for _ in range(warmup):  # fills the sample caches, warms the allocator
            for r in runners:
                r.step()
        times: list[list[float]] = [[], [], []]
        for i in range(steps):
            order = [0, 1, 2] if i % 2 == 0 else [2, 1, 0]
            for k in order:
                times[k].append(timed(runners[k].step))
    mt, me, ms = (statistics.median(t) for t in times)
    s = cfg.student
    return {"ratio": ms / me, "direction": "student_step_seconds / teacher_step_seconds (same images per step)",
            "goal": 1.6, "goal_op": "<=", "student_step_seconds": ms, "teacher_step_seconds": me,
            "images_per_step": student.samples,
            "preset_batches": {"ratio": ms / mt, "student_step_seconds": ms, "teacher_step_seconds": mt,
                               "student_images_per_step": student.samples,
                               "teacher_images_per_step": teacher.samples},
            "student_switches": {k: getattr(s, k) for k in ("use_unlabelled", "strong_perturb", "feat_align")},
            "arch": cfg.model.arch, "crop_size": cfg.data.crop_size, "steps_timed": steps,
            "teacher_images_per_second": teacher.samples / mt, "student_images_per_second": student.samples / ms,
            "all_teacher_preset_s": times[0], "all_teacher_s": times[1], "all_student_s": times[2]}
