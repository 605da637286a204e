"""One dataset through one model, pipelined: each rank's strided shard, read and cropped in DataLoader
workers, preprocessed, run, scored (``dabench.eval.fastscore``) into a ``DepthMetricState``, and the
reduction over ranks (``mmengine.dist``).

The stages run at once, each on its own thread, joined by short queues (order is kept throughout):

1. **read** (``num_workers`` DataLoader processes; None: ``dabench.data.workers.default_num_workers``, as
   training chooses, 0 for in-memory datasets): decode, ``prepare_sample`` crops, the evaluation mask,
   the image's cache fingerprint; pinned memory on CUDA;
2. **prepare** (a thread): prediction-cache lookups and the model's preprocessing
   (``dabench.eval.infer.Predictor.prepare``: on the GPU, or OpenCV into reused buffers);
3. **run** (the calling thread): the forward pass, flip TTA, resizing back to each image's size;
4. **score** (a thread): alignment and metrics (the native kernel releases the GIL; on CUDA the float64
   torch pass on the device), rows, ``--log-samples``, cache writes.

So batch k is scored and batch k + 2 read while batch k + 1 runs on the device. ``pipelined=False`` runs
the same stages one after the other on the calling thread (the reference for tests).
"""
from __future__ import annotations

import queue
import threading
import time
from dataclasses import dataclass
from typing import Any, Sequence

import numpy as np

from dabench.eval.scoring import eval_valid_mask, prepare_sample, score_sample  # noqa: F401  (re-exported)
from dabench.eval.suites import Protocol
from dabench.metrics.registry import depth_engine_metrics
from dabench.models.inference import resolve_amp_dtype

QUEUE_DEPTH = 2  # batches waiting between two stages


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
    (rank 0; None on other ranks), prediction-cache hits/misses, seconds and the batch size used."""

    metrics: dict[str, float]
    metrics_pixel_pooled: dict[str, float]
    counts: dict[str, int]
    rows: list[dict[str, Any]] | None
    cache_hits: int = 0
    cache_misses: int = 0
    seconds: float = 0.0
    batch_size: int = 0


class ReadSamples:
    """The map-style dataset the read stage's workers index: sample ``k`` of the shard, cropped, with
    its evaluation mask (``valid``), valid-pixel count and (``fingerprint``) cache fingerprint; arrays
    become tensors so that workers hand them over in shared memory."""

    def __init__(self, dataset, indices: list[int], protocol: Protocol, fingerprint: bool):
        self.dataset, self.indices, self.protocol, self.fingerprint = dataset, indices, protocol, fingerprint

    def __len__(self) -> int:
        return len(self.indices)

    def __getitem__(self, k: int) -> dict:
        import torch

        from dabench.eval.cache import image_fingerprint
        from dabench.models.contract import check_image

        i = self.indices[k]
        s = prepare_sample(self.dataset[i], self.protocol)
        name = str(s.get("name", i))
        image = check_image(np.ascontiguousarray(s["image"]), f"{name}: image")
        depth = np.asarray(s["depth"])
        if depth.dtype not in (np.float32, np.float64):
            depth = depth.astype(np.float32)
        valid = eval_valid_mask(s, self.protocol)
        crop = s.get("_eval_crop_mask")
        K = s.get("intrinsics")
        return {"index": i, "name": name, "image": torch.from_numpy(image),
                "intrinsics": None if K is None else np.asarray(K),
                "depth": torch.from_numpy(np.ascontiguousarray(depth)), "valid": torch.from_numpy(valid),
                "valid_pixels": int(np.count_nonzero(valid)),
                "crop_mask": None if crop is None else torch.from_numpy(np.ascontiguousarray(crop)),
                "fingerprint": image_fingerprint(image) if self.fingerprint else None}


def default_eval_workers(dataset, n_batches: int) -> int:
    """Read-stage workers when none are asked for: training's rule (usable cores over local ranks, one
    left for this process) for datasets read from files; 0 for in-memory ones (lists) and single batches."""
    if isinstance(dataset, (list, tuple)) or n_batches < 2:
        return 0
    from dabench.data.workers import default_num_workers

    return default_num_workers()


def _iter_read(reader: ReadSamples, batch_size: int, num_workers: int, pin: bool):
    """Batches of read samples, in order. With workers the DataLoader's iterator is made here, so its
    worker processes are forked by the calling thread before the pipeline's threads start."""
    if num_workers <= 0:
        return (([reader[k] for k in range(start, min(start + batch_size, len(reader)))])
                for start in range(0, len(reader), batch_size))
    import multiprocessing as mp

    import torch.utils.data as tud

    from dabench.data.workers import quiet_cv2_threads_before_fork, worker_init

    kw: dict[str, Any] = {"worker_init_fn": worker_init}
    if "fork" in mp.get_all_start_methods():  # keeps in-memory datasets and closures without pickling
        kw["multiprocessing_context"] = "fork"
        quiet_cv2_threads_before_fork()
    return iter(tud.DataLoader(reader, batch_size=batch_size, num_workers=num_workers, collate_fn=list,
                               shuffle=False, pin_memory=pin, **kw))


