"""The ``geometry`` and ``boundary`` tasks: MoGe's invariance ladder and Depth Pro's boundary sharpness.

``geometry`` (suite ``moge``): each image's outputs (``dabench.models.outputs``: the kinds and
invariance levels the model declares) and its ground truth (depth, valid mask, the point map
unprojected through the dataset's intrinsics, normalised intrinsics, whether the depth is metric
and whether its edges are sharp; the synthetic world's instances as segments for local points) go
through ``dabench.metrics.geometry.compute_levels``. A dataset's value of a metric is the mean over
the images that have it, as MoGe averages (``key_average``); a level the model cannot produce, or
the data cannot score (no intrinsics: no point or field-of-view level; blended edges: no boundary
F1), is absent from the record, never 0.

``boundary`` (suite ``boundary``): ``si_boundary_f1`` of the prediction as depth against the ground
truth, and, where the sample has an object mask (the synthetic world's boxes and spheres),
``si_boundary_recall`` against it. The prediction becomes depth at its declared level: metric or
scale-invariant depth as it is (the metric is scale-invariant), affine-invariant depth and disparity
fitted as MoGe fits them (``boundary_depth``). Pixel pairs touching invalid ground truth are not
scored (``mask=``; on dense ground truth this is Depth Pro's metric exactly).

Records hold every level: ``metrics`` (flat ``<level>_<metric>`` means), ``levels`` (the same nested
as MoGe reports them) and ``images_per_metric``. Single process.
"""
from __future__ import annotations

import time

import numpy as np

from dabench.errors import ConfigError
from dabench.results.record import Record

# the protocol keys that bear on these tasks (the rest are depth-alignment settings)
GEOMETRY_PROTOCOL_KEYS = ("split", "input_size", "flip_tta", "min_depth", "max_depth")


def sample_ground_truth(sample: dict, card: dict, protocol) -> dict:
    """MoGe's ground-truth dict of one dabench sample (see the module doc)."""
    from dabench.models.outputs import normalized_intrinsics, unproject

    depth = np.asarray(sample["depth"], dtype=np.float32)
    valid = np.asarray(sample.get("valid", depth > 0), dtype=bool) & np.isfinite(depth)
    valid &= (depth > protocol.min_depth) & (depth < protocol.max_depth)
    gt = {"depth": np.where(valid, depth, 0).astype(np.float32), "depth_mask": valid,
          "is_metric": bool(card.get("metric_depth", True)),
          "has_sharp_boundary": bool(sample.get("sharp_boundary", card.get("sharp_boundary", False)))}
    K = sample.get("intrinsics")
    if K is not None:
        gt["points"] = unproject(gt["depth"], K)
        gt["intrinsics"] = normalized_intrinsics(K, depth.shape).astype(np.float32)
    inst = sample.get("instances")
    if inst is not None:
        inst = np.asarray(inst)
        gt["segmentation_mask"] = inst
        gt["segmentation_labels"] = {f"instance{int(i)}": int(i) for i in np.unique(inst[valid]) if i >= 0}
    return gt


def boundary_depth(pred: dict, gt: dict) -> np.ndarray:
    """The prediction as a depth map for the SI boundary metrics (see the module doc)."""
    import torch

    from dabench.metrics.geometry import SUBSAMPLE
    from dabench.metrics.geometry_align import l1_affine, l2_affine, masked_nearest_subsample

    for key in ("depth_metric", "depth_scale_invariant"):
        if key in pred:
            return np.asarray(pred[key])
    for key in ("points_metric", "points_scale_invariant"):
        if key in pred:
            return np.asarray(pred[key])[..., 2]
    mask = torch.from_numpy(gt["depth_mask"])
    g = torch.from_numpy(gt["depth"])
    if "depth_affine_invariant" in pred:
        p = torch.from_numpy(np.asarray(pred["depth_affine_invariant"]))
        cell, idx = masked_nearest_subsample(mask, SUBSAMPLE)
        gs = g[idx][cell]
        a, b = l1_affine(p[idx][cell], gs, 1 / gs)
        return (p * a + b).numpy()
    if "disparity_affine_invariant" in pred:
        d = torch.from_numpy(np.asarray(pred["disparity_affine_invariant"]))
        a, b = l2_affine(d[mask], 1 / g[mask])
        return (1 / (d * a + b).clamp_min(1e-6)).numpy()
    raise ConfigError(f"no depth, disparity or camera-frame points among the prediction's keys {sorted(pred)}")


