"""`dabench train teacher|pseudo-label|student|pipeline|ablation`: Depth Anything's teacher–student
training (dabench/train/). Works on one CPU, one GPU, or under `torchrun` (DDP)."""
from __future__ import annotations

from pathlib import Path
from typing import List, Optional

import typer

from dabench.cli._app import app

train_app = typer.Typer(
    help="Teacher–student training (Depth Anything §3): teacher on labelled images, pseudo-labels on "
    "unlabelled ones, student with strong perturbations and feature alignment.\n\n"
    "Presets: tiny (CPU minutes on the synthetic world), tiny-ll / tiny-lu / tiny-strong (Table 9 rows), "
    "tiny-shift (teacher labelled indoors, unlabelled images outdoors), "
    "paper / paper-vitb / paper-vits (518 px, the paper's schedule; supply your data lists).\n\n"
    "Example: dabench train pipeline --preset tiny --out runs/tiny",
    no_args_is_help=True,
)
app.add_typer(train_app, name="train")

_CONFIG = typer.Option(None, "--config", "-c", help="mmengine config file (.py); may `_base_` on a preset file.")
_PRESET = typer.Option(None, "--preset", "-p", help="Preset name (default tiny): tiny, tiny-ll, tiny-lu, "
                       "tiny-strong, tiny-shift, paper, paper-v2, paper-vitb, paper-vits, smoke.")
_SET = typer.Option(None, "--cfg-option", "--set", "-s", help="Override one config key, e.g. --cfg-option "
                    "student.feat_alpha=0.7 (repeatable; checked against the typed config before anything runs).")
_ITERS = typer.Option(None, "--iters", min=1, help="Optimiser steps of the trained stage(s) (sets teacher.steps "
                      "and/or student.steps).")
_BATCH = typer.Option(None, "--batch-size", min=1, help="Per-rank batch size of the stage(s) (teacher.batch_size, "
                      "pseudo_label.batch_size and/or student.batch_size).")
_SEED = typer.Option(None, "--seed", min=0, help="Data-order and augmentation seed (sets seed).")
_DEVICE = typer.Option(None, "--device", help="cpu, cuda, cuda:1 (sets runtime.device; default: CUDA when available).")
_RESUME = typer.Option(False, "--resume", help="Continue exactly from the newest checkpoint in --out.")
_FORCE = typer.Option(False, "--force", help="Write into an existing --out that dabench did not create (its files "
                      "with the same names, e.g. config.py, are replaced).")
_QUIET = typer.Option(False, "--no-progress", help="No progress bar (logs still go to OUT/train.log).")


_DATA_ROOT = typer.Option(None, "--data-root", help="Folder holding the labelled sets (sets data.data_root; "
                          "each card's root is relative to it).")
_UNLABELLED = typer.Option(None, "--unlabelled", help="Unlabelled source (repeatable; replaces data.unlabelled): "
                           "wds:<brace pattern>, list:<file>, folder:<dir> or a dataset name.")


#: the config sections a stage's --iters / --batch-size set
_STAGE_SECTIONS = {"teacher": ("teacher",), "pseudo-label": ("pseudo_label",), "student": ("student",),
                   "pipeline": ("teacher", "pseudo_label", "student"), "ablation": ("teacher", "pseudo_label", "student")}


def _load(config: Optional[Path], preset: Optional[str], overrides: Optional[List[str]], quiet: bool,
          data_root: Optional[Path] = None, unlabelled: Optional[List[str]] = None, *, stage: str = "pipeline",
          iters: Optional[int] = None, batch_size: Optional[int] = None, seed: Optional[int] = None,
          device: Optional[str] = None):
    """The typed training config from the command line (every flag is an override of a config key,
    checked with the others before any folder is claimed)."""
    from dabench.train.config import load_config, parse_overrides

    ov = parse_overrides(overrides)
    for section in _STAGE_SECTIONS[stage]:
        if iters is not None and section != "pseudo_label":
            ov[f"{section}.steps"] = iters
        if batch_size is not None:
            ov[f"{section}.batch_size"] = batch_size
    if seed is not None:
        ov["seed"] = seed
    if device is not None:
        from dabench.models.inference import resolve_device

        resolve_device(device)
        ov["runtime.device"] = device
    if quiet:
        ov["runtime.progress"] = False
    if data_root is not None:
        ov["data.data_root"] = str(data_root)
    if unlabelled:
        ov["data.unlabelled"] = [{"name": u} for u in unlabelled]
    return load_config(config, preset, ov)


