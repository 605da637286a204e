"""Segmentation suites (``dabench/configs/suites/seg-*.yaml``): evaluate a fine-tuned segmentation
checkpoint, and the majority-class baseline, on held-out data; one results record per
(model, dataset).

``dabench.eval.runner.run_suite`` dispatches ``task: segmentation`` suites through the task registry
(``dabench.tasks.TASKS``) to :func:`run_seg_task`, which calls :func:`run_seg_suite` per model.
Each suite dataset names its protocol source under ``dabench/configs/heads/seg/_base_/datasets/``:

=================== ========================= ===============================================
suite dataset       mmseg dataset              protocol
=================== ========================= ===============================================
synthetic-outdoor   DabenchSyntheticSegDataset ``test`` split (held-out seeds), slide 70/42
synthetic-indoor    DabenchSyntheticSegDataset ``test`` split, slide 70/42
cityscapes          CityscapesDataset          ``val`` (labelTrainIds), slide 896/518
ade20k              ADE20KDataset              ``validation``, slide 896/426
=================== ========================= ===============================================

``flip_tta: true`` in the suite (or ``--flip-tta``) runs the dataset's multi-scale + flip
``tta_pipeline`` through mmseg's ``SegTTAModel`` (the paper's "m.s." column).
Metrics go through ``DabenchIoUMetric`` (mmseg ``IoUMetric`` → dabench ``SegMetricState``).
"""
from __future__ import annotations

import copy
import os
import sys
from pathlib import Path
from typing import Any

from dabench.errors import ConfigError, DabenchError
from dabench.results.record import Record

MAJORITY_MODEL = "majority_class"
DEFAULT_SYNTHETIC_SAMPLES = 64


def _warn(msg: str) -> None:
    print(msg, file=sys.stderr)


def seg_card(dataset: str) -> dict:
    """The card of a dataset a segmentation suite can evaluate (one with a ``segmentation`` block)."""
    from dabench.data.cards import load_card, segmentation_cards

    valid = segmentation_cards()
    if dataset not in valid:
        raise ConfigError(f"no segmentation protocol for dataset {dataset!r}; valid: {', '.join(valid)}")
    return load_card(dataset)


def dataset_protocol(dataset: str, *, split: str | None = None, limit: int | None = None,
                     data_root: str | os.PathLike | None = None, batch_size: int = 1, tta: bool = False,
                     seed: int = 0) -> dict[str, Any]:
    """Everything needed to evaluate on suite dataset ``dataset``: ``test_dataloader`` and
    ``train_dataset`` (for the majority class) configs, ``test_cfg`` (slide windows), ``classes``.
    The split folders, file suffixes and class count come from the dataset card's ``segmentation``
    block; pipelines and slide windows from ``dabench/configs/heads/seg/_base_/datasets/<config>``."""
    from dabench.finetune.seg.config import card_dataset_cfg, heads_dir, load_config

    card = seg_card(dataset)
    seg = card["segmentation"]
    base = load_config(heads_dir() / "_base_" / "datasets" / seg["config"])
    split = split or card["default_split"]
    loader = copy.deepcopy(base.test_dataloader.to_dict())
    loader["batch_size"] = int(batch_size)
    loader["num_workers"] = 0
    loader.pop("persistent_workers", None)
    pipeline = copy.deepcopy(base.tta_pipeline if tta else base.test_pipeline)
    if card["reader"] == "synthetic":
        n = int(limit) if limit else DEFAULT_SYNTHETIC_SAMPLES
        ds = dict(type="DabenchSyntheticSegDataset", family=card["family"], split=split, num_samples=n,
                  size=tuple(base.scene_size), seed=int(seed), pipeline=pipeline)
        from dabench.finetune.seg.evaluate import synthetic_train_split

        train = synthetic_train_split(ds)
        root = None
    else:
        from dabench.provenance import data_root as _data_root

        root_base = _data_root(data_root)
        root = None if root_base is None else Path(root_base) / card["root"]
        ds = card_dataset_cfg(card, split, root, loader["dataset"])
        ds["pipeline"] = pipeline
        if limit:
            ds["indices"] = int(limit)
        train = card_dataset_cfg(card, seg["train_split"], root, loader["dataset"])
        if dataset == "ade20k":
            loader["batch_size"] = 1  # ADE20K images differ in size: mmseg tests them one at a time
    loader["dataset"] = ds
    return {"test_dataloader": loader, "train_dataset": train, "test_cfg": dict(base.slide_test_cfg),
            "split": split, "root": root, "num_classes": int(seg["num_classes"]), "tta": bool(tta)}


def _available(proto: dict) -> str | None:
    """None when the data is there, else why not."""
    root = proto["root"]
    if proto["test_dataloader"]["dataset"].get("type") == "DabenchSyntheticSegDataset":
        return None
    if root is None:
        return "no --data-root / $DABENCH_DATA given"
    ds = proto["test_dataloader"]["dataset"]
    for key in ("img_path", "seg_map_path"):
        p = Path(root) / ds["data_prefix"][key]
        if not p.is_dir():
            return f"folder {p} not found"
    return None


