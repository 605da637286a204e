"""The suite runner: suite → dataset → model → align → metrics → results records → table.

Python API (used by the CLI and by the training / fine-tuning / bench code)::

    from dabench.eval.runner import run_suite, evaluate_dataset
    records = run_suite("zero-shot", models=["da2_test"], random_init=True, limit=4)

``evaluate_dataset(model, dataset, protocol)`` is the lower level: it streams one dataset through
one model and returns ``(metrics, sample_counts)``; ``run_suite`` adds model/dataset resolution,
dataset fallbacks, the prediction cache, records, per-sample CSVs and the printed table.

Scoring one sample (``score_sample``), with ``gt`` in metres:

1. valid = card mask & finite & ``min_depth < gt < max_depth`` & evaluation crop.
2. A NaN/inf anywhere in the raw prediction is a ``DataError`` naming the sample.
3. The raw output is brought into the space the alignment reads (``median``/``scale``/
   ``scale_shift_depth`` read depth, ``scale_shift_disparity`` reads disparity, ``none`` keeps the
   model's space) by a reciprocal with a floor of 1e-8 when the spaces differ.
4. ``align`` fits on the valid pixels of this image.
5. Conversion to the score space and clamping to the protocol's range:
   disparity alignment scored in disparity → clamp to [1/max_depth, 1/floor], gt → 1/gt (DA authors);
   disparity alignment scored in depth → disparity clamped at 1/depth_cap (default max_depth) and
   inverted (MiDaS), then floored at ``floor``;
   depth prediction → clamped to [floor, max_depth], inverted if scored in disparity.
   ``floor`` is the protocol's ``pred_floor`` (metric suites: ``min_depth``, as ZoeDepth; relative:
   ``min_depth``, 1e-3 m when a card sets 0). ``alignment_max_res`` fits step 4 on Marigold's subsample.
6. The nine depth metrics of the image go into a ``DepthMetricState``.
"""
from __future__ import annotations

import csv
import io
import math
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from dabench.errors import ConfigError, DataError
from dabench.eval.align import ALIGNMENT_INPUT_SPACE, DegenerateAlignmentError, align
from dabench.eval.suites import Protocol, Suite, load_suite, resolve_protocol
from dabench.metrics.registry import depth_engine_metrics
from dabench.models.inference import resolve_amp_dtype
# One model resolver for every command; ModelRun, resolve_models, ... stay importable from here.
from dabench.models.resolve import (ModelRun, build_model, checkpoint_label, local_checkpoints,  # noqa: F401
                                    local_checkpoints_hint, model_provenance, resolve_models)
from dabench.results.tables import print_suite_table
from dabench.tasks import METRIC_DEPTH_TASKS, TASKS, TaskRequest

_RECIPROCAL_FLOOR = 1e-8
SAMPLE_STATUSES = ("ok", "skipped_no_valid", "skipped_degenerate")


# ----------------------------------------------------------------------------------------------
# one sample
# ----------------------------------------------------------------------------------------------
def eval_valid_mask(sample: dict, protocol: Protocol) -> np.ndarray:
    """Pixels scored for this sample: the card's mask, finite gt inside (min_depth, max_depth), eval crop."""
    gt = np.asarray(sample["depth"])
    valid = np.isfinite(gt)
    if sample.get("valid") is not None:
        v = np.asarray(sample["valid"]).astype(bool)
        if v.shape != gt.shape:
            raise DataError(f"{sample.get('name', 'sample')}: valid mask shape {v.shape} != depth shape {gt.shape}")
        valid &= v
    with np.errstate(invalid="ignore"):
        if protocol.range_inclusive:  # Depth-Anything-V2 metric_depth: min <= gt <= max
            valid &= (gt >= protocol.min_depth) & (gt <= protocol.max_depth)
        else:
            valid &= (gt > protocol.min_depth) & (gt < protocol.max_depth)
    if sample.get("_eval_crop_mask") is not None:  # set by prepare_sample for KB-cropped samples
        valid &= sample["_eval_crop_mask"]
    elif protocol.crop and protocol.crop != "none":
        from dabench.data.crops import apply_eval_crop

        valid = np.asarray(apply_eval_crop(valid, protocol.crop)).astype(bool)
    return valid