def evaluate(model, dataset, protocol: Protocol, *, output_space: str | None = None, batch_size: int | str = 4,
             device: str = "cpu", amp_dtype=None, cache=None, model_fp: str | None = None,
             num_workers: int | None = None, progress=None, description: str = "", log_sample=None,
             pipelined: bool = True, engine: str = "auto", preprocess: str = "auto") -> DatasetResult:
    """``dataset`` through ``model`` under ``protocol`` (see ``evaluate_dataset``), with the rows,
    cache counts and timing a record needs; ``log_sample(name, pred, sample, protocol, status, info)``
    is called for every sample (``--log-samples``). ``batch_size``: a number, or ``"auto"``
    (``dabench.eval.batching.pick_batch_size`` for this dataset's network input size). ``engine``: the
    scorer's (``dabench.eval.fastscore.ENGINES``); ``preprocess``: ``dabench.eval.infer.PREPROCESS``."""
    t0 = time.time()
    inner = getattr(model, "module", model)  # DistributedDataParallel / compiled wrappers
    output_space = output_space or getattr(inner, "output_space", "disparity")
    protocol = protocol.for_model(inner)
    was_training = bool(getattr(model, "training", False))
    try:
        return _evaluate_inner(model, dataset, protocol, output_space, batch_size, device, amp_dtype, cache,
                               model_fp, num_workers, progress, description, t0, log_sample, pipelined, engine,
                               preprocess)
    finally:
        if was_training:  # inference switches to eval(); hand a training model back as it came
            model.train()


