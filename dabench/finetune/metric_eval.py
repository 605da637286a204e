"""Scoring a metric fine-tune: its held-out split through ``dabench.eval.runner.run_suite`` at the
size it trained at, and the median-depth floor (the training set's median depth predicted everywhere)
scored by the same code and protocol. Both write results records (``dabench.results.record``)."""
from __future__ import annotations

import math
import os
from pathlib import Path

import numpy as np
import torch
from torch import nn

from dabench.errors import ConfigError
from dabench.finetune.metric_config import FinetuneMetricConfig
from dabench.results.record import Record


def training_median_depth(dataset, min_depth: float, max_depth: float, train_crop: str = "none") -> float:
    """Median (metres) of every valid ground-truth pixel within [min, max] of ``dataset``."""
    values = []
    for i in range(len(dataset)):
        s = dataset[i]
        d, v = s["depth"], s["valid"]
        if train_crop == "kb":
            from dabench.data.crops import kb_crop

            d, v = kb_crop(d), kb_crop(v)
        m = v & (d >= min_depth) & (d <= max_depth)
        values.append(np.asarray(d[m], dtype=np.float32))
    allv = np.concatenate(values) if values else np.zeros(0, np.float32)
    if allv.size == 0:
        raise ConfigError("the training set has no valid ground-truth pixel inside the depth range")
    return float(np.median(allv))


class ConstantDepth(nn.Module):
    """Predicts ``value`` metres everywhere (the median-depth baseline): ``B×3×H×W -> B×H×W``."""

    output_space = "depth"
    is_metric = True

    def __init__(self, value: float):
        super().__init__()
        self.value = float(value)
        from dabench.models.depth_anything import default_data_config

        self.data_config = default_data_config()  # sees the input the fine-tuned network sees

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, _, h, w = x.shape
        return torch.full((b, h, w), self.value, dtype=torch.float32, device=x.device)


def eval_protocol(cfg: FinetuneMetricConfig) -> dict:
    """The evaluation protocol of a (resolved) fine-tuning config: no alignment, clamp to the head's
    range, the card's crop, optional flip TTA, the training input height as shorter side."""
    e, m, d = cfg.evaluation, cfg.model, cfg.data
    return {"split": d.eval_split, "alignment": "none", "score_space": "depth", "depth_cap": None,
            "crop": e.crop, "min_depth": float(m.min_depth), "max_depth": float(m.max_depth),
            "input_size": training_input_size(cfg), "flip_tta": e.flip_tta}


def eval_suite_for(dataset: str, cfg: FinetuneMetricConfig):
    """The registered ``metric-<dataset>`` suite when there is one (``metric-nyu``, ``metric-kitti``),
    else a one-dataset metric suite with ``eval_protocol(cfg)``."""
    from dabench.eval.suites import list_suites, load_suite, parse_suite

    name = f"metric-{dataset}"
    if name in list_suites():
        suite = load_suite(name)
        if dataset in suite.dataset_names:
            return suite
    return parse_suite({"name": name, "task": "metric",
                        "description": f"held-out {dataset} split after dabench finetune metric",
                        "source": "dabench finetune metric (no alignment, clamp to the head's range, card crop)",
                        "datasets": [{"dataset": dataset, **eval_protocol(cfg)}],
                        "primary_metrics": ["delta1", "abs_rel"]}, source="<finetune-metric>")


def training_input_size(cfg: FinetuneMetricConfig) -> int:
    """The shorter side (pixels) the fine-tune trained at: what its own evaluation feeds the network."""
    return int(min(cfg.data.input_size))


def evaluate_checkpoint(checkpoint: str | os.PathLike, dataset: str, cfg: FinetuneMetricConfig, *, data_root=None, results_dir=None,
                        device: str | None = None, show_progress: bool = False, skip_missing: bool = False,
                        train_skipped_missing: int = 0) -> Record:
    """Score a metric checkpoint on ``dataset``'s held-out split with ``dabench.eval.runner.run_suite``
    at the size it was trained at (``training_input_size``: a suite such as ``metric-nyu`` pins the
    paper's 392 for full-size models, which would score a 98-px tiny run at 4x its training size;
    the record's ``protocol.input_size`` and ``config.input_size_override`` state the size used).
    The record is labelled with the checkpoint's file stem. Returns the record."""
    from dabench.tasks import EvalRequest
    from dabench.eval.runner import run_suite

    dev = device or ("cuda" if torch.cuda.is_available() else "cpu")
    bs = cfg.evaluation.batch_size
    request = EvalRequest(checkpoint=str(checkpoint), data_root=data_root, datasets=(dataset,),
                          limit=cfg.data.eval_limit, batch_size=bs, device=str(dev), results_dir=results_dir,
                          seed=cfg.train.seed, use_cache=False, show_progress=show_progress,
                          input_size=training_input_size(cfg), skip_missing=skip_missing)
    records = run_suite(eval_suite_for(dataset, cfg), request)
    recs = [r for r in records if r["dataset"] == dataset] or records
    rec = recs[0] if recs else Record()
    if train_skipped_missing and getattr(rec, "path", None):  # the training side of --skip-missing, same record
        from dabench.results.store import write_record

        rec.setdefault("config", {})["train_skipped_missing"] = int(train_skipped_missing)
        write_record(rec, Path(results_dir) if results_dir else _default_results_dir())
    return rec