def prepare_sample(sample: dict, protocol: Protocol) -> dict:
    """Crops that change what the network sees. ``kb*`` crops (KITTI benchmark window): the image,
    depth and mask are cut to the 352×1216 bottom-centre window *before* inference (ZoeDepth's
    ``do_kb_crop``) and the evaluation mask is the crop's mask inside that window
    (``dabench.data.crops.window_crop_mask``: ZoeDepth's Garg box of the window for ``kb+garg``, the
    full frame's for BTS's ``kb+garg_bts``). Other crops only mask pixels."""
    from dabench.data.crops import is_window_crop, kb_box, window_crop_mask

    if not protocol.crop or not is_window_crop(protocol.crop):
        return sample
    depth = np.asarray(sample["depth"])
    t, b, l, r = kb_box(*depth.shape[:2])
    out = dict(sample)
    for key in ("image", "depth", "valid", "labels", "sky"):
        if sample.get(key) is not None:
            out[key] = np.ascontiguousarray(np.asarray(sample[key])[t:b, l:r])
    out["_eval_crop_mask"] = window_crop_mask(depth.shape[:2], protocol.crop)
    return out


def _reciprocal(x: np.ndarray) -> np.ndarray:
    return 1.0 / np.maximum(np.asarray(x, dtype=np.float64), _RECIPROCAL_FLOOR)


def score_sample(pred: np.ndarray, sample: dict, protocol: Protocol, output_space: str,
                 *, name: str | None = None, keep_maps: bool = False) -> tuple[str, dict[str, float] | None, dict[str, Any]]:
    """Score one raw prediction (H×W, the model's ``output_space``) against ``sample``.

    Returns ``(status, metrics or None, info)`` with status ``ok``, ``skipped_no_valid`` or
    ``skipped_degenerate`` (see ``dabench.eval.align`` for the degenerate policy) and info holding
    the valid pixel count and the fitted scale/shift; with ``keep_maps`` also ``score_maps``:
    ``(pred, gt, valid)`` in the score space as scored (error maps of ``dabench report``).
    """
    from dabench.metrics.depth import depth_sums, metrics_from_sums

    name = name or str(sample.get("name", "sample"))
    pred = np.asarray(pred)
    gt = np.asarray(sample["depth"], dtype=np.float64)
    if pred.shape != gt.shape:
        raise DataError(f"{name}: prediction shape {pred.shape} does not match ground truth shape {gt.shape}")
    bad = ~np.isfinite(pred)
    if bad.any():
        raise DataError(f"{name}: the model predicted {int(bad.sum())} NaN/inf values (of {pred.size})")
    valid = eval_valid_mask(sample, protocol)
    info: dict[str, Any] = {"valid_pixels": int(valid.sum()), "scale": None, "shift": None,
                            "output_space": output_space}
    if not valid.any() or info["valid_pixels"] < protocol.min_valid_pixels:
        return "skipped_no_valid", None, info
    mode = protocol.alignment
    space = ALIGNMENT_INPUT_SPACE[mode] or output_space
    x = pred.astype(np.float64) if space == output_space else _reciprocal(pred)
    try:
        aligned, params = align(x, gt, valid, mode, name=name, return_params=True,
                                max_res=protocol.alignment_max_res)
    except DegenerateAlignmentError as e:
        info["reason"] = str(e)
        return "skipped_degenerate", None, info
    info.update(params)
    aligned = np.asarray(aligned, dtype=np.float64)
    floor = protocol.floor()
    if space == "disparity":
        if protocol.score_space == "disparity":
            p_s, g_s = np.clip(aligned, 1.0 / protocol.max_depth, 1.0 / floor if floor > 0 else np.inf), 1.0 / np.where(valid, gt, 1.0)
        else:
            cap = protocol.depth_cap or protocol.max_depth
            p_s, g_s = np.maximum(1.0 / np.maximum(aligned, 1.0 / cap), floor), gt
    else:
        depth = np.clip(aligned, floor, protocol.max_depth) if protocol.clamp_pred else aligned
        if protocol.score_space == "disparity":
            p_s, g_s = 1.0 / depth, 1.0 / np.where(valid, gt, 1.0)
        else:
            p_s, g_s = depth, gt
    metrics = depth_engine_metrics(protocol.metric_family)
    info["sums"] = depth_sums(p_s, g_s, valid, name=name, metrics=metrics)
    if keep_maps:
        info["score_maps"] = (np.asarray(p_s, dtype=np.float64), np.asarray(g_s, dtype=np.float64), valid)
    info["aligned"] = p_s  # score space (disparity or metres), for --log-samples
    return "ok", metrics_from_sums(info["sums"], metrics), info


