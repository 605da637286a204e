"""The suite runner: suite → dataset → model → align → metrics → results records → table.

Python API (used by the CLI and by the training / fine-tuning / bench code)::

    from dabench.tasks import EvalRequest
    from dabench.eval.runner import run_suite
    records = run_suite("zero-shot", EvalRequest(random_init=True, limit=4), models=["da2_test"])

``dabench.eval.loop.evaluate_dataset(model, dataset, protocol)`` is the lower level: it streams one
dataset through one model and returns ``(metrics, sample_counts)``; ``run_suite`` adds model/dataset
resolution, dataset fallbacks, the prediction cache, records, per-sample CSVs and the printed table.

The run is split by what each part does, in the order data flows:

- ``dabench.tasks``: the ``EvalRequest`` (the user's choices, frozen), the ``RunContext`` (what the
  run resolved) and the task registry;
- ``runner`` (this module): ``run_suite`` (checks, models, dispatch through ``dabench.tasks.TASKS``)
  and the depth task (``run_depth_task``: process group, every model on every dataset);
- ``plan``: which datasets are scored (on disk, synthetic stand-ins, or a missing-data error);
- ``models``: which models a depth suite cannot score, and a built model's record facts;
- ``loop``: one dataset through one model (batches, prediction cache, ranks);
- ``scoring``: one sample (evaluation mask, crops, alignment, the depth metrics; its rules are in
  that module's doc);
- ``records``: record skeletons, per-sample CSVs, ``--log-samples`` arrays, the run manifest.

Import each name from the module that defines it.
"""
from __future__ import annotations

import os
from dataclasses import replace
from pathlib import Path
from typing import Sequence

from dabench.errors import ConfigError, DataError
from dabench.eval.loop import evaluate
from dabench.eval.models import (camera_mismatch, check_label_clash, is_seg_checkpoint, metric_mismatch,
                                 model_facts)
from dabench.eval.plan import plan_datasets, split_size
from dabench.eval.records import add_scores, base_record, data_source, sample_logger, write_manifest, write_samples_csv
from dabench.eval.suites import Suite, load_suite, resolve_protocol
from dabench.models.resolve import ModelRun, build_model, model_provenance, resolve_models
from dabench.results.record import Record
from dabench.results.tables import print_suite_table
from dabench.tasks import TASKS, EvalRequest, RunContext, check_honoured, record_config, task_honours


def run_suite(suite: str | os.PathLike | Suite, request: EvalRequest | None = None, *,
              models: Sequence | str | None = None, console=None, table_console=None) -> list[Record]:
    """Run ``suite`` for each model under ``request`` (default: ``EvalRequest()``); write one record
    (+ per-sample CSV) per (model, dataset).

    ``models``: registered names, local checkpoint stems, ``hf:``/``diffusers:`` ids or model objects
    (default: every local checkpoint plus the baselines; ``request.checkpoint``, ``random_init``,
    ``model_options`` and ``name`` apply to them). Messages and progress go to ``console`` (default
    stderr), the table (``request.print_table``) to ``table_console``, else ``console``, else stdout.

    Returns the records (on every rank; only rank 0 writes files). Every call is one run with a run
    id (``record["run_id"]``): its records are kept under ``runs/<run_id>/`` of the results
    directory and the latest view is updated (a ``limit`` that cuts a split writes
    ``<dataset>.partial.json`` beside, never over, the complete record).

    Datasets not on disk: with no data root at all (no ``data_root``, no ``$DABENCH_DATA``) they get
    a ``status: "skipped"`` record and their card's synthetic ``fallback`` runs once per suite with
    ``fallback_for`` naming them; once a data root is given a missing dataset is a ``MissingFileError``
    naming the expected folder and layout, unless ``allow_fallback``. The suite's task runs through
    ``dabench.tasks.TASKS`` (depth tasks: :func:`run_depth_task`; ``ordinal``: DA-2K;
    ``segmentation``: mmseg, in the fine-tuning code); a request field the task does not honour
    (``dabench.tasks.task_honours``) is a ``ConfigError`` naming its flag, before any work. The
    fields' meanings: ``dabench.tasks.EvalRequest``.
    """
    from rich.console import Console

    from dabench.provenance import data_root as _data_root, default_results_dir
    from dabench.results.record import make_run_id

    request = request if request is not None else EvalRequest()
    suite = load_suite(suite)
    honours = task_honours(suite.task)
    check_honoured(request, suite.task, honours)
    from dabench.eval.samplelog import log_mode

    log_mode(request.log_samples)  # True, "all" or "pred": anything else is refused before any work
    table_console = table_console or console or Console()  # the table goes to stdout unless a console is given
    console = console or Console(stderr=True)
    device = request.device
    if device in (None, "auto"):
        import torch

        device = "cuda" if torch.cuda.is_available() else "cpu"
    else:
        from dabench.models.inference import resolve_device

        resolve_device(device)  # `--device cuda` without CUDA: one line, before any model or data loads
    from dabench.models.inference import check_input_size

    check_input_size(request.input_size)  # positive and within the pixel cap; the patch multiple per model
    results_dir = request.results_dir or default_results_dir()
    selected = list(suite.dataset_names)
    if request.datasets:
        unknown = [d for d in request.datasets if d not in suite.dataset_names]
        if unknown:
            raise ConfigError(f"suite {suite.name!r} has no dataset {', '.join(map(repr, unknown))}; "
                              f"its datasets: {', '.join(suite.dataset_names)}")
        selected = [d for d in suite.dataset_names if d in request.datasets]
    runs = resolve_models(models, request.checkpoint, request.random_init, dict(request.model_options or {}))
    if request.name:  # the label records and tables use (e.g. two checkpoints of one architecture)
        if len(runs) != 1:
            raise ConfigError(f"--name labels one model; {len(runs)} models were selected")
        runs[0].label = request.name
        runs[0].named = True
    check_output_locations(results_dir, suite, runs, selected)
    ctx = RunContext(datasets=tuple(selected), root=_data_root(request.data_root), results_dir=results_dir,
                     device=device, run_id=make_run_id(salt=suite.name), console=console,
                     table_console=table_console)
    records = TASKS.get(suite.task)(suite, runs, request, ctx)
    if int(os.environ.get("RANK", "0")) == 0:  # the process group may be gone: ask the launcher's env
        write_manifest(results_dir, ctx.run_id, suite, records, request.limit, request.seed)
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


