"""One dataset through one model: batches (optionally from DataLoader workers), the prediction
cache, each rank's strided shard, scoring (``dabench.eval.scoring``) into a ``DepthMetricState``,
and the reduction over ranks (``mmengine.dist``)."""
from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any, Sequence

import numpy as np

from dabench.eval.scoring import prepare_sample, score_sample
from dabench.eval.suites import Protocol
from dabench.metrics.registry import depth_engine_metrics
from dabench.models.inference import resolve_amp_dtype
from dabench.models.outputs import with_intrinsics


def predict_images(model, images: Sequence[np.ndarray], protocol: Protocol, device: str, amp_dtype=None,
                   aux: list | None = None) -> list[np.ndarray]:
    """Raw predictions (model output space, each image's own size); flip TTA averages the mirrored pass.
    ``aux``: filled with each image's side outputs (e.g. confidence) of the unflipped pass."""
    from dabench.models.inference import predict_batch

    kw = dict(input_size=protocol.input_size, device=device, amp_dtype=resolve_amp_dtype(amp_dtype), batch_size=max(1, len(images)))
    preds = predict_batch(model, list(images), aux=aux, **kw)
    preds = [np.asarray(p, dtype=np.float32) for p in preds]
    if protocol.flip_tta:
        flipped = predict_batch(model, [np.ascontiguousarray(im[:, ::-1]) for im in images], **kw)
        preds = [0.5 * (p + np.asarray(f, dtype=np.float32)[:, ::-1]) for p, f in zip(preds, flipped)]
    return preds


@dataclass
class DatasetResult:
    """What ``evaluate`` returns: per-image and pixel-pooled metrics, sample counts, per-sample rows
    (rank 0; None on other ranks), prediction-cache hits/misses and seconds."""

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


def evaluate(model, dataset, protocol: Protocol, *, output_space: str | None = None, batch_size: int = 4,
             device: str = "cpu", amp_dtype=None, cache=None, model_fp: str | None = None,
             num_workers: int = 0, progress=None, description: str = "", log_sample=None) -> DatasetResult:
    """``dataset`` through ``model`` under ``protocol`` (see ``evaluate_dataset``), with the rows,
    cache counts and timing a record needs; ``log_sample(name, pred, sample, protocol, status, info)``
    is called for every sample (``--log-samples``)."""
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
        aux: list[dict] = [{} for _ in samples]
        # side outputs (confidence) are not cached: a logging run recomputes what it logs
        want_aux = log_sample is not None and callable(getattr(getattr(model, "module", model), "auxiliary_outputs", None))
        if cache is not None and model_fp is not None and not want_aux:
            for k, s in enumerate(samples):
                keys[k] = cache.key(model_fp, s["image"], pred_protocol)
                preds[k] = cache.get(keys[k], shape=s["image"].shape[:2])
        todo = [k for k, p in enumerate(preds) if p is None]
        if cache is not None and model_fp is not None and want_aux:
            keys = [cache.key(model_fp, s["image"], pred_protocol) for s in samples]
        if todo:
            new_aux: list | None = [] if want_aux else None
            new = predict_images(model, [samples[k]["image"] for k in todo], protocol, device, amp_dtype, aux=new_aux)
            for k, a in zip(todo, new_aux or []):
                aux[k] = a
            for k, p in zip(todo, new):
                preds[k] = p
                if cache is not None and keys[k] is not None:
                    cache.put(keys[k], p)
        for pos, (idx, s, p) in enumerate(zip(chunk, samples, preds)):
            name = str(s.get("name", idx))
            p = with_intrinsics(model, p, s, protocol)  # metres for models that need the camera K (DA3 metric)
            status, m, info = score_sample(p, s, protocol, output_space, name=name)
            if log_sample is not None:
                log_sample(name, p, s, protocol, status, {**info, "aux": aux[pos]})
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
    res = evaluate(model, dataset, protocol, output_space=output_space, batch_size=batch_size, device=device,
                    amp_dtype=amp_dtype, cache=cache, model_fp=model_fp, num_workers=num_workers)
    return res.metrics, res.counts
