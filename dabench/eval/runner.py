"""The suite runner: suite → dataset → model → align → metrics → results records → table.

Python API (used by the CLI and by the training / fine-tuning / bench code)::

    from dabench.eval.runner import run_suite, evaluate_dataset
    records = run_suite("zero-shot", models=["da2_test"], random_init=True, limit=4)

``evaluate_dataset(model, dataset, protocol)`` is the lower level: it streams one dataset through
one model and returns ``(metrics, sample_counts)``; ``run_suite`` adds model/dataset resolution,
dataset fallbacks, the prediction cache, records, per-sample CSVs and the printed table.

The run is split by what each part does, in the order data flows:

- ``runner`` (this module): ``run_suite`` (checks, models, dispatch through ``dabench.tasks.TASKS``)
  and the depth task (``run_depth_task``: process group, every model on every dataset);
- ``plan``: which datasets are scored (on disk, synthetic stand-ins, or a missing-data error);
- ``models``: which models a depth suite cannot score, and a built model's record facts;
- ``loop``: one dataset through one model (batches, prediction cache, ranks);
- ``scoring``: one sample (evaluation mask, crops, alignment, the depth metrics; its rules are in
  that module's doc);
- ``records``: record skeletons, per-sample CSVs, ``--log-samples`` arrays, the run manifest.

Their public names stay importable from here (``score_sample``, ``evaluate_dataset``, ...).
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Sequence

from dabench.errors import ConfigError, DataError
from dabench.eval.loop import DatasetResult, evaluate, evaluate_dataset, predict_images  # noqa: F401
from dabench.eval.models import check_label_clash, is_seg_checkpoint, metric_mismatch, model_facts
from dabench.eval.plan import plan_datasets, split_size  # noqa: F401
from dabench.eval.records import base_record, clean_value, data_source, sample_logger, write_manifest, write_samples_csv
from dabench.eval.scoring import SAMPLE_STATUSES, eval_valid_mask, prepare_sample, score_sample  # noqa: F401
from dabench.eval.suites import Suite, load_suite, resolve_protocol
from dabench.metrics.registry import depth_engine_metrics
# One model resolver for every command; ModelRun, resolve_models, ... stay importable from here.
from dabench.models.resolve import (ModelRun, build_model, checkpoint_label, local_checkpoints,  # noqa: F401
                                    local_checkpoints_hint, model_provenance, resolve_models)
from dabench.results.tables import print_suite_table
from dabench.tasks import TASKS, TaskRequest


def run_suite(suite: str | os.PathLike | Suite, models: Sequence[str] | str | None = None,
              checkpoint: str | os.PathLike | None = None, random_init: bool = False,
              data_root: str | os.PathLike | None = None, datasets: Sequence[str] | str | None = None,
              limit: int | None = None, batch_size: int = 4, device: str = "cpu", flip_tta: bool | None = None,
              results_dir: str | os.PathLike | None = None, seed: int = 0, amp_dtype: str | None = None,
              use_cache: bool = True, num_workers: int = 0, show_progress: bool = True,
              print_table: bool = False, console=None, name: str | None = None,
              skip_missing: bool = False, input_size: int | None = None,
              model_options: dict | None = None, allow_fallback: bool = False,
              bootstrap: int = 1000, log_samples: bool = False, table_console=None) -> list[dict]:
    """Run ``suite`` for each model; write one record (+ per-sample CSV) per (model, dataset).

    Returns the records (on every rank; only rank 0 writes files). Every call is one run with a run
    id (``record["run_id"]``): its records are kept under ``runs/<run_id>/`` of the results
    directory and the latest view is updated (a ``limit`` that cuts a split writes
    ``<dataset>.partial.json`` beside, never over, the complete record).

    Datasets not on disk: with no data root at all (no ``data_root``, no ``$DABENCH_DATA``) they get
    a ``status: "skipped"`` record and their card's synthetic ``fallback`` runs once per suite with
    ``fallback_for`` naming them; once a data root is given a missing dataset is a ``MissingFileError``
    naming the expected folder and layout, unless ``allow_fallback``.
    ``bootstrap``: resamples of the per-image 95 % CIs (``record["ci"]``; 0 = none), seeded by ``seed``.
    ``log_samples``: keep each sample's prediction as ``.npz`` (layout: docs/results.md, "Per-sample
    predictions"): True, float16 arrays to look at; ``"pred"``, float32 raw predictions only, for
    ``dabench rescore`` (``dabench.eval.samplelog``). The table goes to ``table_console``, else ``console``, else stdout. The suite's task runs through ``dabench.tasks.TASKS`` (depth
    tasks: :func:`run_depth_task`; ``segmentation``: mmseg, in the fine-tuning code). ``name`` relabels a single model in the records
    (default: the registered name, or a local checkpoint's file stem). A split entry whose files are
    missing stops the run with an error naming it, unless ``skip_missing`` (then it is counted in the
    record's ``samples.skipped_missing``). ``input_size`` overrides the suite's (default: each model's
    native size, ``model.input_size``: 518 for the official weights, the training size for dabench's).
    """
    from rich.console import Console

    from dabench.provenance import data_root as _data_root, default_results_dir
    from dabench.results.record import make_run_id

    suite = load_suite(suite)
    table_console = table_console or console or Console()  # the table goes to stdout unless a console is given
    console = console or Console(stderr=True)
    if device in (None, "auto"):
        import torch

        device = "cuda" if torch.cuda.is_available() else "cpu"
    else:
        from dabench.models.inference import resolve_device

        resolve_device(device)  # `--device cuda` without CUDA: one line, before any model or data loads
    from dabench.models.inference import check_input_size

    check_input_size(input_size)  # positive and within the pixel cap; the patch multiple per model
    if limit is not None and limit < 1:
        raise ConfigError(f"--limit must be >= 1, got {limit}")
    if batch_size < 1:
        raise ConfigError(f"--batch-size must be >= 1, got {batch_size}")
    if bootstrap < 0:
        raise ConfigError(f"--bootstrap must be >= 0 resamples, got {bootstrap}")
    results_dir = Path(results_dir) if results_dir else default_results_dir()
    root = _data_root(data_root)
    if isinstance(datasets, str):
        datasets = [d for d in datasets.split(",") if d]
    selected = list(suite.dataset_names)
    if datasets:
        unknown = [d for d in datasets if d not in suite.dataset_names]
        if unknown:
            raise ConfigError(f"suite {suite.name!r} has no dataset {', '.join(map(repr, unknown))}; "
                              f"its datasets: {', '.join(suite.dataset_names)}")
        selected = [d for d in suite.dataset_names if d in datasets]
    runs = resolve_models(models, checkpoint, random_init, model_options)
    if name:  # the label records and tables use (e.g. two checkpoints of one architecture)
        if len(runs) != 1:
            raise ConfigError(f"--name labels one model; {len(runs)} models were selected")
        runs[0].label = name
        runs[0].named = True
    if log_samples and TASKS.meta(suite.task)["metric_task"] not in ("depth", "depth_da2"):
        raise ConfigError(f"--log-samples keeps per-sample depth maps; the {suite.task} suite {suite.name!r} has none "
                          "to keep (its per-pair / per-sample results are already written beside each record as "
                          "a CSV); drop the flag")
    check_output_locations(results_dir, suite, runs, selected)
    request = TaskRequest(datasets=selected, root=root, results_dir=results_dir, limit=limit, batch_size=batch_size,
                          device=device, flip_tta=flip_tta, seed=seed, amp_dtype=amp_dtype, use_cache=use_cache,
                          num_workers=num_workers, show_progress=show_progress, print_table=print_table,
                          console=console, skip_missing=skip_missing, input_size=input_size,
                          allow_fallback=allow_fallback, bootstrap=bootstrap, log_samples=log_samples,
                          run_id=make_run_id(salt=suite.name), table_console=table_console)
    records = TASKS.get(suite.task)(suite, runs, request)
    if int(os.environ.get("RANK", "0")) == 0:  # the process group may be gone: ask the launcher's env
        write_manifest(results_dir, request.run_id, suite, records, limit, seed)
    return records


def check_output_locations(results_dir: Path, suite: Suite, runs: list[ModelRun], selected: list[str]) -> None:
    """Before any work: every record path stays inside ``--results`` (a name that would leave it is
    refused), ``--results`` and the folders a run creates in it (``<suite>/``, ``<suite>/<model>/``,
    ``runs/``) are not files, and no record file to be written is a folder."""
    from dabench.results.store import RUNS_DIR, record_path, safe_name
    from dabench.safety import check_out_dir

    subdirs = [safe_name(suite.name), RUNS_DIR] + [f"{safe_name(suite.name)}/{safe_name(r.label)}" for r in runs]
    check_out_dir(results_dir, "--results", subdirs=tuple(subdirs))
    for run in runs:
        for ds in selected:
            for partial in (False, True):
                p = record_path(results_dir, suite.name, run.label, ds, partial=partial)
                if p.is_dir():
                    raise ConfigError(f"--results {results_dir}: {p} is a folder where dabench writes a record file; "
                                      "move it or choose another --results")


def rescue_record(rec: dict, rows: list[dict], error: BaseException) -> Path:
    """Save a finished evaluation whose record could not be written (``cache_dir()/rescued/``), so no
    failure after the work loses it; returns the file."""
    import hashlib
    import json as _json

    from dabench.provenance import atomic_write_bytes, cache_dir

    key = hashlib.sha256(repr((rec.get("run_id"), rec.get("model"), rec.get("dataset"))).encode(
        "utf-8", "surrogateescape")).hexdigest()[:16]
    path = cache_dir() / "rescued" / f"{key}.json"
    body = {"error": f"{type(error).__name__}: {error}", "record": {k: v for k, v in rec.items() if k != "_path"},
            "rows": rows}
    atomic_write_bytes(path, _json.dumps(body, default=str).encode("utf-8", "surrogateescape"))
    return path


def run_depth_task(suite: Suite, runs: list[ModelRun], request: TaskRequest) -> list[dict]:
    """The ``relative`` and ``metric`` tasks (registered in ``dabench.tasks.TASKS``): every model on every
    selected dataset, sharded over ranks under torch.distributed; records, per-sample CSVs, table."""
    from mmengine import dist

    r = request
    device, own_pg = _init_process_group(r.device)
    rank, ws = dist.get_dist_info()
    box = [r.run_id]
    dist.broadcast_object_list(box, src=0)  # rank 0's run id on every rank (no-op without a process group)
    r.run_id = box[0]
    try:
        return _run_depth_suite(suite, runs, r.datasets, r.root, r.limit, r.batch_size, device, r.flip_tta,
                                r.results_dir, r.seed, r.amp_dtype, r.use_cache, r.num_workers,
                                r.show_progress and rank == 0, r.print_table and rank == 0, r.console, rank, ws,
                                r.skip_missing, r.input_size, allow_fallback=r.allow_fallback,
                                bootstrap=r.bootstrap, log_samples=r.log_samples, run_id=r.run_id,
                                table_console=r.table_console)
    finally:
        if own_pg:
            import torch.distributed as tdist

            tdist.destroy_process_group()


def _init_process_group(device: str) -> tuple[str, bool]:
    """Initialise torch.distributed when launched by torchrun with WORLD_SIZE > 1 (gloo on CPU, nccl
    on CUDA, each rank on ``cuda:LOCAL_RANK``). Returns ``(device, initialised_here)``. (mmengine's
    ``init_dist`` always selects a CUDA device, so CPU runs initialise here; everything after uses
    ``mmengine.dist``, which also works without a process group.)"""
    import torch
    import torch.distributed as tdist

    if int(os.environ.get("WORLD_SIZE", "1")) <= 1 or (tdist.is_available() and tdist.is_initialized()):
        return device, False
    cuda = str(device).startswith("cuda")
    if cuda:
        local = int(os.environ.get("LOCAL_RANK", "0"))
        torch.cuda.set_device(local)
        device = f"cuda:{local}"
    tdist.init_process_group(backend="nccl" if cuda else "gloo")
    return device, True


def _run_depth_suite(suite, runs, selected, root, limit, batch_size, device, flip_tta, results_dir, seed,
                     amp_dtype, use_cache, num_workers, show_progress, print_table, console, rank, ws,
                     skip_missing=False, input_size=None, allow_fallback=False, bootstrap=1000,
                     log_samples=False, run_id=None, table_console=None):
    """Every model of ``runs`` on every planned dataset: one record (+ per-sample CSVs) each, written
    by rank 0; the table at the end."""
    from dabench.data import build_dataset, load_card
    from dabench.eval.cache import PredictionCache
    from dabench.models.checkpoint import read_metadata  # noqa: F401  (fails early if models is broken)
    from dabench.results.record import make_selection
    from dabench.results.stats import DEFAULT_CONFIDENCE, record_cis
    from dabench.eval.samplelog import log_mode
    from dabench.results.store import run_dir, samples_csv_path, write_record

    plan, skipped = plan_datasets(suite, selected, root, allow_fallback)
    if log_samples and run_id and rank == 0:  # what the logs will weigh, before any work
        from dabench.eval.samplelog import announce_log_size

        announce_log_size(console, suite, plan, root, limit, skip_missing,
                          {"flip_tta": flip_tta, "input_size": input_size}, len(runs), log_samples,
                          run_dir(results_dir, run_id) / "samples")
    config = {"suite": suite.name, "suite_path": suite.path, "data_root": str(root) if root else None,
              "datasets": selected, "limit": limit, "batch_size": batch_size, "device": str(device),
              "amp_dtype": amp_dtype, "flip_tta_override": flip_tta, "world_size": ws, "cache": use_cache,
              "skip_missing": skip_missing, "input_size_override": input_size, "allow_fallback": allow_fallback,
              "bootstrap": bootstrap, "log_samples": log_samples}
    records: list[dict] = []
    for run in runs:
        if run.checkpoint and is_seg_checkpoint(run.checkpoint):  # seg heads are scored by seg-* suites (issue 7)
            if rank == 0:
                console.print(f"[yellow]skipping {run.label}:[/yellow] a segmentation checkpoint; use a seg-* suite")
            continue
        model = build_model(run, seed)
        model_fields = model_provenance(run, model)
        facts = model_facts(run, model, model_fields)  # model_revision filled in before the clash check
        check_label_clash(results_dir, suite, run, [ds for ds, _ in plan] + [s["dataset"] for s in skipped],
                          model_fields)
        output_space = model_fields["output_space"]
        msg = metric_mismatch(suite, run, model_fields)
        if msg:
            if len(runs) == 1:
                raise ConfigError(msg)
            if rank == 0:
                console.print(f"[yellow]skipping {run.label}:[/yellow] {msg}")
            continue
        if run.random_init and rank == 0:
            console.print(f"[bold red]WARNING: {run.label} runs with RANDOM weights (--random-init): its numbers are "
                          "meaningless and only test the pipeline.[/bold red]")
        n_params, ck_sha, fp = facts.n_params, facts.checkpoint_sha256, facts.fingerprint
        for sk in skipped:
            card = load_card(sk["dataset"])
            rec = base_record(suite, run, sk["dataset"], resolve_protocol(suite, sk["dataset"], card),
                               config, seed, n_params, ck_sha, run_id, model_fields=model_fields)
            rec.update(status="skipped", skip_reason=sk["reason"], fallback=sk["fallback"])
            if rank == 0:
                write_record(rec, results_dir)
            records.append(rec)
        for ds, fb in plan:
            card = load_card(ds)
            proto = resolve_protocol(suite, ds, card, overrides={"flip_tta": flip_tta, "input_size": input_size},
                                     in_suite=ds in suite.dataset_names).for_model(model)
            # real-set readers mask ground truth outside a depth range: give them the protocol's
            extra = {} if card.get("reader") == "synthetic" else {"depth_range": (proto.min_depth, proto.max_depth)}
            dataset = build_dataset(ds, split=proto.split, data_root=root, limit=limit, skip_missing=skip_missing,
                                    **extra)
            cache = PredictionCache(enabled=use_cache)
            logger = (sample_logger(results_dir, run_id, run.label, ds, mode=log_mode(log_samples),
                                    output_space=output_space) if (log_samples and run_id) else None)
            kw = dict(output_space=output_space, batch_size=batch_size, device=device, amp_dtype=amp_dtype,
                      cache=cache, model_fp=fp, num_workers=num_workers, log_sample=logger)
            if show_progress:
                from dabench.progress import progress_bar

                with progress_bar(console) as prog:
                    res = evaluate(model, dataset, proto, progress=prog, description=f"{run.label} · {ds}", **kw)
            else:
                res = evaluate(model, dataset, proto, **kw)
            rec = base_record(suite, run, ds, proto, config, seed, n_params, ck_sha, run_id,
                               data_source(card, root, fb), model_fields=model_fields)
            rec["samples"] = {k: res.counts[k] for k in ("used", "skipped_no_valid", "skipped_degenerate",
                                                         "skipped_missing")}
            rec["split"] = proto.split or getattr(dataset, "split", None)
            rows = res.rows or []
            if rank == 0:
                n_total = split_size(ds, proto.split, root, dataset, limit)
                rec["selection"] = make_selection(limit, [r["name"] for r in rows], len(rows), n_total)
            if res.counts["used"] == 0:
                rec.update(status="skipped", skip_reason=f"no sample of {ds} had valid pixels to score "
                                                         f"({res.counts['total']} samples)")
            else:
                rec["metrics"] = {k: clean_value(v) for k, v in res.metrics.items()}
                rec["metrics_pixel_pooled"] = {k: clean_value(v) for k, v in res.metrics_pixel_pooled.items()}
                if rank == 0 and bootstrap > 0:  # rows are every rank's samples, gathered: exact under DDP
                    rec["ci"] = record_cis(rows, depth_engine_metrics(proto.metric_family), rec["averaging"],
                                           bootstrap, seed)
                    rec["bootstrap"] = {"method": "percentile", "over": "images", "resamples": bootstrap,
                                        "confidence": DEFAULT_CONFIDENCE, "seed": seed}
            rec["cache"] = {"hits": res.cache_hits, "misses": res.cache_misses}
            rec["seconds"] = round(res.seconds, 3)
            if rank == 0:
                try:
                    path = write_record(rec, results_dir)
                    write_samples_csv(samples_csv_path(path), rows, proto.metric_family)
                    from dabench.results.store import history_path

                    write_samples_csv(samples_csv_path(history_path(results_dir, rec)), rows, proto.metric_family)
                except (OSError, UnicodeError) as e:  # the evaluation is done: keep it, then say where it is
                    saved = rescue_record(rec, rows, e)
                    raise DataError(f"could not write the record of {run.label} on {ds} under {results_dir} "
                                    f"({type(e).__name__}: {e}); the finished evaluation was saved to {saved}") from None
                rec["_path"] = str(path)
            if res.counts["skipped_missing"] and rank == 0:
                console.print(f"[yellow]{ds}: {res.counts['skipped_missing']} samples listed in the split are "
                              "missing on disk (counted in samples.skipped_missing)[/yellow]")
            records.append(rec)
        del model
    if print_table and records:
        print_suite_table(records, suite, console=table_console)
    return records