def rescue_record(rec: Record, rows: list[dict], error: BaseException) -> Path:
    """Save a finished evaluation whose record could not be written (``cache_dir()/rescued/``), so no
    failure after the work loses it; returns the file."""
    import hashlib
    import json as _json

    from dabench.provenance import atomic_write_bytes, cache_dir

    key = hashlib.sha256(repr((rec.get("run_id"), rec.get("model"), rec.get("dataset"))).encode(
        "utf-8", "surrogateescape")).hexdigest()[:16]
    path = cache_dir() / "rescued" / f"{key}.json"
    body = {"error": f"{type(error).__name__}: {error}", "record": dict(rec),
            "rows": rows}
    atomic_write_bytes(path, _json.dumps(body, default=str).encode("utf-8", "surrogateescape"))
    return path


def run_depth_task(suite: Suite, runs: list[ModelRun], request: EvalRequest, ctx: RunContext) -> list[Record]:
    """The ``relative`` and ``metric`` tasks (registered in ``dabench.tasks.TASKS``): every model on every
    selected dataset, sharded over ranks under torch.distributed; records, per-sample CSVs, table."""
    from mmengine import dist

    device, own_pg = _init_process_group(ctx.device)
    rank, ws = dist.get_dist_info()
    box = [ctx.run_id]
    dist.broadcast_object_list(box, src=0)  # rank 0's run id on every rank (no-op without a process group)
    try:
        return _run_depth_suite(suite, runs, request, replace(ctx, device=device, run_id=box[0], world_size=ws),
                                rank)
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


