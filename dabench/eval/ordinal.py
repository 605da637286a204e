"""The ``ordinal`` task: pairwise relative-depth accuracy on annotated point pairs (DA-2K).

Each image is predicted at the model's input size and resized back to the image's full resolution
(``predict_images``, with the protocol's flip TTA); the prediction is read at the exact annotated
pixels and every pair is scored by ``dabench.metrics.ordinal.pairs_correct`` (ties wrong, no
alignment). One record per (model, dataset) holds ``metrics.pair_accuracy`` (a fraction), the
per-scene-type accuracies under ``per_scene`` and the pair counts under ``pairs``; a per-pair CSV
sits next to it. When DA-2K is absent, the card's synthetic fallback runs with pairs sampled from
the synthetic world's exact depth (``dabench.data.da2k.SyntheticPairs``).
"""
from __future__ import annotations

import csv
import io
import time
from pathlib import Path

from dabench.errors import ConfigError
from dabench.results.record import Record

SYNTHETIC_PAIRS_PER_IMAGE = 8
# the protocol keys that bear on ordinal scoring (the rest are depth-alignment settings)
ORDINAL_PROTOCOL_KEYS = ("split", "input_size", "flip_tta")


def evaluate_pairs(model, dataset, protocol, *, output_space: str, device: str = "cpu", amp_dtype=None,
                   batch_size: int = 4) -> tuple[dict, list[dict]]:
    """Score every pair of ``dataset`` (samples with ``image``, ``pairs``, ``closer``, ``scene``).

    Returns ``(result, rows)``: ``result`` = ``{"metrics", "per_scene", "pairs", "images"}``,
    ``rows`` = one dict per pair (image, index, scene, correct)."""
    from dabench.eval.loop import predict_images
    from dabench.metrics.ordinal import PairAccuracyState, pairs_correct

    state = PairAccuracyState()
    rows: list[dict] = []
    n = len(dataset)
    for start in range(0, n, max(1, int(batch_size))):
        samples = [dataset[i] for i in range(start, min(n, start + batch_size))]
        preds = predict_images(model, [s["image"] for s in samples], protocol, device, amp_dtype)
        for s, p in zip(samples, preds):
            ok = pairs_correct(p, s["pairs"], s["closer"], output_space, name=str(s["name"]))
            state.update(s["scene"], ok)
            rows += [{"name": s["name"], "pair": k, "scene": s["scene"], "correct": bool(c)} for k, c in enumerate(ok)]
    result = {"metrics": state.compute(), "per_scene": state.per_group(),
              "pairs": {"total": state.n_pairs, "correct": int(sum(state.correct.values()))}, "images": n}
    return result, rows


def _write_pairs_csv(path: Path, rows: list[dict]) -> None:
    from dabench.provenance import atomic_write_text

    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=["name", "pair", "scene", "correct"], lineterminator="\n")
    w.writeheader()
    w.writerows(rows)
    atomic_write_text(path, buf.getvalue(), errors="surrogateescape")  # sample names as the OS gave them


def _dataset(ds: str, card: dict, proto, request, root, seed: int):
    from dabench.data import build_dataset
    from dabench.data.da2k import SyntheticPairs

    if card.get("reader") == "synthetic":
        base = build_dataset(ds, split=proto.split, limit=request.limit)
        return SyntheticPairs(base, pairs_per_image=SYNTHETIC_PAIRS_PER_IMAGE, seed=seed, scene=ds)
    return build_dataset(ds, split=proto.split, data_root=root, limit=request.limit,
                         skip_missing=request.skip_missing)


def _pairs_csv_path(record_file) -> Path:
    p = Path(record_file)
    return p.with_name(p.stem + ".pairs.csv")