# ----------------------------------------------------------------------------------------------
# one dataset
# ----------------------------------------------------------------------------------------------
def predict_images(model, images: Sequence[np.ndarray], protocol: Protocol, device: str, amp_dtype=None) -> list[np.ndarray]:
    """Raw predictions (model output space, each image's own size); flip TTA averages the mirrored pass."""
    from dabench.models.inference import predict_batch

    kw = dict(input_size=protocol.input_size, device=device, amp_dtype=resolve_amp_dtype(amp_dtype), batch_size=max(1, len(images)))
    preds = predict_batch(model, list(images), **kw)
    preds = [np.asarray(p, dtype=np.float32) for p in preds]
    if protocol.flip_tta:
        flipped = predict_batch(model, [np.ascontiguousarray(im[:, ::-1]) for im in images], **kw)
        preds = [0.5 * (p + np.asarray(f, dtype=np.float32)[:, ::-1]) for p, f in zip(preds, flipped)]
    return preds


@dataclass
class DatasetResult:
    metrics: dict[str, float]
    metrics_pixel_pooled: dict[str, float]
    counts: dict[str, int]
    rows: list[dict[str, Any]] | None
    cache_hits: int = 0
    cache_misses: int = 0
    seconds: float = 0.0


def _iter_batches(dataset, indices: list[int], batch_size: int, num_workers: int):
    if num_workers <= 0:
        for i in range(0, len(indices), batch_size):
            chunk = indices[i:i + batch_size]
            yield chunk, [dataset[j] for j in chunk]
        return
    import torch.utils.data as tud

    loader = tud.DataLoader(tud.Subset(dataset, indices), batch_size=batch_size, num_workers=num_workers,
                            collate_fn=list, shuffle=False)
    pos = 0
    for batch in loader:
        chunk = indices[pos:pos + len(batch)]
        pos += len(batch)
        yield chunk, batch


def _evaluate(model, dataset, protocol: Protocol, *, output_space: str | None = None, batch_size: int = 4,
              device: str = "cpu", amp_dtype=None, cache=None, model_fp: str | None = None,
              num_workers: int = 0, progress=None, description: str = "", log_sample=None) -> DatasetResult:

    t0 = time.time()
    inner = getattr(model, "module", model)  # DistributedDataParallel / compiled wrappers
    output_space = output_space or getattr(inner, "output_space", "disparity")
    protocol = protocol.for_model(inner)
    was_training = bool(getattr(model, "training", False))
    try:
        return _evaluate_inner(model, dataset, protocol, output_space, batch_size, device, amp_dtype, cache,
                               model_fp, num_workers, progress, description, t0, log_sample)
    finally:
        if was_training:  # inference switches to eval(); hand a training model back as it came
            model.train()