def _run_depth_suite(suite: Suite, runs: list[ModelRun], request: EvalRequest, ctx: RunContext,
                     rank: int) -> list[Record]:
    """Every model of ``runs`` on every planned dataset: one record (+ per-sample CSVs) each, written
    by rank 0; the table at the end."""
    from dabench.data import build_dataset, load_card
    from dabench.eval.cache import PredictionCache
    from dabench.models.checkpoint import read_metadata  # noqa: F401  (fails early if models is broken)
    from dabench.results.record import make_selection
    from dabench.eval.samplelog import log_mode
    from dabench.results.store import history_path, run_dir, samples_csv_path, write_record

    r, console, root, results_dir, seed = request, ctx.console, ctx.root, ctx.results_dir, request.seed
    show_progress = r.show_progress and rank == 0
    plan, skipped = plan_datasets(suite, list(ctx.datasets), root, r.allow_fallback)
    if r.log_samples and ctx.run_id and rank == 0:  # what the logs will weigh, before any work
        from dabench.eval.samplelog import announce_log_size

        announce_log_size(console, suite, plan, root, r.limit, r.skip_missing,
                          {"flip_tta": r.flip_tta, "input_size": r.input_size}, len(runs), r.log_samples,
                          run_dir(results_dir, ctx.run_id) / "samples")
    config = record_config(suite, r, ctx, task_honours(suite.task), world_size=ctx.world_size)
    records: list[Record] = []
    for run in runs:
        if run.checkpoint and is_seg_checkpoint(run.checkpoint):  # seg heads are scored by seg-* suites
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
                               config, seed, n_params, ck_sha, ctx.run_id, model_fields=model_fields)
            rec.update(status="skipped", skip_reason=sk["reason"], fallback=sk["fallback"])
            if rank == 0:
                write_record(rec, results_dir)
            records.append(rec)
        for ds, fb in plan:
            card = load_card(ds)
            proto = resolve_protocol(suite, ds, card, overrides={"flip_tta": r.flip_tta, "input_size": r.input_size},
                                     in_suite=ds in suite.dataset_names).for_model(model)
            why = camera_mismatch(model, card, proto, ds)  # a model that needs K, on a set without it
            if why:
                rec = base_record(suite, run, ds, proto, config, seed, n_params, ck_sha, ctx.run_id,
                                  model_fields=model_fields)
                rec.update(status="skipped", skip_reason=why)
                if rank == 0:
                    write_record(rec, results_dir)
                records.append(rec)
                continue
            # real-set readers mask ground truth outside a depth range: give them the protocol's
            extra = {} if card.get("reader") == "synthetic" else {"depth_range": (proto.min_depth, proto.max_depth)}
            dataset = build_dataset(ds, split=proto.split, data_root=root, limit=r.limit, skip_missing=r.skip_missing,
                                    **extra)
            cache = PredictionCache(enabled=r.use_cache)
            logger = (sample_logger(results_dir, ctx.run_id, run.label, ds, mode=log_mode(r.log_samples),
                                    output_space=output_space) if (r.log_samples and ctx.run_id) else None)
            kw = dict(output_space=output_space, batch_size=r.batch_size, device=ctx.device, amp_dtype=r.amp_dtype,
                      cache=cache, model_fp=fp, num_workers=r.num_workers, log_sample=logger)
            if show_progress:
                from dabench.progress import progress_bar

                with progress_bar(console) as prog:
                    res = evaluate(model, dataset, proto, progress=prog, description=f"{run.label} · {ds}", **kw)
            else:
                res = evaluate(model, dataset, proto, **kw)
            rec = base_record(suite, run, ds, proto, config, seed, n_params, ck_sha, ctx.run_id,
                               data_source(card, root, fb), model_fields=model_fields)
            rec["samples"] = {k: res.counts[k] for k in ("used", "skipped_no_valid", "skipped_degenerate",
                                                         "skipped_missing")}
            rec["split"] = proto.split or getattr(dataset, "split", None)
            rows = res.rows or []
            if rank == 0:
                n_total = split_size(ds, proto.split, root, dataset, r.limit)
                rec["selection"] = make_selection(r.limit, [row["name"] for row in rows], len(rows), n_total)
            # rows are every rank's samples, gathered: the intervals (rank 0) are exact under DDP
            add_scores(rec, res, rows, proto, ds, r.bootstrap if rank == 0 else 0, seed)
            rec["cache"] = {"hits": res.cache_hits, "misses": res.cache_misses}
            if r.batch_size == "auto":  # what auto picked for this dataset's input size
                rec["config"] = dict(rec["config"], batch_size_auto=res.batch_size)
            rec["seconds"] = round(res.seconds, 3)
            if rank == 0:
                try:
                    path = write_record(rec, results_dir)
                    write_samples_csv(samples_csv_path(path), rows, proto.metric_family)
                    write_samples_csv(samples_csv_path(history_path(results_dir, rec)), rows, proto.metric_family)
                except (OSError, UnicodeError) as e:  # the evaluation is done: keep it, then say where it is
                    saved = rescue_record(rec, rows, e)
                    raise DataError(f"could not write the record of {run.label} on {ds} under {results_dir} "
                                    f"({type(e).__name__}: {e}); the finished evaluation was saved to {saved}") from None
            if res.counts["skipped_missing"] and rank == 0:
                console.print(f"[yellow]{ds}: {res.counts['skipped_missing']} samples listed in the split are "
                              "missing on disk (counted in samples.skipped_missing)[/yellow]")
            records.append(rec)
        del model
    if r.print_table and rank == 0 and records:
        print_suite_table(records, suite, console=ctx.table_console)
    return records