def _record(suite, model: str, dataset: str, *, checkpoint: str | None, arch: str | None, params: int | None,
            protocol: dict, seed: int, config: dict, run_id: str | None = None,
            root: str | None = None) -> Record:
    from dabench.metrics.registry import SEG_METRICS
    from dabench.provenance import sha256_file
    from dabench.results.record import make_data_source, make_record

    source = make_data_source("synthetic" if root is None else "disk", root)
    return make_record(task="segmentation", suite=suite.name, model=model, dataset=dataset,
                       metric_names=SEG_METRICS, seed=seed, run_id=run_id, data_source=source,
                       config={**config, "model": model, "checkpoint": checkpoint, "dataset": dataset},
                       metric_order=list(suite.metrics), primary_metrics=list(suite.primary_metrics),
                       protocol=protocol, samples={"used": 0, "skipped_no_valid": 0, "skipped_missing": 0},
                       arch=arch, model_params=params, checkpoint=checkpoint,
                       checkpoint_sha256=sha256_file(checkpoint) if checkpoint else None, per_class={},
                       split=protocol.get("split"))


def _protocol_block(proto: dict) -> dict:
    tc = proto["test_cfg"]
    return {"split": proto["split"], "inference": tc.get("mode", "whole"),
            "crop_size": list(tc.get("crop_size", [])) or None, "stride": list(tc.get("stride", [])) or None,
            "multi_scale_flip_tta": proto["tta"], "ignore_index": 255}


def _evaluate_into(rec: Record, model, proto: dict, limit: int | None = None) -> Record:
    from dabench.finetune.seg.evaluate import evaluate
    from dabench.finetune.seg.metric import split_metrics

    metrics = evaluate(model, copy.deepcopy(proto["test_dataloader"]), tta=proto["tta"])
    summary, per_class = split_metrics(metrics)
    rec["metrics"] = summary
    rec["per_class"] = per_class
    rec["samples"]["used"] = n = _count(proto)
    rec["selection"] = _selection(proto, n, limit)
    return rec


def _selection(proto: dict, n: int, limit: int | None) -> dict:
    """The record's sample selection: mmseg scores the first ``n`` images of the split in order."""
    from dabench.results.record import make_selection

    ds = proto["test_dataloader"]["dataset"]
    total = DEFAULT_SYNTHETIC_SAMPLES if ds.get("type") == "DabenchSyntheticSegDataset" else None
    return make_selection(limit, [f"{proto['split']}:{i}" for i in range(n)], n, total if limit else n)


def _count(proto: dict) -> int:
    from mmseg.registry import DATASETS

    from dabench.finetune.seg.config import mmseg_scope

    ds = copy.deepcopy(proto["test_dataloader"]["dataset"])
    ds["pipeline"] = []
    with mmseg_scope():
        return len(DATASETS.build(ds))


def run_seg_task(suite, runs, request, ctx) -> list[Record]:
    """The ``segmentation`` task (``dabench.tasks.TASKS``): :func:`run_seg_suite` for each model run
    (``dabench.models.resolve.ModelRun``) under the user's ``dabench.tasks.EvalRequest``.

    ``run_suite`` has already refused the request fields this task does not honour
    (``dabench.tasks.SEGMENTATION_HONOURS``). mmengine's test loop places the model itself (CUDA
    when available), so a ``--device`` it would not use is refused here."""
    _check_device(ctx.device)
    records: list[Record] = []
    for run in runs:
        records.extend(run_seg_suite(suite, run.label, checkpoint=run.checkpoint, data_root=ctx.root,
                                     limit=request.limit, results_dir=ctx.results_dir, device=ctx.device,
                                     batch_size=4 if request.batch_size == "auto" else request.batch_size,
                                     seed=request.seed, datasets=list(ctx.datasets),
                                     random_init=run.random_init, flip_tta=request.flip_tta, print_table=False,
                                     run_id=ctx.run_id))
    if request.print_table and records:
        from rich.console import Console

        from dabench.results.tables import print_suite_table

        print_suite_table(records, suite, console=ctx.table_console or ctx.console or Console())
    return records


def _check_device(device: str) -> None:
    """mmengine's ``Runner`` moves the segmentor to ``mmengine.device.get_device()`` (the first CUDA
    device when there is one, else the CPU); any other ``--device`` would be silently ignored."""
    from mmengine.device import get_device

    used = get_device()
    wanted = str(device)
    if wanted.split(":")[0] != used or (used == "cuda" and wanted not in ("cuda", "cuda:0")):
        raise ConfigError(f"segmentation suites run on mmengine's device ({used}{':0' if used == 'cuda' else ''}); "
                          f"--device {wanted} cannot be applied (pass --device auto)")