def _evaluate_inner(model, dataset, protocol, output_space, batch_size, device, amp_dtype, cache, model_fp,
                    num_workers, progress, description, t0, log_sample=None) -> DatasetResult:
    from mmengine import dist

    from dabench.metrics.depth import DepthMetricState

    rank, ws = dist.get_dist_info()
    indices = list(range(rank, len(dataset), ws))  # strided shard: every rank gets a similar mix
    state = DepthMetricState(depth_engine_metrics(protocol.metric_family))
    degenerate = 0
    rows: list[dict[str, Any]] = []
    pred_protocol = {"input_size": protocol.input_size, "flip_tta": protocol.flip_tta,
                     "amp_dtype": str(resolve_amp_dtype(amp_dtype))}
    task = progress.add_task(description, total=len(dataset)) if progress is not None else None
    for chunk, samples in _iter_batches(dataset, indices, max(1, int(batch_size)), num_workers):
        samples = [prepare_sample(s, protocol) for s in samples]
        preds: list[np.ndarray | None] = [None] * len(samples)
        keys = [None] * len(samples)
        if cache is not None and model_fp is not None:
            for k, s in enumerate(samples):
                keys[k] = cache.key(model_fp, s["image"], pred_protocol)
                preds[k] = cache.get(keys[k], shape=s["image"].shape[:2])
        todo = [k for k, p in enumerate(preds) if p is None]
        if todo:
            new = predict_images(model, [samples[k]["image"] for k in todo], protocol, device, amp_dtype)
            for k, p in zip(todo, new):
                preds[k] = p
                if cache is not None and keys[k] is not None:
                    cache.put(keys[k], p)
        for idx, s, p in zip(chunk, samples, preds):
            name = str(s.get("name", idx))
            status, m, info = score_sample(p, s, protocol, output_space, name=name)
            if log_sample is not None:
                log_sample(name, p, s, protocol, status, info)
            if status == "ok":
                state.update_sums(info["sums"])
            elif status == "skipped_no_valid":
                state.skipped_no_valid += 1
            else:
                degenerate += 1
            rows.append({"index": idx, "name": name, "status": status, "valid_pixels": info["valid_pixels"],
                         "scale": info.get("scale"), "shift": info.get("shift"),
                         **{k: (m[k] if m else None) for k in state.metrics}})
        if progress is not None:
            progress.update(task, advance=len(samples) * ws)
    from dabench.metrics.depth import all_reduce_sum

    state.all_reduce()
    degenerate = int(all_reduce_sum(np.array([degenerate], dtype=np.float64))[0])
    gathered = dist.gather_object(rows, dst=0)  # [rows] without a process group, None off rank 0
    all_rows = sorted((r for part in gathered for r in part), key=lambda r: r["index"]) if gathered else None
    counts = {"used": int(state.n_images), "skipped_no_valid": int(state.skipped_no_valid),
              "skipped_degenerate": degenerate, "skipped_missing": int(getattr(dataset, "skipped_missing", 0) or 0),
              "total": len(dataset)}
    return DatasetResult(state.compute(), state.compute("pixel"), counts, all_rows,
                         cache.hits if cache else 0, cache.misses if cache else 0, time.time() - t0)


def evaluate_dataset(model, dataset, protocol: Protocol | dict | None = None, *, output_space: str | None = None,
                     batch_size: int = 4, device: str = "cpu", amp_dtype=None, cache=None,
                     model_fp: str | None = None, num_workers: int = 0) -> tuple[dict[str, float], dict[str, int]]:
    """Stream ``dataset`` (samples as in docs/architecture.md) through ``model`` under ``protocol``.

    Returns ``(metrics, sample_counts)``: the nine depth metrics averaged per image (exact over
    batches and, under torch.distributed, over ranks: each rank takes a strided shard) and
    ``{"used", "skipped_no_valid", "skipped_degenerate", "skipped_missing", "total"}``.
    """
    if protocol is None:
        protocol = Protocol()
    elif isinstance(protocol, dict):
        protocol = Protocol(**protocol)
    res = _evaluate(model, dataset, protocol, output_space=output_space, batch_size=batch_size, device=device,
                    amp_dtype=amp_dtype, cache=cache, model_fp=model_fp, num_workers=num_workers)
    return res.metrics, res.counts