def score_image(task: str, pred: dict, gt: dict, sample: dict) -> tuple[dict, dict]:
    """``(flat metrics, nested levels)`` of one image for ``task`` (``geometry`` or ``boundary``)."""
    from dabench.metrics.geometry import compute_levels, flatten_levels, si_boundary_f1, si_boundary_recall

    if task == "geometry":
        if "points" not in gt:  # no intrinsics: point and field-of-view levels cannot be scored
            pred = {k: v for k, v in pred.items() if "points" not in k and k != "intrinsics"}
        levels = compute_levels(pred, gt)
        return flatten_levels(levels), levels
    depth = boundary_depth(pred, gt)
    out = {"si_boundary_f1": si_boundary_f1(depth, gt["depth"], mask=gt["depth_mask"])}
    if sample.get("instances") is not None and sample.get("n_planes") is not None:
        objects = np.asarray(sample["instances"]) >= int(np.asarray(sample["n_planes"]))
        if objects.any():
            out["si_boundary_recall"] = si_boundary_recall(depth, objects.astype(np.float32))
    return out, {"boundary_depth": dict(out)}


def evaluate_geometry(model, dataset, card: dict, protocol, task: str, *, device="cpu", amp_dtype=None,
                      batch_size: int = 4) -> dict:
    """Every image of ``dataset`` through ``model``: ``{"metrics", "levels", "images_per_metric",
    "images", "skipped_no_valid", "rows"}``."""
    from dabench.eval.loop import predict_images
    from dabench.metrics.geometry import LEVELS
    from dabench.models.outputs import declared_outputs, moge_prediction, predict_outputs

    declared = declared_outputs(model)
    per: dict[str, list[float]] = {}
    rows: list[dict] = []
    skipped = 0
    n = len(dataset)
    for start in range(0, n, max(1, int(batch_size))):
        samples = [dataset[i] for i in range(start, min(n, start + batch_size))]
        outs = predict_outputs(model, [s["image"] for s in samples],
                               lambda ims: predict_images(model, ims, protocol, device, amp_dtype),
                               intrinsics=[s.get("intrinsics") for s in samples],
                               names=[s.get("name", start + k) for k, s in enumerate(samples)],
                               input_size=protocol.input_size, device=device, amp_dtype=amp_dtype)
        for k, (s, o) in enumerate(zip(samples, outs)):
            gt = sample_ground_truth(s, card, protocol)
            if not gt["depth_mask"].any():
                skipped += 1
                continue
            pred = moge_prediction(o, declared, gt["depth"].shape)
            flat, _ = score_image(task, pred, gt, s)
            for m, v in flat.items():
                if v == v:  # NaN: the level had nothing to score on this image (MoGe's key_average drops it)
                    per.setdefault(m, []).append(float(v))
            rows.append({"index": start + k, "name": str(s.get("name", start + k)), **flat})
    means = {m: float(np.mean(v)) for m, v in per.items()}
    levels: dict[str, dict[str, float]] = {}
    for lv, ms in LEVELS.items():
        got = {m: means[f"{lv}_{m}"] for m in ms if f"{lv}_{m}" in means}
        if got:
            levels[lv] = got
    return {"metrics": means, "levels": levels if task == "geometry" else {},
            "images_per_metric": {m: len(v) for m, v in per.items()}, "images": len(rows),
            "skipped_no_valid": skipped, "rows": rows}


def _dataset(ds: str, card: dict, proto, request, root):
    from dabench.data import build_dataset

    if card.get("reader") == "synthetic":
        return build_dataset(ds, split=proto.split, limit=request.limit)
    return build_dataset(ds, split=proto.split, data_root=root, limit=request.limit,
                         skip_missing=request.skip_missing, depth_range=(proto.min_depth, proto.max_depth))