class _Producer:
    """A thread filling a short queue with ``work(item)`` for each of ``items``; iterating it yields them in
    order and re-raises the thread's error; ``stop`` ends it early."""

    DONE = object()

    def __init__(self, name: str, items, work, stop: threading.Event):
        self.out: queue.Queue = queue.Queue(maxsize=QUEUE_DEPTH)
        self.stop, self.items, self.work = stop, items, work
        self.thread = threading.Thread(target=self._run, name=f"dabench-eval-{name}", daemon=True)
        self.thread.start()

    def _put(self, x) -> bool:
        while not self.stop.is_set():
            try:
                self.out.put(x, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def _run(self):
        try:
            for item in self.items:
                if self.stop.is_set() or not self._put(self.work(item)):
                    return
            self._put(self.DONE)
        except BaseException as e:  # noqa: BLE001 - handed to the consumer, which re-raises it
            self._put(e)

    def __iter__(self):
        while True:
            try:
                x = self.out.get(timeout=0.1)
            except queue.Empty:
                if self.stop.is_set() or (not self.thread.is_alive() and self.out.empty()):
                    return  # stopped by the consumer's error (raised by it) or ended
                continue
            if x is self.DONE:
                return
            if isinstance(x, BaseException):
                raise x
            yield x


class _Consumer:
    """A thread running ``work(item)`` for each item ``put`` (in order); ``close`` waits for it. An error on
    the thread sets ``stop`` and is re-raised by the next ``put`` or by ``close``."""

    DONE = object()

    def __init__(self, name: str, work, stop: threading.Event):
        self.inbox: queue.Queue = queue.Queue(maxsize=QUEUE_DEPTH)
        self.work, self.stop, self.error = work, stop, None
        self.thread = threading.Thread(target=self._run, name=f"dabench-eval-{name}", daemon=True)
        self.thread.start()

    def _run(self):
        while True:
            x = self.inbox.get()
            if x is self.DONE or self.error is not None:
                if x is self.DONE:
                    return
                continue
            try:
                self.work(x)
            except BaseException as e:  # noqa: BLE001 - re-raised on the calling thread
                self.error = e
                self.stop.set()

    def _raise(self):
        if self.error is not None:
            raise self.error

    def put(self, x) -> None:
        self._raise()
        while True:
            try:
                self.inbox.put(x, timeout=0.1)
                return
            except queue.Full:
                self._raise()

    def close(self) -> None:
        self.inbox.put(self.DONE)
        self.thread.join()
        self._raise()


def _evaluate_inner(model, dataset, protocol, output_space, batch_size, device, amp_dtype, cache, model_fp,
                    num_workers, progress, description, t0, log_sample=None, pipelined=True, engine="auto",
                    preprocess="auto") -> DatasetResult:
    from mmengine import dist

    from dabench.eval.fastscore import FastScorer
    from dabench.eval.infer import Predictor
    from dabench.metrics.depth import DepthMetricState, all_reduce_sum

    rank, ws = dist.get_dist_info()
    indices = list(range(rank, len(dataset), ws))  # strided shard: every rank gets a similar mix
    # side outputs (confidence) are not cached: a logging run recomputes what it logs
    want_aux = log_sample is not None and callable(getattr(getattr(model, "module", model), "auxiliary_outputs", None))
    predictor = Predictor(model, protocol.input_size, device, amp_dtype, protocol.flip_tta, preprocess, aux=want_aux)
    bs = _batch_size(batch_size, predictor, dataset, indices, protocol)
    use_cache = cache is not None and model_fp is not None
    reader = ReadSamples(dataset, indices, protocol, fingerprint=use_cache and cache.enabled)
    n_batches = -(-len(indices) // bs)
    workers = default_eval_workers(dataset, n_batches) if num_workers is None else int(num_workers)
    cuda = predictor.device.type == "cuda"
    host_finish = predictor.device.type == "cpu"  # resize back on the scoring thread (a GPU does it async)
    from dabench.models.outputs import needs_intrinsics

    metric_hook = needs_intrinsics(model)
    pred_protocol = {"input_size": protocol.input_size, "flip_tta": protocol.flip_tta,
                     "amp_dtype": str(resolve_amp_dtype(amp_dtype))}
    state = DepthMetricState(depth_engine_metrics(protocol.metric_family))
    scorer = FastScorer(protocol, output_space, engine=engine)
    counts = {"degenerate": 0}
    rows: list[dict[str, Any]] = []
    task = progress.add_task(description, total=len(dataset)) if progress is not None else None

    def prepare(samples):
        preds: list = [None] * len(samples)
        keys: list = [None] * len(samples)
        if use_cache:
            for k, s in enumerate(samples):
                fp = s["fingerprint"]
                keys[k] = (cache.key_for(model_fp, fp, pred_protocol) if fp is not None
                           else cache.key(model_fp, s["image"].numpy(), pred_protocol))
                if not want_aux:
                    preds[k] = cache.get(keys[k], shape=tuple(s["image"].shape[:2]))
        todo = [k for k, p in enumerate(preds) if p is None]
        prepared = predictor.prepare([samples[k]["image"] for k in todo]) if todo else None
        return samples, preds, keys, todo, prepared

    def run(item):
        samples, preds, keys, todo, prepared = item
        out = predictor.run(prepared, finish=not host_finish) if prepared is not None else None
        return samples, preds, keys, todo, out

    def score(item):
        from dabench.models.outputs import with_intrinsics

        samples, preds, keys, todo, out = item
        aux: list[dict] = [{} for _ in samples]
        if out is not None:  # resized back here on the CPU: off the thread that runs the model
            maps, side = predictor.finish(out) if host_finish else out
            for k, p, a in zip(todo, maps, side):
                preds[k], aux[k] = p, a
        fresh = set(todo)
        for k, (s, p) in enumerate(zip(samples, preds)):
            raw = p
            if metric_hook:  # metres for models that need the camera K (DA3 metric); the cache keeps the raw map
                p = with_intrinsics(model, _numpy(p), {"intrinsics": s["intrinsics"], "name": s["name"]}, protocol)
            if hasattr(p, "detach") and p.device.type != "cpu":  # score where the prediction is (CUDA)
                depth, valid = s["depth"].to(p.device, non_blocking=True), s["valid"].to(p.device, non_blocking=True)
            else:
                p, depth, valid = _numpy(p), s["depth"].numpy(), s["valid"].numpy()
            ref = {"depth": s["depth"].numpy(), "valid": s["valid"].numpy(), "name": s["name"]}
            if s["crop_mask"] is not None:
                ref["_eval_crop_mask"] = s["crop_mask"].numpy()
            status, m, info = scorer.score(p, depth, valid, s["valid_pixels"], ref, s["name"])
            if use_cache and cache.enabled and k in fresh and keys[k] is not None:
                cache.put(keys[k], _numpy(raw))
            if log_sample is not None:
                info["aligned"] = (scorer.aligned_map(p, depth, valid, info.get("scale"), info.get("shift"))
                                   if status == "ok" else None)
                log_sample(s["name"], _numpy(p), ref, protocol, status, {**info, "aux": aux[k]})
            if status == "ok":
                state.update_sums(info["sums"])
            elif status == "skipped_no_valid":
                state.skipped_no_valid += 1
            else:
                counts["degenerate"] += 1
            rows.append({"index": s["index"], "name": s["name"], "status": status, "valid_pixels": info["valid_pixels"],
                         "scale": info.get("scale"), "shift": info.get("shift"),
                         **{key: (m[key] if m else None) for key in state.metrics}})
        if progress is not None:
            progress.update(task, advance=len(samples) * ws)

    batches = _iter_read(reader, bs, workers, pin=cuda)
    if pipelined:
        stop = threading.Event()
        scoring = _Consumer("score", score, stop)
        try:
            for item in _Producer("prepare", batches, prepare, stop):  # reading and preprocessing run ahead
                scoring.put(run(item))  # the forward pass of batch k + 1 while batch k is scored
        except BaseException:
            stop.set()
            scoring.close() if scoring.error is None else None
            raise
        scoring.close()
    else:
        for samples in batches:
            score(run(prepare(samples)))
    state.all_reduce()
    degenerate = int(all_reduce_sum(np.array([counts["degenerate"]], dtype=np.float64))[0])
    gathered = dist.gather_object(rows, dst=0)  # [rows] without a process group, None off rank 0
    all_rows = sorted((r for part in gathered for r in part), key=lambda r: r["index"]) if gathered else None
    totals = {"used": int(state.n_images), "skipped_no_valid": int(state.skipped_no_valid),
              "skipped_degenerate": degenerate, "skipped_missing": int(getattr(dataset, "skipped_missing", 0) or 0),
              "total": len(dataset)}
    return DatasetResult(state.compute(), state.compute("pixel"), totals, all_rows,
                         cache.hits if cache else 0, cache.misses if cache else 0, time.time() - t0, bs)


def _numpy(p) -> np.ndarray:
    if hasattr(p, "detach"):
        return p.detach().float().cpu().numpy()
    return np.asarray(p, dtype=np.float32)


def _batch_size(batch_size, predictor, dataset, indices, protocol) -> int:
    """``batch_size`` as a number; ``"auto"``: picked for the network size of the shard's first image."""
    if batch_size != "auto":
        return max(1, int(batch_size))
    from dabench.eval.batching import pick_batch_size

    if not indices:
        return 1
    first = prepare_sample(dataset[indices[0]], protocol)
    h, w = np.asarray(first["image"]).shape[:2]
    net = predictor.network_size(h, w) or (h, w)
    return pick_batch_size(predictor.model, net, predictor.device, predictor.amp, limit=len(indices))


def evaluate_dataset(model, dataset, protocol: Protocol | dict | None = None, *, output_space: str | None = None,
                     batch_size: int | str = 4, device: str = "cpu", amp_dtype=None, cache=None,
                     model_fp: str | None = None, num_workers: int | None = None) -> tuple[dict[str, float], dict[str, int]]:
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