# ----------------------------------------------------------------------------------------------
# models
# ----------------------------------------------------------------------------------------------
def _is_seg_checkpoint(path) -> bool:
    """A `dabench finetune seg` checkpoint (metadata dabench.head = seg_*): not a depth model."""
    from dabench.models import checkpoint as ckpt

    try:
        return str(ckpt.read_metadata(path).get(ckpt.META_HEAD, "")).startswith("seg_")
    except Exception:  # unreadable files fail later with their own clear error
        return False


# ----------------------------------------------------------------------------------------------
# records, CSV, table
# ----------------------------------------------------------------------------------------------
def _clean(v):
    if isinstance(v, float) and not math.isfinite(v):
        return None
    return v


def _write_samples_csv(path: Path, rows: list[dict[str, Any]], family: str = "depth") -> None:
    from dabench.provenance import atomic_write_text

    cols = ["index", "name", "status", "valid_pixels", "scale", "shift", *depth_engine_metrics(family)]
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=cols, lineterminator="\n")
    w.writeheader()
    for r in rows:
        w.writerow({k: ("" if r.get(k) is None else (repr(r[k]) if isinstance(r[k], float) else r[k])) for k in cols})
    atomic_write_text(path, buf.getvalue())


def _base_record(suite: Suite, run: ModelRun, dataset: str, protocol: Protocol | None, config: dict, seed: int,
                 model_params: int | None, checkpoint_sha: str | None, run_id: str | None = None,
                 data_source: dict | None = None, metric_names=None,
                 model_fields: dict[str, Any] | None = None) -> dict[str, Any]:
    """A record of ``run`` on ``dataset`` through ``dabench.results.record.make_record`` (metric facts
    from the registry; ``metric_names`` default: the depth engine's metrics; ``model_fields``: the
    model's provenance block)."""
    from dabench.results.record import make_record

    family = getattr(protocol, "metric_family", None) or "depth"
    return make_record(task=suite.task, suite=suite.name, model=run.label, dataset=dataset,
                       metric_names=list(metric_names or depth_engine_metrics(family)), seed=seed, run_id=run_id,
                       data_source=data_source,
                       config={**config, "model": run.label, "arch": run.arch, "checkpoint": run.checkpoint,
                               "random_init": run.random_init, "model_source": run.source,
                               "model_location": run.location, "model_options": dict(run.options) or None,
                               "dataset": dataset},
                       metric_order=suite.metrics, primary_metrics=suite.primary_metrics,
                       protocol=protocol.as_dict() if protocol else None, arch=run.arch,
                       model_params=model_params, checkpoint=run.checkpoint, checkpoint_sha256=checkpoint_sha,
                       random_init=run.random_init, **(model_fields or {}))


# ----------------------------------------------------------------------------------------------
# the suite
# ----------------------------------------------------------------------------------------------
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
    ``log_samples``: keep each sample's raw prediction as float16 ``.npz`` (layout: README, "Per-sample
    predictions"). The table goes to ``table_console``, else ``console``, else stdout. The suite's task runs through ``dabench.tasks.TASKS`` (depth
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
    from dabench.results.store import record_path

    for run in runs:  # a name that would write outside --results is refused before any work
        for ds in selected:
            record_path(results_dir, suite.name, run.label, ds)
    request = TaskRequest(datasets=selected, root=root, results_dir=results_dir, limit=limit, batch_size=batch_size,
                          device=device, flip_tta=flip_tta, seed=seed, amp_dtype=amp_dtype, use_cache=use_cache,
                          num_workers=num_workers, show_progress=show_progress, print_table=print_table,
                          console=console, skip_missing=skip_missing, input_size=input_size,
                          allow_fallback=allow_fallback, bootstrap=bootstrap, log_samples=log_samples,
                          run_id=make_run_id(salt=suite.name), table_console=table_console)
    records = TASKS.get(suite.task)(suite, runs, request)
    if int(os.environ.get("RANK", "0")) == 0:  # the process group may be gone: ask the launcher's env
        _write_manifest(results_dir, request.run_id, suite, records, limit, seed)
    return records


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