def run_ordinal_task(suite, runs, request, ctx) -> list[Record]:
    """The ``ordinal`` task (registered in ``dabench.tasks.TASKS``, with the ``EvalRequest`` fields it
    honours): every model on every selected dataset; one record (+ per-pair CSV, also in the run's
    history) each, the table printed on request. Single process."""
    from dabench.data import load_card
    from dabench.eval.models import start_model
    from dabench.eval.plan import plan_datasets, split_size
    from dabench.eval.records import base_record, clean_value, data_source, skipped_records
    from dabench.tasks import record_config
    from dabench.eval.suites import resolve_protocol
    from dabench.metrics.registry import higher_is_better
    from dabench.results.record import make_selection
    from dabench.results.store import history_path, write_record
    from dabench.results.tables import print_suite_table
    from dabench.tasks import task_honours

    r, root, device = request, ctx.root, ctx.device
    plan, skipped = plan_datasets(suite, list(ctx.datasets), root, r.allow_fallback)
    config = record_config(suite, r, ctx, task_honours(suite.task),
                           synthetic_pairs_per_image=SYNTHETIC_PAIRS_PER_IMAGE)
    records: list[Record] = []

    def finish(rec: Record) -> Record:
        rec["higher_is_better"] = higher_is_better(suite.metrics)
        rec["averaging"] = {m: "pair" for m in suite.metrics}
        rec["protocol"] = {k: (rec.get("protocol") or {}).get(k) for k in ORDINAL_PROTOCOL_KEYS}
        return rec

    for run in runs:
        model, model_fields, facts = start_model(run, r.seed, suite, r.results_dir, r.datasets, ctx.console)
        output_space = model_fields.get("output_space") or getattr(model, "output_space", "disparity")
        n_params, ck_sha = facts.n_params, facts.checkpoint_sha256
        for rec in skipped_records(suite, run, skipped, config, r.seed, facts, ctx.run_id, model_fields, finish):
            records.append(rec)
            write_record(rec, ctx.results_dir)
        for ds, fb in plan:
            card = load_card(ds)
            proto = resolve_protocol(suite, ds, card, overrides={"flip_tta": r.flip_tta, "input_size": r.input_size},
                                     in_suite=ds in suite.dataset_names).for_model(model)
            dataset = _dataset(ds, card, proto, r, root, r.seed)
            t0 = time.time()
            res, rows = evaluate_pairs(model, dataset, proto, output_space=output_space, device=device,
                                       amp_dtype=r.amp_dtype,
                                       batch_size=4 if r.batch_size == "auto" else r.batch_size)
            rec = base_record(suite, run, ds, proto, config, r.seed, n_params, ck_sha, ctx.run_id,
                               data_source(card, root, fb), metric_names=suite.metrics, model_fields=model_fields)
            rec["samples"] = {"used": res["images"], "skipped_no_valid": 0, "skipped_degenerate": 0,
                              "skipped_missing": int(getattr(dataset, "skipped_missing", 0) or 0)}
            rec["split"] = proto.split
            names = list(dict.fromkeys(row["name"] for row in rows))
            n_total = split_size(ds, proto.split, root, getattr(dataset, "base", dataset), r.limit)
            rec["selection"] = make_selection(r.limit, names, res["images"], n_total)
            if res["pairs"]["total"] == 0:
                rec.update(status="skipped", skip_reason=f"no annotated pair in {ds}")
            else:
                rec["metrics"] = {k: clean_value(v) for k, v in res["metrics"].items()}
            rec["per_scene"] = res["per_scene"]
            rec["pairs"] = res["pairs"]
            rec["seconds"] = round(time.time() - t0, 3)
            finish(rec)
            path = write_record(rec, ctx.results_dir)
            _write_pairs_csv(_pairs_csv_path(path), rows)
            if rec.get("run_id"):
                _write_pairs_csv(_pairs_csv_path(history_path(ctx.results_dir, rec)), rows)
            records.append(rec)
        del model
    if not records:
        raise ConfigError(f"suite {suite.name!r}: nothing to evaluate")
    if r.print_table:
        print_suite_table(records, suite, console=ctx.table_console)
    return records
