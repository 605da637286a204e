"""What a depth suite run writes besides the metrics: the record skeleton (through
``dabench.results.record.make_record``), its data source, per-sample CSVs, ``--log-samples``
arrays and the run manifest."""
from __future__ import annotations

import csv
import io
import math
from pathlib import Path
from typing import Any

import numpy as np

from dabench.eval.scoring import eval_valid_mask
from dabench.eval.suites import Protocol, Suite
from dabench.metrics.registry import depth_engine_metrics
from dabench.models.resolve import ModelRun
from dabench.results.record import Record


def clean_value(v):
    """``v``, with a non-finite float as None (JSON has no NaN)."""
    if isinstance(v, float) and not math.isfinite(v):
        return None
    return v


def write_samples_csv(path: Path, rows: list[dict[str, Any]], family: str = "depth") -> None:
    """The per-sample CSV (index, name, status, valid pixels, fit, the family's metrics), atomically."""
    from dabench.provenance import atomic_write_text

    cols = ["index", "name", "status", "valid_pixels", "scale", "shift", *depth_engine_metrics(family)]
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=cols, lineterminator="\n")
    w.writeheader()
    for r in rows:
        w.writerow({k: ("" if r.get(k) is None else (repr(r[k]) if isinstance(r[k], float) else r[k])) for k in cols})
    atomic_write_text(path, buf.getvalue(), errors="surrogateescape")  # sample names as the OS gave them


def add_scores(rec: Record, res, rows: list[dict], protocol: Protocol, dataset: str, resamples: int,
               seed: int) -> Record:
    """Put a depth dataset's result ``res`` (``DatasetResult``) into ``rec``: ``status: skipped`` when no
    sample had valid pixels, else ``metrics``, ``metrics_pixel_pooled`` and, with ``resamples`` > 0, the
    per-image bootstrap intervals of ``rows`` (``ci``, ``bootstrap``)."""
    from dabench.results.stats import DEFAULT_CONFIDENCE, record_cis

    if res.counts["used"] == 0:
        rec.update(status="skipped", skip_reason=f"no sample of {dataset} had valid pixels to score "
                                                 f"({res.counts['total']} samples)")
        return rec
    rec["metrics"] = {k: clean_value(v) for k, v in res.metrics.items()}
    rec["metrics_pixel_pooled"] = {k: clean_value(v) for k, v in res.metrics_pixel_pooled.items()}
    if resamples > 0:
        rec["ci"] = record_cis(rows, depth_engine_metrics(protocol.metric_family), rec["averaging"], resamples, seed)
        rec["bootstrap"] = {"method": "percentile", "over": "images", "resamples": resamples,
                            "confidence": DEFAULT_CONFIDENCE, "seed": seed}
    return rec


def skipped_records(suite: Suite, run: ModelRun, skipped: list[dict], config: dict, seed: int, facts, run_id,
                    model_fields: dict[str, Any], finish=None) -> list[Record]:
    """A ``status: "skipped"`` record of ``run`` for each entry of ``plan_datasets``' ``skipped`` (its reason
    and the synthetic stand-in scored in its place), passed through ``finish`` (a task's own fields)."""
    from dabench.data import load_card
    from dabench.eval.suites import resolve_protocol

    out = []
    for sk in skipped:
        rec = base_record(suite, run, sk["dataset"], resolve_protocol(suite, sk["dataset"], load_card(sk["dataset"])),
                          config, seed, facts.n_params, facts.checkpoint_sha256, run_id, metric_names=suite.metrics,
                          model_fields=model_fields)
        rec.update(status="skipped", skip_reason=sk["reason"], fallback=sk["fallback"])
        out.append(finish(rec) if finish is not None else rec)
    return out


def base_record(suite: Suite, run: ModelRun, dataset: str, protocol: Protocol | None, config: dict, seed: int,
                 model_params: int | None, checkpoint_sha: str | None, run_id: str | None = None,
                 data_source: dict | None = None, metric_names=None,
                 model_fields: dict[str, Any] | None = None) -> Record:
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


def data_source(card: dict, root, fallback_info: dict | None) -> dict:
    """The record's ``data_source``: the folder read, or the synthetic stand-in and what it replaced."""
    from dabench.results.record import make_data_source

    if card.get("reader") == "synthetic":
        return make_data_source("synthetic", None, (fallback_info or {}).get("fallback_for"))
    return make_data_source("disk", (Path(root) / card["root"]) if card.get("root") else root)


def sample_logger(results_dir: Path, run_id: str, model: str, dataset: str, mode: str = "all",
                  output_space: str | None = None):
    """A ``log_sample`` callback writing ``runs/<run_id>/samples/<model>/<dataset>/<sample_id>.npz``.
    ``mode`` ``all``: float16 ``pred``, ``aligned``, ``gt``; bool ``valid``; strings ``output_space``,
    ``score_space``, ``status``; plus the model's per-pixel side outputs as float16 ``aux_<name>``, e.g.
    Depth Anything 3's ``aux_confidence``. ``pred``: float32 ``pred`` and strings ``output_space``,
    ``status``, ``name`` (what ``dabench rescore`` needs; ``dabench.eval.samplelog``). ``sample_id`` is
    :func:`dabench.results.store.sample_file_name`: the name made file-safe plus a short hash of its
    bytes, so different names never share a file. ``output_space``: the model's, where ``info`` does
    not say it."""
    from dabench.provenance import atomic_path
    from dabench.results.store import run_dir, safe_name, sample_file_name

    folder = run_dir(results_dir, run_id) / "samples" / safe_name(model) / safe_name(dataset)
    f16 = np.finfo(np.float16).max

    def log(name, pred, sample, protocol, status, info):
        def half(x):
            return None if x is None else np.clip(np.nan_to_num(np.asarray(x, np.float32)), -f16, f16).astype(np.float16)

        if mode == "pred":
            space = info.get("output_space") or output_space or ""
            arrays = {"pred": np.asarray(pred, np.float32), "output_space": np.array(str(space)),
                      "status": np.array(status), "name": np.array(str(name))}
        else:
            arrays = {"pred": half(pred), "gt": half(sample.get("depth")),
                      "valid": eval_valid_mask(sample, protocol), "aligned": half(info.get("aligned")),
                      "output_space": np.array(str(info.get("output_space", ""))),
                      "score_space": np.array(protocol.score_space), "status": np.array(status)}
            for key, val in (info.get("aux") or {}).items():
                arrays[f"aux_{safe_name(key)}"] = half(val)
        path = folder / f"{sample_file_name(name)}.npz"
        with atomic_path(path) as tmp:
            with open(tmp, "wb") as fh:
                np.savez_compressed(fh, **{k: v for k, v in arrays.items() if v is not None})

    return log


def write_manifest(results_dir, run_id: str, suite: Suite, records: list[Record], limit, seed) -> None:
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