def run_seg_suite(suite, model_name: str, checkpoint: str | os.PathLike | None = None, data_root=None,
                  limit: int | None = None, results_dir=None, device: str = "cpu", batch_size: int = 4,
                  seed: int = 0, datasets=None, random_init: bool = False, flip_tta: bool | None = None,
                  include_baseline: bool = True, print_table: bool = True,
                  run_id: str | None = None) -> list[Record]:
    """Evaluate ``checkpoint`` (a ``dabench finetune seg`` final.safetensors) on the suite's datasets,
    plus the majority-class baseline; write and return the records.

    Depth checkpoints and weight-free depth baselines have no segmentation head: they are skipped
    with a message (so ``dabench run --suite seg-synthetic`` without ``--checkpoint`` evaluates the
    local seg checkpoints only).
    """
    from dabench.eval.suites import load_suite, resolve_protocol
    from dabench.finetune.seg.checkpoint import build_seg_model, read_seg_checkpoint
    from dabench.finetune.seg.config import import_mmseg
    from dabench.finetune.seg.evaluate import majority_class, majority_model
    from dabench.provenance import default_results_dir
    from dabench.results.store import write_record

    suite = load_suite(suite)
    if suite.task != "segmentation":
        raise ConfigError(f"suite {suite.name!r} is a {suite.task} suite, not a segmentation suite")
    results_dir = Path(results_dir) if results_dir else default_results_dir()
    if random_init:
        raise ConfigError("segmentation suites evaluate a trained segmentation head: pass --checkpoint with the "
                          "final.safetensors of `dabench finetune seg` (--random-init has no head to evaluate)")
    if checkpoint is None:
        _warn(f"skipping {model_name} in {suite.name}: no segmentation head (not a `dabench finetune seg` checkpoint)")
        return []
    import_mmseg()
    try:
        config, state = read_seg_checkpoint(checkpoint)
    except DabenchError as e:
        if "segmentation checkpoint" in str(e) or "is a '" in str(e):
            _warn(f"skipping {model_name} in {suite.name}: {e}")
            return []
        raise
    model = build_seg_model(config, state, source=str(checkpoint))
    model.eval()
    arch = config["model"]["backbone"]["arch"]
    params = int(sum(p.numel() for p in model.parameters()))
    classes = list(config.get("classes") or [])
    selected = list(datasets) if datasets else list(suite.dataset_names)
    records: list[Record] = []
    for ds in selected:
        proto_s = resolve_protocol(suite, ds, None, {"flip_tta": flip_tta})
        proto = dataset_protocol(ds, split=proto_s.split, limit=limit, data_root=data_root, batch_size=batch_size,
                                 tta=bool(proto_s.flip_tta), seed=seed)
        block = _protocol_block(proto)
        cfg_note = {"suite_path": suite.path, "head": config.get("head"), "trained_on": config.get("dataset"),
                    "limit": limit}
        root = str(proto["root"]) if proto["root"] is not None else None
        rec = _record(suite, model_name, ds, checkpoint=str(checkpoint), arch=arch, params=params, protocol=block,
                      seed=seed, config=cfg_note, run_id=run_id, root=root)
        why = _available(proto)
        if why is None and len(classes) != proto["num_classes"]:
            why = (f"checkpoint {checkpoint} predicts {len(classes)} classes (trained on {config.get('dataset')}); "
                   f"{ds} has {proto['num_classes']}")
        if why is not None:
            rec.update(status="skipped", skip_reason=why)
            write_record(rec, results_dir)
            records.append(rec)
            _warn(f"{ds}: skipped — {why}")
            continue
        model.test_cfg = _config_dict(proto["test_cfg"])
        model.dataset_meta = {"classes": tuple(classes)}
        records.append(_evaluate_into(rec, model, proto, limit))
        write_record(rec, results_dir)
        if include_baseline:
            base_rec = _record(suite, MAJORITY_MODEL, ds, checkpoint=None, arch=None, params=0, protocol=block,
                               seed=seed, config={**cfg_note, "baseline": "majority class of the train split"},
                               run_id=run_id, root=root)
            train = proto["train_dataset"]
            if train.get("data_root") and not (Path(train["data_root"]) / train["data_prefix"]["seg_map_path"]).is_dir():
                why = f"no training labels under {Path(train['data_root']) / train['data_prefix']['seg_map_path']}"
                base_rec.update(status="skipped", skip_reason=f"majority class needs the train split: {why}")
                write_record(base_rec, results_dir)
                records.append(base_rec)
                continue
            cls = majority_class(train, proto["num_classes"], max_images=500)
            base = majority_model(cls, proto["num_classes"], config["model"]["data_preprocessor"])
            base.dataset_meta = {"classes": tuple(classes)}
            base_rec["config"]["majority_class"] = classes[cls]
            records.append(_evaluate_into(base_rec, base, proto, limit))
            write_record(base_rec, results_dir)
    if print_table and records:
        from rich.console import Console

        from dabench.results.tables import print_suite_table

        print_suite_table(records, suite, console=Console(stderr=True))
    return records


def _config_dict(d: dict):
    from mmengine.config import ConfigDict

    return ConfigDict(d)
