"""`dabench run` (evaluate suites), `dabench ls metrics` and `dabench ls suites`."""
from __future__ import annotations

from pathlib import Path
from typing import List, Optional

import typer

from dabench.cli._app import app
from dabench.cli.ls import ls_app


@app.command("run")
def run_cmd(
    suite: str = typer.Option("zero-shot", "--suite", "-s", help="suite name (dabench ls suites) or path to a suite YAML"),
    model: Optional[List[str]] = typer.Option(None, "--model", "-m",
                                              help="model(s), repeatable or comma-separated, all scored in one table: "
                                                   "a registered name (dabench ls models), a local checkpoint stem, "
                                                   "hf:<folder or hub id> (transformers), diffusers:<folder or hub "
                                                   "id> (Marigold); default: every local checkpoint plus the baselines"),
    checkpoint: Optional[Path] = typer.Option(None, "--checkpoint", "-c",
                                              help="weights of the one dabench network among --model (.pth, "
                                                   ".safetensors, or a transformers Depth Anything folder)"),
    model_option: Optional[List[str]] = typer.Option(None, "--model-option",
                                                     help="KEY=VALUE for the hf:/diffusers:/plug-in models, "
                                                          "repeatable (e.g. ensemble_size=10)"),
    random_init: bool = typer.Option(False, "--random-init", help="random weights: tests the pipeline, numbers are meaningless"),
    data_root: Optional[Path] = typer.Option(None, "--data-root", help="datasets root (default $DABENCH_DATA)"),
    datasets: Optional[str] = typer.Option(None, "--datasets", "-d", help="comma-separated subset of the suite's datasets"),
    limit: Optional[int] = typer.Option(None, "--limit", "-n", help="first N samples of each dataset"),
    batch_size: str = typer.Option("4", "--batch-size", "-b",
                                   help="images per forward pass, or auto: the largest that fits the device for "
                                        "each dataset's input size (docs/performance.md)"),
    device: str = typer.Option("auto", "--device", help="auto | cpu | cuda | cuda:1 ..."),
    flip_tta: Optional[bool] = typer.Option(None, "--flip-tta/--no-flip-tta", help="override the suite's flip TTA"),
    results: Optional[Path] = typer.Option(None, "--results", "-o", help="results directory (default $DABENCH_HOME/results)"),
    seed: int = typer.Option(0, "--seed"),
    amp: str = typer.Option("fp32", "--precision", "--amp",
                            help="autocast dtype: fp32 (= none) | bf16 | fp16 (same flag as dabench predict)"),
    no_cache: bool = typer.Option(False, "--no-cache", help="do not read or write the prediction cache"),
    workers: Optional[int] = typer.Option(None, "--workers", help="DataLoader worker processes that read and crop "
                                          "samples (default: from the usable cores and local ranks, as training; "
                                          "0: in this process)"),
    max_pixels: Optional[int] = typer.Option(None, "--max-pixels", help="Refuse images and depth maps larger than "
                                             "this many pixels, read from the header before decoding (default "
                                             "64000000, or $DABENCH_MAX_PIXELS)."),
    input_size: Optional[int] = typer.Option(None, "--input-size",
                                             help="target side fed to the network (pixels, a multiple of the model's "
                                                  "patch size, e.g. 14); default: the "
                                                  "suite's, else each model's native size (518 for official weights, "
                                                  "the training size for dabench checkpoints)"),
    skip_missing: bool = typer.Option(False, "--skip-missing",
                                      help="skip (and count in the records) split entries whose files are missing, "
                                           "instead of stopping with an error naming the first one"),
    name: Optional[str] = typer.Option(None, "--name", help="label for the records of a single model "
                                                            "(default: the model name or checkpoint stem)"),
    allow_fallback: bool = typer.Option(False, "--allow-fallback",
                                        help="with a data root given, score a missing dataset's synthetic stand-in "
                                             "(recorded as a fallback) instead of stopping with an error"),
    bootstrap: int = typer.Option(1000, "--bootstrap", help="bootstrap resamples for the 95% CIs of the per-image "
                                                            "metrics (0 = none)"),
    log_samples: bool = typer.Option(False, "--log-samples",
                                     help="keep every sample's prediction as float16 .npz under "
                                          "<results>/runs/<run id>/samples/<model>/<dataset>/; "
                                          "--log-samples=pred keeps only the float32 raw predictions "
                                          "that `dabench rescore` and `dabench sensitivity` need"),
    log_samples_mode: Optional[str] = typer.Option(None, "--log-samples-mode", hidden=True,
                                                   help="what --log-samples=MODE becomes (dabench.cli._app)"),
) -> None:
    """Evaluate models on a suite: one results record (+ per-sample CSV) per (model, dataset), then a table.

    With no data root (no --data-root, no $DABENCH_DATA) the real datasets are recorded as skipped and
    their synthetic stand-ins run; with a data root, a missing dataset is an error unless --allow-fallback.
    A --limit run is partial: written beside (never over) the complete records. Every run gets a run id
    and keeps its records under <results>/runs/ (dabench results ls --history).
    Predictions are cached under $DABENCH_HOME/cache, so a rerun skips finished work.
    Distributed: torchrun --nproc_per_node=2 -m dabench run ...

    Example: dabench run --suite zero-shot --model da2_vits14 --checkpoint depth_anything_v2_vits.pth --data-root /data

    Example: dabench run --suite synthetic --model da2_test --random-init --limit 4

    Example: dabench run --suite zero-shot --model da2_vits14 --checkpoint X.pth --model hf:./dpt-large --model hf:./zoedepth-nyu-kitti
    Example: dabench run --suite zero-shot --model da2_vits14 -c w.pth --data-root /data --allow-fallback --log-samples

    Example: dabench run --suite synthetic --model horizon_prior,constant --log-samples=pred  (then dabench rescore)
    """
    from dabench.data.formats import set_max_pixels
    from dabench.eval.runner import run_suite
    from dabench.eval.samplelog import log_mode
    from dabench.models.resolve import parse_model_options
    from dabench.tasks import EvalRequest

    set_max_pixels(max_pixels)
    if log_samples_mode is not None:  # --log-samples=MODE (dabench.cli._app)
        log_samples = True if log_mode(log_samples_mode) == "all" else log_mode(log_samples_mode)

    models = [m for item in (model or []) for m in item.split(",") if m] or None
    request = EvalRequest(data_root=data_root, datasets=datasets, limit=limit, batch_size=batch_size, device=device,
                          amp_dtype=None if amp in ("none", "fp32") else amp, flip_tta=flip_tta,
                          use_cache=not no_cache, skip_missing=skip_missing, input_size=input_size,
                          allow_fallback=allow_fallback, bootstrap=bootstrap, log_samples=log_samples,
                          results_dir=results, seed=seed, num_workers=workers,
                          checkpoint=str(checkpoint) if checkpoint else None, random_init=random_init,
                          model_options=parse_model_options(model_option), name=name, print_table=True)
    run_suite(suite, request, models=models)