def _write_manifest(results_dir, run_id: str, suite: Suite, records: list[dict], limit, seed) -> None:
    """``runs/<run_id>/run.json``: what the run was and which records it wrote."""
    import sys

    from dabench.provenance import git_commit, now_iso
    from dabench.results.record import is_complete
    from dabench.results.store import write_run_manifest

    if not records:
        return
    write_run_manifest(results_dir, run_id, {
        "date": min(str(r.get("date") or now_iso()) for r in records), "finished": now_iso(), "suite": suite.name,
        "models": sorted({str(r.get("model")) for r in records}),
        "datasets": sorted({str(r.get("dataset")) for r in records}), "limit": limit, "seed": seed,
        "complete": all(is_complete(r) for r in records if r.get("status") == "ok"),
        "records": len(records), "git_commit": git_commit(), "argv": sys.argv[1:]})


def _plan_datasets(suite: Suite, selected: list[str], root,
                   allow_fallback: bool = False) -> tuple[list[tuple[str, dict | None]], list[dict]]:
    """[(dataset, fallback_info)] to evaluate and [(skipped dataset info)] for absent ones.

    With a data root given, an absent dataset is an error (naming the expected folder and layout)
    unless ``allow_fallback``: a mistyped root must not quietly score the synthetic stand-in."""
    from dabench.data import dataset_available, load_card
    from dabench.errors import MissingFileError

    plan: list[tuple[str, dict | None]] = []
    skipped: list[dict] = []
    fallback_for: dict[str, list[str]] = {}
    missing: list[str] = []
    for ds in selected:
        card = load_card(ds)
        if dataset_available(ds, root):
            plan.append((ds, None))
            continue
        fb = card.get("fallback")
        if root is not None and not allow_fallback:
            missing.append(_expected_layout(ds, card, root))
            continue
        where = f"under {root / card['root']}" if (root is not None and card.get("root")) else \
            "(no --data-root / $DABENCH_DATA given)"
        reason = f"dataset {ds} not found {where}" + (f"; {fb} evaluated in its place" if fb else "; no fallback")
        skipped.append({"dataset": ds, "reason": reason, "fallback": fb})
        if fb:
            fallback_for.setdefault(fb, []).append(ds)
    if missing:
        raise MissingFileError(f"data root {root}: " + "; ".join(missing)
                               + ". Pass --allow-fallback to score the synthetic stand-ins instead "
                                 "(recorded as fallbacks), or --datasets to pick the sets you have")
    for fb, reals in fallback_for.items():
        existing = [i for i, (d, _) in enumerate(plan) if d == fb]
        if existing:
            plan[existing[0]] = (fb, {"fallback_for": reals})
        else:
            plan.append((fb, {"fallback_for": reals}))
    return plan, skipped


def _expected_layout(ds: str, card: dict, root: Path) -> str:
    """What a dataset needs on disk, for the missing-data error."""
    from dabench.data.cards import split_file_path

    folder = root / card["root"] if card.get("root") else root
    need = [f"folder {folder}"]
    if card.get("annotations"):  # e.g. DA-2K's annotations.json
        need.append(f"annotation file {folder / card['annotations']}")
    for split, f in (card.get("split_file") or {}).items():
        if f and not split_file_path(card, split).is_file():
            need.append(f"split list {split_file_path(card, split)}")
    return f"dataset {ds} not found: expected " + " and ".join(need) + f" (layout: datasets/{ds}.yaml, notes)"