def _console_logging() -> None:
    import logging

    from rich.logging import RichHandler

    lg = logging.getLogger("dabench.train")
    if not any(isinstance(h, RichHandler) for h in lg.handlers):
        h = RichHandler(show_path=False, show_time=False, markup=False)
        h.setLevel(logging.INFO)
        h.addFilter(lambda r: " step " not in r.getMessage())  # per-step lines: progress bar + train.log
        lg.addHandler(h)
    lg.setLevel(logging.INFO)


def _run(stage: str, config, preset, overrides, out: Path, resume: bool, quiet: bool, force: bool = False,
         data_root=None, unlabelled=None, common: Optional[dict] = None, **kw):
    from dabench.safety import claim_out_dir
    from dabench.train.distributed import init_distributed, shutdown_distributed
    from dabench.train.pipeline import run_stage

    cfg = _load(config, preset, overrides, quiet, data_root, unlabelled, stage=stage, **(common or {}))
    claim_out_dir(out, command=f"train {stage}", resume=resume, force=force)
    _console_logging()
    info = init_distributed(cfg.runtime.device)
    try:
        res = run_stage(stage, cfg, out, resume=resume, **kw)
    finally:
        shutdown_distributed()
    if info.is_main:
        if res.final is not None:
            typer.echo(f"{stage}: final weights {res.final}")
        if "registered_as" in res.info and res.info["registered_as"]:
            typer.echo(f"registered as {res.info['registered_as']!r} (dabench run --model {res.info['registered_as']})")
        if "eval" in res.info:
            from dabench.train.pipeline import results_table

            typer.echo(results_table(res.info["eval"]))
    return res


@train_app.command("teacher")
def teacher_cmd(config: Optional[Path] = _CONFIG, preset: Optional[str] = _PRESET,
                out: Path = typer.Option(Path("runs/teacher"), "--out", "-o", help="Output directory."),
                overrides: Optional[List[str]] = _SET, resume: bool = _RESUME, quiet: bool = _QUIET,
                force: bool = _FORCE, data_root: Optional[Path] = _DATA_ROOT,
                unlabelled: Optional[List[str]] = _UNLABELLED,
                iters: Optional[int] = _ITERS, batch_size: Optional[int] = _BATCH, seed: Optional[int] = _SEED,
                device: Optional[str] = _DEVICE):
    """Train the teacher on the labelled sets (affine-invariant disparity loss).

    Example: dabench train teacher --preset tiny --out runs/tiny/teacher
    """
    _run("teacher", config, preset, overrides, out, resume, quiet, force,
         data_root=data_root, unlabelled=unlabelled,
         common=dict(iters=iters, batch_size=batch_size, seed=seed, device=device))


@train_app.command("pseudo-label")
def pseudo_label_cmd(config: Optional[Path] = _CONFIG, preset: Optional[str] = _PRESET,
                     out: Path = typer.Option(Path("runs/pseudo_labels"), "--out", "-o", help="Output directory."),
                     teacher: Optional[Path] = typer.Option(None, "--teacher", help="Teacher weights "
                                                            "(default OUT/../teacher/final.safetensors)."),
                     overrides: Optional[List[str]] = _SET, resume: bool = _RESUME, quiet: bool = _QUIET,
                     force: bool = _FORCE, data_root: Optional[Path] = _DATA_ROOT,
                     unlabelled: Optional[List[str]] = _UNLABELLED,
                     iters: Optional[int] = _ITERS, batch_size: Optional[int] = _BATCH, seed: Optional[int] = _SEED,
                     device: Optional[str] = _DEVICE):
    """Label the unlabelled sets with the teacher (clean inputs), as resumable shards.

    Example: dabench train pseudo-label --preset tiny --teacher runs/tiny/teacher/final.safetensors --out runs/tiny/pseudo_labels
    """
    _run("pseudo-label", config, preset, overrides, out, resume, quiet, force,
         data_root=data_root, unlabelled=unlabelled, teacher=teacher,
         common=dict(iters=iters, batch_size=batch_size, seed=seed, device=device))


@train_app.command("student")
def student_cmd(config: Optional[Path] = _CONFIG, preset: Optional[str] = _PRESET,
                out: Path = typer.Option(Path("runs/student"), "--out", "-o", help="Output directory."),
                pseudo_labels: Optional[Path] = typer.Option(None, "--pseudo-labels", help="Pseudo-label directory "
                                                             "(default OUT/../pseudo_labels)."),
                overrides: Optional[List[str]] = _SET, resume: bool = _RESUME, quiet: bool = _QUIET,
                force: bool = _FORCE, data_root: Optional[Path] = _DATA_ROOT,
                unlabelled: Optional[List[str]] = _UNLABELLED,
                iters: Optional[int] = _ITERS, batch_size: Optional[int] = _BATCH, seed: Optional[int] = _SEED,
                device: Optional[str] = _DEVICE):
    """Train the student: labelled + pseudo-labelled images (1:2), strong perturbations, feature alignment.

    Example: dabench train student --preset tiny --pseudo-labels runs/tiny/pseudo_labels --out runs/tiny/student
    """
    _run("student", config, preset, overrides, out, resume, quiet, force,
         data_root=data_root, unlabelled=unlabelled, pseudo_labels=pseudo_labels,
         common=dict(iters=iters, batch_size=batch_size, seed=seed, device=device))