def _default_results_dir() -> Path:
    from dabench.provenance import default_results_dir

    return default_results_dir()


def _sample_ids(dataset) -> list[str] | None:
    """Sample names of a file dataset without decoding images (its split entries); indices otherwise."""
    entries = getattr(dataset, "entries", None)
    if entries is None:
        return [str(i) for i in range(len(dataset))]
    return [str(getattr(e, "name", e)) for e in entries]


def median_depth_baseline(dataset: str, cfg: FinetuneMetricConfig, *, data_root=None, results_dir=None,
                          device: str = "cpu", median: float | None = None, skip_missing: bool = False) -> Record:
    """The floor a metric model must beat: the training set's median depth (metres) predicted at every
    pixel, scored on the held-out split by the same runner code and protocol. Writes and returns a
    record (model ``median-depth-baseline``, ``config.median_depth`` = the value)."""
    from dabench.data import build_dataset
    from dabench.eval.loop import evaluate_dataset
    from dabench.eval.plan import split_size
    from dabench.metrics.registry import DEPTH_METRICS
    from dabench.provenance import default_results_dir
    from dabench.results.record import make_data_source, make_record, make_run_id, make_selection
    from dabench.results.store import write_record

    d, m = cfg.data, cfg.model
    if median is None:
        train = build_dataset(dataset, split=d.train_split, data_root=data_root, limit=d.train_limit,
                              skip_missing=skip_missing)
        median = training_median_depth(train, float(m.min_depth), float(m.max_depth), d.train_crop or "none")
    suite = eval_suite_for(dataset, cfg)
    from dabench.eval.suites import resolve_protocol
    from dabench.data import load_card

    proto = resolve_protocol(suite, dataset, load_card(dataset), overrides={"input_size": training_input_size(cfg)})
    held_out = build_dataset(dataset, split=proto.split, data_root=data_root, limit=d.eval_limit,
                             skip_missing=skip_missing)
    metrics, counts = evaluate_dataset(ConstantDepth(median), held_out, proto, output_space="depth",
                                       batch_size=cfg.evaluation.batch_size, device=device)
    seed = cfg.train.seed
    limit = d.eval_limit
    n = int(sum(counts.get(k, 0) for k in ("used", "skipped_no_valid", "skipped_degenerate")))
    rec = make_record(
        task="metric", suite=suite.name, model="median-depth-baseline", dataset=dataset,
        metric_names=DEPTH_METRICS, seed=seed,
        config={"median_depth": median, "train_split": d.train_split,
                "train_limit": d.train_limit, "eval_limit": limit, "limit": limit,
                "what": "training-set median depth everywhere"},
        metrics={k: (None if isinstance(v, float) and not math.isfinite(v) else v) for k, v in metrics.items()},
        metric_order=suite.metrics, primary_metrics=suite.primary_metrics, protocol=proto.as_dict(),
        samples={k: counts.get(k, 0) for k in ("used", "skipped_no_valid", "skipped_degenerate", "skipped_missing")},
        selection=make_selection(limit, _sample_ids(held_out), n,
                                 split_size(dataset, proto.split, data_root, held_out, limit)),
        data_source=make_data_source("synthetic" if load_card(dataset).get("reader") == "synthetic" else "disk",
                                     None if load_card(dataset).get("reader") == "synthetic" else data_root),
        model_params=0, split=proto.split, run_id=make_run_id(salt="median-depth-baseline"))
    from dabench.train.distributed import dist_info

    if dist_info().is_main:  # under torchrun every rank scored its shard; rank 0 writes
        write_record(rec, Path(results_dir) if results_dir else default_results_dir())  # sets rec.path
    return rec