def _sample_logger(results_dir: Path, run_id: str, model: str, dataset: str):
    """A ``log_sample`` callback writing ``runs/<run_id>/samples/<model>/<dataset>/<sample_id>.npz``
    (float16 ``pred``, ``aligned``, ``gt``; bool ``valid``; strings ``output_space``, ``score_space``,
    ``status``). ``sample_id`` is the sample name made file-safe."""
    from dabench.provenance import atomic_path
    from dabench.results.store import safe_name, run_dir

    folder = run_dir(results_dir, run_id) / "samples" / safe_name(model) / safe_name(dataset)
    f16 = np.finfo(np.float16).max

    def log(name, pred, sample, protocol, status, info):
        def half(x):
            return None if x is None else np.clip(np.nan_to_num(np.asarray(x, np.float32)), -f16, f16).astype(np.float16)

        arrays = {"pred": half(pred), "gt": half(sample.get("depth")),
                  "valid": eval_valid_mask(sample, protocol), "aligned": half(info.get("aligned")),
                  "output_space": np.array(str(info.get("output_space", ""))),
                  "score_space": np.array(protocol.score_space), "status": np.array(status)}
        path = folder / f"{safe_name(name)}.npz"
        with atomic_path(path) as tmp:
            with open(tmp, "wb") as fh:
                np.savez_compressed(fh, **{k: v for k, v in arrays.items() if v is not None})

    return log


def _data_source(card: dict, root, fallback_info: dict | None) -> dict:
    from dabench.results.record import make_data_source

    if card.get("reader") == "synthetic":
        return make_data_source("synthetic", None, (fallback_info or {}).get("fallback_for"))
    return make_data_source("disk", (Path(root) / card["root"]) if card.get("root") else root)


def split_size(ds: str, split, root, dataset, limit) -> int:
    """Entries of the whole split (before ``limit``): decides whether a record is complete."""
    from dabench.data import build_dataset

    n = len(dataset) + int(getattr(dataset, "skipped_missing", 0) or 0)
    if limit is None or n < int(limit):
        return n
    full = build_dataset(ds, split=split, data_root=root, skip_missing=True)
    return len(full) + int(getattr(full, "skipped_missing", 0) or 0)