def run_geometry_task(suite, runs, request, ctx) -> list[Record]:
    """The ``geometry`` and ``boundary`` tasks (registered in ``dabench.tasks.TASKS``, with the
    ``EvalRequest`` fields they honour): every model on every selected dataset, one record each, the
    table printed on request."""
    from dabench.data import load_card
    from dabench.eval.plan import plan_datasets, split_size
    from dabench.eval.records import base_record, clean_value, data_source, skipped_records
    from dabench.eval.suites import resolve_protocol
    from dabench.metrics.registry import higher_is_better
    from dabench.models.outputs import declared_outputs
    from dabench.eval.models import start_model
    from dabench.results.record import make_selection
    from dabench.results.store import write_record
    from dabench.results.tables import print_suite_table
    from dabench.tasks import record_config, task_honours

    r, root = request, ctx.root
    plan, skipped = plan_datasets(suite, list(ctx.datasets), root, r.allow_fallback)
    config = record_config(suite, r, ctx, task_honours(suite.task))
    records: list[Record] = []

    def finish(rec: Record) -> Record:
        rec["higher_is_better"] = higher_is_better(suite.metrics)
        rec["averaging"] = {m: "image" for m in suite.metrics}
        rec["protocol"] = {k: (rec.get("protocol") or {}).get(k) for k in GEOMETRY_PROTOCOL_KEYS}
        return rec

    for run in runs:
        model, model_fields, facts = start_model(run, r.seed, suite, r.results_dir,
                                                 [ds for ds, _ in plan] + [s["dataset"] for s in skipped], ctx.console)
        declared = declared_outputs(model)
        n_params, ck_sha = facts.n_params, facts.checkpoint_sha256
        for rec in skipped_records(suite, run, skipped, config, r.seed, facts, ctx.run_id, model_fields, finish):
            records.append(rec)
            write_record(rec, ctx.results_dir)
        for ds, fb in plan:
            card = load_card(ds)
            proto = resolve_protocol(suite, ds, card, overrides={"flip_tta": r.flip_tta, "input_size": r.input_size},
                                     in_suite=ds in suite.dataset_names).for_model(model)
            dataset = _dataset(ds, card, proto, r, root)
            t0 = time.time()
            res = evaluate_geometry(model, dataset, card, proto, suite.task, device=ctx.device, amp_dtype=r.amp_dtype,
                                    batch_size=r.batch_size)
            rec = base_record(suite, run, ds, proto, config, r.seed, n_params, ck_sha, ctx.run_id,
                              data_source(card, root, fb), metric_names=suite.metrics, model_fields=model_fields)
            rec["samples"] = {"used": res["images"], "skipped_no_valid": res["skipped_no_valid"],
                              "skipped_degenerate": 0,
                              "skipped_missing": int(getattr(dataset, "skipped_missing", 0) or 0)}
            rec["split"] = proto.split or getattr(dataset, "split", None)
            n_total = split_size(ds, proto.split, root, dataset, r.limit)
            rec["selection"] = make_selection(r.limit, [row["name"] for row in res["rows"]], res["images"], n_total)
            rec["geometry_outputs"] = declared
            if not res["metrics"]:
                rec.update(status="skipped", skip_reason=f"no image of {ds} could be scored")
            else:
                rec["metrics"] = {k: clean_value(v) for k, v in res["metrics"].items()}
                if res["levels"]:
                    rec["levels"] = res["levels"]
                rec["images_per_metric"] = res["images_per_metric"]
            rec["seconds"] = round(time.time() - t0, 3)
            finish(rec)
            write_record(rec, ctx.results_dir)  # sets rec.path
            records.append(rec)
        del model
    if not records:
        raise ConfigError(f"suite {suite.name!r}: nothing to evaluate")
    if r.print_table:
        print_suite_table(records, suite, console=ctx.table_console)
    return records
