"""`dabench finetune metric|seg`: fine-tune heads on a Depth Anything encoder.
`metric` is defined here; `seg` in dabench/cli/finetune_seg.py."""
from __future__ import annotations

from pathlib import Path

import typer

from dabench.errors import ConfigError

from dabench.cli._app import app

finetune_app = typer.Typer(
    help="Fine-tune heads on a Depth Anything encoder: metric depth or semantic segmentation.\n\n"
    "Example: dabench finetune metric --dataset synthetic-indoor --head simple --init runs/tiny/student/final.safetensors --preset tiny",
    no_args_is_help=True,
)
app.add_typer(finetune_app, name="finetune")


@finetune_app.command("metric")
def metric(
    dataset: str = typer.Option(..., "--dataset", help="Dataset card to fine-tune on: nyu, kitti, synthetic-indoor, "
                                                       "synthetic-outdoor, ... (its train split)."),
    head: str = typer.Option("zoe", "--head", help="zoe (ZoeDepth metric bins, DA V1) or simple (sigmoid x max depth, DA V2)."),
    init: Path = typer.Option(None, "--init", help="Relative-depth checkpoint to start from: an official .pth "
                                                  "(pretrained.*/depth_head.*) or dabench train's final.safetensors."),
    random_init: bool = typer.Option(False, "--random-init", help="Start from a RANDOM relative model instead of "
                                                                  "--init (--arch, or the config's arch: da2_test "
                                                                  "for --preset tiny; tests the pipeline, not a "
                                                                  "transfer result)."),
    out: Path = typer.Option(None, "--out", "-o", help="Run folder (checkpoints, logs, final.safetensors). "
                                                 "Default: runs/finetune-metric/<arch>_<head>_<dataset>."),
    preset: str = typer.Option("paper", "--preset", help="paper (the authors' ZoeDepth / V2 recipe) or tiny (CPU smoke run)."),
    arch: str = typer.Option(None, "--arch", help="Relative architecture of --init when it is an official .pth whose "
                                                  "name does not tell (e.g. da2_vits14), or the one --random-init "
                                                  "builds."),
    config: Path = typer.Option(None, "--config", help="A dabench/configs/heads/metric-style mmengine config file instead of "
                                                       "dabench/configs/heads/metric/{head}_{dataset}.py."),
    cfg_option: list[str] = typer.Option(None, "--cfg-option", help="Override a config key, e.g. optimizer.lr=1e-4 "
                                                                    "(repeatable; values read as JSON, else as "
                                                                    "mmengine's DictAction does; checked against "
                                                                    "the typed config before anything runs)."),
    iters: int = typer.Option(None, "--iters", help="Override the number of optimiser steps (schedule.steps)."),
    steps: int = typer.Option(None, "--steps", hidden=True, help="Deprecated spelling of --iters."),
    batch_size: int = typer.Option(None, "--batch-size", help="Override the per-GPU batch size (train.batch_size)."),
    seed: int = typer.Option(None, "--seed", help="Data-order, augmentation and --random-init seed (train.seed)."),
    data_root: Path = typer.Option(None, "--data-root", help="Datasets folder (default $DABENCH_DATA)."),
    resume: bool = typer.Option(False, "--resume", help="Continue the run in --out from its newest checkpoint."),
    force: bool = typer.Option(False, "--force", help="Write into an existing --out that dabench did not create."),
    device: str = typer.Option(None, "--device", help="cpu, cuda, cuda:1 (default: CUDA when available)."),
    evaluate: bool = typer.Option(True, "--eval/--no-eval", help="Score the held-out split after training (at "
                                                                 "the training input size)."),
    skip_missing: bool = typer.Option(False, "--skip-missing", help="Skip (and count in config.json and the record) "
                                                                    "split entries whose files are missing, instead "
                                                                    "of stopping with an error naming the first one."),
    baseline: bool = typer.Option(False, "--baseline", help="Also score the training set's median depth predicted "
                                                            "everywhere (the floor a metric model must beat)."),
    name: str = typer.Option(None, "--name", help="Name the final checkpoint is registered under (and the results "
                                                  "record's model label)."),
    results_dir: Path = typer.Option(None, "--results", help="Results directory (default $DABENCH_HOME/results)."),
):
    """Fine-tune a relative Depth Anything model into a metric-depth model, then evaluate it.

    Examples:

      dabench finetune metric --dataset synthetic-indoor --head zoe --init runs/tiny/student/final.safetensors --preset tiny --baseline

      dabench finetune metric --dataset synthetic-indoor --head zoe --preset tiny --random-init --iters 2

      dabench finetune metric --dataset nyu --head zoe --init runs/tiny/student/final.safetensors --preset tiny --data-root /data --skip-missing

      torchrun --nproc_per_node 8 -m dabench finetune metric --dataset nyu --head zoe --init depth_anything_vitl14.pth --out runs/nyu
    """
    from rich.console import Console
    from rich.table import Table

    from dabench.console import print_table
    from dabench.finetune.metric import finetune_metric, prepare
    from dabench.finetune.metric_eval import median_depth_baseline, training_input_size
    from dabench.overrides import parse_cfg_options

    if device is not None:
        from dabench.models.inference import resolve_device

        resolve_device(device)  # before the --init checkpoint or any data is read
    overrides = parse_cfg_options(cfg_option)
    if iters is not None and steps is not None and iters != steps:
        raise ConfigError(f"--iters {iters} and --steps {steps} disagree (--steps is the old spelling of --iters)")
    iters = iters if iters is not None else steps
    # the flags are overrides of typed config keys: checked (type and range, naming the key) with the rest
    for key, value in (("schedule.steps", iters), ("train.batch_size", batch_size), ("train.seed", seed)):
        if value is not None:
            overrides[key] = value
    # every user-caused problem surfaces here, before any folder is claimed or anything is built or trained
    prep = prepare(dataset, head, init, preset=preset, arch=arch, config_file=config, overrides=overrides,
                   data_root=data_root, random_init=random_init)
    if out is None:
        out = Path("runs") / "finetune-metric" / (f"{prep.arch}_{head}_{dataset}" + ("_tiny" if preset == "tiny" else ""))
    from dabench.safety import claim_out_dir

    claim_out_dir(out, command="finetune metric", resume=resume, force=force)
    result = finetune_metric(dataset, head, init, out, preset=preset, arch=prep.arch, config_file=config,
                             overrides=overrides, data_root=data_root, resume=resume, device=device,
                             evaluate=evaluate, results_dir=results_dir, run_name=name, skip_missing=skip_missing,
                             random_init=random_init)
    from dabench.train.distributed import dist_info, shutdown_distributed

    base_rec = None
    if baseline:  # every rank takes part (the evaluation shards and reduces under torchrun)
        base_rec = median_depth_baseline(dataset, result.config, data_root=data_root, results_dir=results_dir,
                                         device=str(dist_info().device), skip_missing=skip_missing)
    is_main = dist_info().is_main
    shutdown_distributed()
    if not is_main:
        return
    console = Console()
    if result.train_skipped_missing:
        console.print(f"[yellow]{dataset}: {result.train_skipped_missing} training entries are missing on disk and were "
                      "skipped (--skip-missing; counted in config.json and the record)[/yellow]")
    console.print(f"final weights: {result.checkpoint}")
    if result.registered is not None:
        console.print(f"registered as: {result.registered}")
    rows = []
    if result.metrics:
        rows.append(("fine-tuned", result.metrics))
    if base_rec is not None:
        console.print(f"median-depth baseline: {base_rec['config']['median_depth']:.4f} m (training-set median) "
                      f"predicted everywhere")
        rows.append(("median baseline", base_rec["metrics"]))
    if rows:
        from dabench.metrics.registry import get_metric

        table = Table(title=f"held-out {dataset} ({result.config.data.eval_split} split, metric depth, "
                            f"input {training_input_size(result.config)} px as trained)")
        table.add_column("metric", no_wrap=True)
        for label, _ in rows:
            table.add_column(label, justify="right", no_wrap=True)
        for c in ["delta1", "delta2", "delta3", "abs_rel", "sq_rel", "rmse", "rmse_log", "log10", "silog"]:
            spec = get_metric(c)
            table.add_row(f"{spec.display} {spec.arrow}", *[("-" if m.get(c) is None else f"{m[c]:.4f}") for _, m in rows])
        print_table(table, console)
