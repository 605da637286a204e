"""Teacher–student training (Depth Anything §3): teacher on labelled data, pseudo-labels on
unlabelled images, student with strong perturbations and feature alignment.

- ``engine``: the generic resumable loop (``Trainer``), reused by ``dabench finetune``.
- ``losses``: affine-invariant disparity loss, CutMix-weighted unlabelled loss, feature alignment.
- ``perturb``: colour jitter, grayscale, Gaussian blur, CutMix boxes.
- ``config``: presets and the typed ``TrainingConfig`` every stage takes (``sections``: what the loop
  and fine-tuning share).
- ``teacher``, ``pseudo_label``, ``student``, ``pipeline``: the stages; ``run_stage`` is the API.
"""
from __future__ import annotations


def run_stage(stage: str, cfg, out_dir, resume: bool = False, **kwargs):
    """Run one stage (``teacher``, ``pseudo-label``, ``student`` or ``pipeline``) of a config from
    ``dabench.train.config.load_config``; see ``dabench.train.pipeline.run_stage``."""
    from dabench.train.pipeline import run_stage as _run

    return _run(stage, cfg, out_dir, resume=resume, **kwargs)