@train_app.command("pipeline")
def pipeline_cmd(config: Optional[Path] = _CONFIG, preset: Optional[str] = _PRESET,
                 out: Path = typer.Option(Path("runs/pipeline"), "--out", "-o",
                                          help="Output directory (teacher/, pseudo_labels/, student/)."),
                 overrides: Optional[List[str]] = _SET, resume: bool = _RESUME, quiet: bool = _QUIET,
                 force: bool = _FORCE, data_root: Optional[Path] = _DATA_ROOT,
                 unlabelled: Optional[List[str]] = _UNLABELLED,
                 evaluate: bool = typer.Option(True, "--eval/--no-eval", help="Evaluate teacher, student and "
                                               "horizon_prior on evaluation.datasets at the end."),
                 iters: Optional[int] = _ITERS, batch_size: Optional[int] = _BATCH, seed: Optional[int] = _SEED,
                 device: Optional[str] = _DEVICE):
    """Teacher → pseudo-labels → student in one go (then held-out evaluation).

    Example: dabench train pipeline --preset tiny --out runs/tiny
    """
    _run("pipeline", config, preset, overrides, out, resume, quiet, force,
         data_root=data_root, unlabelled=unlabelled, evaluate=evaluate,
         common=dict(iters=iters, batch_size=batch_size, seed=seed, device=device))


@train_app.command("ablation")
def ablation_cmd(config: Optional[Path] = _CONFIG, preset: Optional[str] = _PRESET,
                 out: Path = typer.Option(Path("runs/ablation"), "--out", "-o", help="Output directory."),
                 overrides: Optional[List[str]] = _SET, resume: bool = _RESUME, quiet: bool = _QUIET,
                 data_root: Optional[Path] = _DATA_ROOT, unlabelled: Optional[List[str]] = _UNLABELLED,
                 seeds: Optional[str] = typer.Option(None, "--seeds", help="Comma-separated seeds, e.g. 0,1,2: "
                                                     "the whole ablation once per seed (seed and model.init_seed) "
                                                     "into OUT/seed_<s>/, then OUT/summary.json with per-seed "
                                                     "figures and mean ± std per arm and scene family."),
                 force: bool = _FORCE,
                 iters: Optional[int] = _ITERS, batch_size: Optional[int] = _BATCH, device: Optional[str] = _DEVICE):
    """The paper's Table 9: one teacher, four students (L_l; +L_u; +strong perturbation; +L_feat),
    each evaluated on evaluation.datasets (AbsRel, δ1); writes OUT/ablation.md and OUT/ablation.json
    (with --seeds: per seed, plus OUT/summary.json and OUT/summary.md).

    Example: dabench train ablation --preset tiny-shift --seeds 0,1,2 --out runs/shift
    """
    from dabench.safety import claim_out_dir
    from dabench.train.distributed import init_distributed, shutdown_distributed
    from dabench.train.pipeline import results_table, run_ablation

    cfg = _load(config, preset, overrides, quiet, data_root, unlabelled, stage="ablation", iters=iters,
                batch_size=batch_size, device=device)
    seed_list = None
    if seeds is not None:
        from dabench.train.ablation import parse_seeds

        seed_list = parse_seeds(seeds)
    claim_out_dir(out, command="train ablation", resume=resume, force=force)
    _console_logging()
    info = init_distributed(cfg.runtime.device)
    try:
        if seed_list is None:
            results = run_ablation(cfg, out, resume=resume)
        else:
            from dabench.train.ablation import run_seed_ablation, summary_table

            summary = run_seed_ablation(cfg, out, seed_list, resume=resume)
    finally:
        shutdown_distributed()
    if info.is_main:
        if seed_list is None:
            typer.echo(results_table(results))
            typer.echo(f"written {out / 'ablation.md'} and {out / 'ablation.json'}")
        else:
            typer.echo(summary_table(summary["arms"]))
            typer.echo(f"written {out / 'summary.json'} and {out / 'summary.md'}")