@ls_app.command("metrics")
def ls_metrics(task: Optional[str] = typer.Option(None, "--task", help="a metric family: depth | depth_da2 | "
                                                  "ordinal | segmentation")) -> None:
    """List the registered metrics: direction, averaging, unit, definition.

    Example: dabench ls metrics --task depth
    """
    from rich.table import Table

    from dabench.console import print_table
    from dabench.errors import ConfigError
    from dabench.metrics.registry import METRICS, get_metric, list_metrics

    families = sorted({get_metric(n).task for n in METRICS.names()})
    if task is not None and task not in families:
        raise ConfigError(f"unknown metric task {task!r}; valid: {', '.join(families)}")
    table = Table(title="metrics")
    for col in ("name", "display", "better", "averaging", "unit", "task", "definition"):
        table.add_column(col, overflow="fold")
    for name in list_metrics(task):
        s = get_metric(name)
        table.add_row(s.name, s.display, "higher ↑" if s.higher_is_better else "lower ↓",
                      {"image": "per image", "pixel": "pixel-pooled", "pair": "pair-pooled"}[s.averaging],
                      s.unit or "-", s.task, s.description)
    print_table(table)


@ls_app.command("protocols")
def ls_protocols(suite: Optional[str] = typer.Option(None, "--suite", help="one suite (default: every depth and "
                                                     "ordinal suite)"),
                 markdown: bool = typer.Option(False, "--markdown", help="print it as a Markdown table (the docs' Protocols page)")) -> None:
    """Per suite and dataset: alignment, score space, depth range, crop, the resolution the alignment
    is fitted at, split size and the source of the protocol.

    Example: dabench ls protocols --suite marigold
    """
    from rich.table import Table

    from dabench.console import print_table
    from dabench.eval.protocol_table import COLUMNS, protocol_markdown, protocol_rows

    rows = protocol_rows([suite] if suite else None)
    if markdown:
        typer.echo(protocol_markdown(rows), nl=False)
        return
    table = Table(title="protocols")
    for col in COLUMNS:
        table.add_column(col, overflow="fold", no_wrap=col != "source", min_width=24 if col == "source" else None)
    for r in rows:
        table.add_row(*(r[c] for c in COLUMNS))
    print_table(table)


@ls_app.command("suites")
def ls_suites() -> None:
    """List the suites (shipped, and from $DABENCH_CONFIG_PATH folders): task, datasets, reported metrics.

    Example: dabench ls suites
    """
    from rich.table import Table

    from dabench import configs
    from dabench.console import print_table
    from dabench.errors import DabenchError
    from dabench.eval.suites import load_suite

    table = Table(title="suites")
    for col in ("name", "task", "datasets", "primary metrics", "origin", "description"):
        table.add_column(col, overflow="fold")
    for name, entry in configs.entries("suites").items():
        origin = configs.origin_label(entry)
        try:
            s = load_suite(name)
        except DabenchError as e:  # one broken file must not hide the others
            table.add_row(name, "[red]invalid[/red]", "", "", origin, str(e))
            continue
        table.add_row(s.name, s.task, ", ".join(s.dataset_names), ", ".join(s.primary_metrics), origin,
                      s.description)
    print_table(table)