def _run_depth_suite(suite, runs, selected, root, limit, batch_size, device, flip_tta, results_dir, seed,
                     amp_dtype, use_cache, num_workers, show_progress, print_table, console, rank, ws,
                     skip_missing=False, input_size=None, allow_fallback=False, bootstrap=1000,
                     log_samples=False, run_id=None, table_console=None):
    from dabench.data import build_dataset, load_card
    from dabench.eval.cache import PredictionCache, model_fingerprint
    from dabench.models.checkpoint import read_metadata  # noqa: F401  (fails early if models is broken)
    from dabench.provenance import sha256_file
    from dabench.results.record import make_selection
    from dabench.results.stats import DEFAULT_CONFIDENCE, record_cis
    from dabench.results.store import samples_csv_path, write_record

    plan, skipped = _plan_datasets(suite, selected, root, allow_fallback)
    config = {"suite": suite.name, "suite_path": suite.path, "data_root": str(root) if root else None,
              "datasets": selected, "limit": limit, "batch_size": batch_size, "device": str(device),
              "amp_dtype": amp_dtype, "flip_tta_override": flip_tta, "world_size": ws, "cache": use_cache,
              "skip_missing": skip_missing, "input_size_override": input_size, "allow_fallback": allow_fallback,
              "bootstrap": bootstrap, "log_samples": log_samples}
    records: list[dict] = []
    for run in runs:
        if run.checkpoint and _is_seg_checkpoint(run.checkpoint):  # seg heads are scored by seg-* suites (issue 7)
            if rank == 0:
                console.print(f"[yellow]skipping {run.label}:[/yellow] a segmentation checkpoint; use a seg-* suite")
            continue
        model = build_model(run, seed)
        model_fields = model_provenance(run, model)
        output_space = model_fields["output_space"]
        if suite.task in METRIC_DEPTH_TASKS and not (output_space == "depth" and model_fields["is_metric"]):
            kind = "relative disparity" if output_space == "disparity" else "affine-invariant (not metric) depth"
            msg = (f"model {run.label!r} outputs {kind}; the {suite.name} suite (task metric) scores "
                   "metric depth in metres. Fine-tune a metric head first (dabench finetune metric)")
            if len(runs) == 1:
                raise ConfigError(msg)
            if rank == 0:
                console.print(f"[yellow]skipping {run.label}:[/yellow] {msg}")
            continue
        if run.random_init and rank == 0:
            console.print(f"[bold red]WARNING: {run.label} runs with RANDOM weights (--random-init): its numbers are "
                          "meaningless and only test the pipeline.[/bold red]")
        n_params = int(sum(p.numel() for p in model.parameters()))
        ck_sha = sha256_file(run.checkpoint) if run.checkpoint else None
        if ck_sha and not model_fields["model_revision"]:
            model_fields["model_revision"] = f"sha256:{ck_sha}"
        fp = model_fingerprint(model, run.arch or run.label, run.checkpoint)
        for sk in skipped:
            card = load_card(sk["dataset"])
            rec = _base_record(suite, run, sk["dataset"], resolve_protocol(suite, sk["dataset"], card),
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
            logger = _sample_logger(results_dir, run_id, run.label, ds) if (log_samples and run_id) else None
            kw = dict(output_space=output_space, batch_size=batch_size, device=device, amp_dtype=amp_dtype,
                      cache=cache, model_fp=fp, num_workers=num_workers, log_sample=logger)
            if show_progress:
                from dabench.progress import progress_bar

                with progress_bar(console) as prog:
                    res = _evaluate(model, dataset, proto, progress=prog, description=f"{run.label} · {ds}", **kw)
            else:
                res = _evaluate(model, dataset, proto, **kw)
            rec = _base_record(suite, run, ds, proto, config, seed, n_params, ck_sha, run_id,
                               _data_source(card, root, fb), model_fields=model_fields)
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
                rec["metrics"] = {k: _clean(v) for k, v in res.metrics.items()}
                rec["metrics_pixel_pooled"] = {k: _clean(v) for k, v in res.metrics_pixel_pooled.items()}
                if rank == 0 and bootstrap > 0:  # rows are every rank's samples, gathered: exact under DDP
                    rec["ci"] = record_cis(rows, depth_engine_metrics(proto.metric_family), rec["averaging"],
                                           bootstrap, seed)
                    rec["bootstrap"] = {"method": "percentile", "over": "images", "resamples": bootstrap,
                                        "confidence": DEFAULT_CONFIDENCE, "seed": seed}
            rec["cache"] = {"hits": res.cache_hits, "misses": res.cache_misses}
            rec["seconds"] = round(res.seconds, 3)
            if rank == 0:
                path = write_record(rec, results_dir)
                _write_samples_csv(samples_csv_path(path), rows, proto.metric_family)
                from dabench.results.store import history_path

                _write_samples_csv(samples_csv_path(history_path(results_dir, rec)), rows, proto.metric_family)
                rec["_path"] = str(path)
            if res.counts["skipped_missing"] and rank == 0:
                console.print(f"[yellow]{ds}: {res.counts['skipped_missing']} samples listed in the split are "
                              "missing on disk (counted in samples.skipped_missing)[/yellow]")
            records.append(rec)
        del model
    if print_table and records:
        print_suite_table(records, suite, console=table_console)
    return records


