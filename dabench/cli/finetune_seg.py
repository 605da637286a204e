"""`dabench finetune seg` (semantic segmentation through mmsegmentation)."""
from __future__ import annotations

import os
from pathlib import Path

import typer

from dabench.cli.finetune import finetune_app


@finetune_app.command("seg")
def seg(
    dataset: str = typer.Option("synthetic", "--dataset", help="cityscapes | ade20k | synthetic (the synthetic "
                                                               "world's labels; no download)."),
    head: str = typer.Option("upernet", "--head", help="upernet (default; runs with mmcv-lite) or mask2former (the "
                                                       "paper's head; needs the mmcv-full extra: see docs/finetune.md)."),
    init: Path = typer.Option(None, "--init", help="Encoder weights: an official Depth Anything .pth "
                                                   "(pretrained.* keys) or a dabench .safetensors."),
    random_init: bool = typer.Option(False, "--random-init", help="Start from a RANDOM encoder instead of --init "
                                                                  "(tests the pipeline; not a transfer result)."),
    preset: str = typer.Option(None, "--preset", help="paper (the authors' recipe: 896 crops, 80k/160k iterations; "
                                                       "default for cityscapes/ade20k) or tiny (da2_test, 70-px crops, "
                                                       "a few hundred iterations: a CPU check of the set-up on "
                                                       "synthetic, cityscapes or ade20k; default for synthetic)."),
    arch: str = typer.Option(None, "--arch", help="Encoder arch (da2_vits14, da1_vitl14, da2_test, ...) when the "
                                                  "--init file does not tell or with --random-init."),
    config: Path = typer.Option(None, "--config", help="Any mmseg config (e.g. one under dabench/configs/heads/seg/) instead of "
                                                       "the preset's."),
    out: Path = typer.Option(None, "--out", "-o", help="Run folder: mmengine checkpoints, logs, config.py, "
                                                 "final.safetensors, summary.json. Default runs/seg/<name>."),
    name: str = typer.Option(None, "--name", help="Name the final checkpoint is registered under in "
                                                  "$DABENCH_HOME/checkpoints (default seg_<head>_<arch>_<dataset>_<preset>)."),
    cfg_option: list[str] = typer.Option(None, "--cfg-option", help="Override a config key, mmseg style "
                                                                    "(repeatable): optim_wrapper.optimizer.lr=1e-4, "
                                                                    "train_dataloader.num_workers=4."),
    iters: int = typer.Option(None, "--iters", help="Override the number of iterations (the warm-up/poly "
                                                    "schedule is rescaled)."),
    batch_size: int = typer.Option(None, "--batch-size", help="Override the per-process batch size."),
    data_root: Path = typer.Option(None, "--data-root", help="Datasets folder holding cityscapes/ and "
                                                             "ade/ADEChallengeData2016/ (default $DABENCH_DATA)."),
    resume: bool = typer.Option(False, "--resume", help="Continue the run in --out from its last checkpoint."),
    force: bool = typer.Option(False, "--force", help="Write into an existing --out that dabench did not create."),
    seed: int = typer.Option(0, "--seed"),
    evaluate: bool = typer.Option(True, "--eval/--no-eval", help="After training, score the held-out test split "
                                                                 "and the majority-class baseline (results records, "
                                                                 "suite finetune-seg)."),
    results: Path = typer.Option(None, "--results", help="Results directory for the evaluation records "
                                                               "(default $DABENCH_HOME/results)."),
):
    """Fine-tune a segmentation head on a Depth Anything encoder with mmsegmentation's Runner.

    Examples:

      dabench finetune seg --dataset synthetic --preset tiny --init runs/tiny/student/final.safetensors

      dabench finetune seg --dataset synthetic --preset tiny --random-init --arch da2_test

      dabench finetune seg --dataset cityscapes --preset tiny --random-init --arch da2_test --data-root /data --iters 20

      torchrun --nproc_per_node 8 -m dabench finetune seg --dataset cityscapes --head mask2former --init depth_anything_vitl14.pth --data-root /data

    Evaluate the result: dabench run --suite seg-synthetic --checkpoint runs/seg/<name>/final.safetensors
    """
    from rich.console import Console
    from rich.table import Table

    from dabench.console import print_table
    from dabench.overrides import parse_cfg_options
    from dabench.finetune.seg.train import finetune_seg

    if preset is None:
        preset = "tiny" if dataset == "synthetic" else "paper"
    summary = finetune_seg(dataset=dataset, head=head, preset=preset, init=str(init) if init else None,
                           random_init=random_init, arch=arch, config=config, out=out, name=name,
                           data_root=str(data_root) if data_root else None, iters=iters, batch_size=batch_size,
                           seed=seed, resume=resume, force=force, evaluate_test=evaluate,
                           cfg_options=parse_cfg_options(cfg_option), results_dir=results)
    if int(os.environ.get("RANK", "0")) != 0:
        return
    console = Console()
    console.print(f"final weights: {summary['final']}")
    console.print(f"registered as: {summary['registered']}")
    rows = []
    if summary.get("val"):
        rows.append(("fine-tuned (val split)", summary["val"]))
    held = summary.get("held_out") or {}
    split_label = "val split = held-out split" if held.get("same_as_val") else "held-out test split"
    if held.get("families"):
        split_label += f", {'+'.join(held['families'])} scenes only" if len(held["families"]) == 1 else \
            f", {'+'.join(held['families'])} scenes"
    if held.get("note"):
        console.print(f"held-out split: {held.get('split')} — {held['note']}")
    if summary.get("test"):
        rows.append((f"fine-tuned ({split_label})", summary["test"]))
    if summary.get("test_majority_baseline"):
        rows.append((f"majority class '{summary['majority_class']}' ({split_label})",
                     summary["test_majority_baseline"]))
    if rows:
        table = Table(title=f"{summary['head']} on {summary['arch']}, {dataset} ({summary['iters']} iterations)")
        table.add_column("model")
        for c in ("mIoU ↑", "mAcc ↑", "aAcc ↑"):
            table.add_column(c, justify="right")
        for label, m in rows:
            table.add_row(label, *[f"{m[k]:.2f}" for k in ("miou", "macc", "aacc")])
        print_table(table, console)
        if held.get("same_as_val") and summary.get("test"):
            console.print(f"[yellow]note:[/yellow] {held['note']}")
