"""`dabench finetune seg`: training with mmengine's ``Runner`` (checkpoints every ``interval``
iterations, ``--resume``, DDP through ``torchrun``), ``final.safetensors``, and the evaluation of the
model and the majority-class baseline on the held-out split."""
from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path
from typing import Any

from dabench.errors import MissingFileError
from dabench.overrides import apply_cfg_options
from dabench.finetune.seg.checkpoint import (preload_checkpoint, resume_checkpoint, save_seg_checkpoint, unwrap_model,
                                             use_safe_checkpoint_loader)
from dabench.finetune.seg.config import (check_cfg_options, check_head_available, check_layout, configure, head_name,
                                         import_mmseg, leaf_datasets, load_config, num_classes_of, resolve_config,
                                         seg_options)
from dabench.finetune.seg.evaluate import evaluate, majority_class, majority_model, train_split_for, with_per_class
from dabench.finetune.seg.quiet import (attach_warnings, log_file_of, print_validation, quiet_runner_class,
                                        warnings_to_run_log)

# ---------------------------------------------------------------------------------------------
# distributed (torchrun)
# ---------------------------------------------------------------------------------------------
def detect_launcher(launcher: str | None) -> str:
    """``pytorch`` under torchrun (WORLD_SIZE > 1), else ``none``. On a CPU-only torch the gloo
    process group is created here, because ``mmengine.dist.init_dist`` would call CUDA; ranks and
    collectives then go through ``mmengine.dist``."""
    if launcher in (None, "auto"):
        launcher = "pytorch" if int(os.environ.get("WORLD_SIZE", "1")) > 1 else "none"
    if launcher == "pytorch":
        import torch
        import torch.distributed as dist

        if not torch.cuda.is_available() and not dist.is_initialized():
            dist.init_process_group(backend="gloo")
    return launcher


def _broadcast_buffers(model) -> None:
    """Copy rank 0's buffers (BN running statistics) to every rank (no-op when not distributed)."""
    from mmengine import dist

    if dist.get_world_size() > 1:
        for buf in model.buffers():
            dist.broadcast(buf.data, src=0)


# ---------------------------------------------------------------------------------------------
# fine-tuning
# ---------------------------------------------------------------------------------------------
@warnings_to_run_log
def finetune_seg(*, dataset: str = "synthetic", head: str = "upernet", preset: str = "tiny",
                 init: str | None = None, random_init: bool = False, arch: str | None = None,
                 config: str | os.PathLike | None = None, out: str | os.PathLike | None = None,
                 name: str | None = None, data_root: str | None = None, iters: int | None = None,
                 batch_size: int | None = None, seed: int = 0, resume: bool = False, force: bool = False,
                 launcher: str | None = None, evaluate_test: bool = True,
                 cfg_options: dict | None = None, results_dir: str | os.PathLike | None = None) -> dict[str, Any]:
    """Fine-tune a segmentation head on a Depth Anything encoder; see ``dabench finetune seg --help``.

    Returns a summary dict: paths (``final``, ``registered``, ``work_dir``), the last validation
    metrics, and — with ``evaluate_test`` — the test-split metrics of the model and of the
    majority-class baseline, also written as results records (suite ``finetune-seg``, through
    ``dabench.results.record.make_record``) under ``results_dir`` (default: the results store).

    Prints one line per validation; mmengine's log and every third-party warning (mmcv-lite, mmseg
    deprecations) go to the run's log file (``dabench.finetune.seg.quiet``).
    """
    opts = seg_options(dataset=dataset, head=head, preset=preset, init=str(init) if init else None,
                       random_init=random_init, arch=arch, iters=iters, batch_size=batch_size, seed=seed)
    if init and not Path(init).is_file():
        raise MissingFileError(f"--init checkpoint {init} does not exist")
    cfg_path = Path(config) if config else resolve_config(opts.dataset, opts.head, opts.preset)
    import_mmseg()
    cfg = load_config(cfg_path)
    check_cfg_options(cfg, cfg_options, str(cfg_path))  # keys and types, before anything is merged or claimed
    apply_cfg_options(cfg, cfg_options, str(cfg_path))
    check_head_available(cfg)
    if init:
        from dabench.finetune.seg.backbone import infer_arch

        arch = arch or infer_arch(init, preferred=cfg.model.backbone.get("arch"))
    else:
        arch = arch or cfg.model.backbone.get("arch")
        print(f"WARNING: --random-init: the {arch} encoder starts from RANDOM weights; this measures the "
              "head and the schedule, not the transfer of Depth Anything features.", file=sys.stderr)
    name = name or f"seg_{head_name(cfg)}_{arch}_{dataset}_{preset if not config else Path(config).stem}"
    from dabench.safety import registered_checkpoint_path

    registered = registered_checkpoint_path(name)  # a --name leaving the checkpoints folder fails before training
    work_dir = Path(out) if out else Path("runs") / "seg" / name
    launcher = detect_launcher(launcher)
    configure(cfg, work_dir=work_dir, arch=arch, init=init, dataset=dataset, data_root=data_root,
              max_iters=iters, batch_size=batch_size, seed=seed, launcher=launcher)
    check_layout(cfg)
    use_safe_checkpoint_loader()
    if resume:
        last, ckpt = resume_checkpoint(work_dir)  # checked here, so a bad file stops before anything is built
        cfg.load_from = str(last.resolve())
        preload_checkpoint(cfg.load_from, ckpt)
        cfg.resume = True

    from mmengine import dist

    from dabench.safety import claim_out_dir

    claim_out_dir(work_dir, command="finetune seg", resume=resume, force=force)
    runner = quiet_runner_class().from_cfg(cfg)
    attach_warnings(runner.logger)  # third-party warnings from here on (and those held) go to its log file
    if dist.is_main_process():
        val = cfg.train_cfg.get("val_interval")
        print(f"fine-tuning {cfg.train_cfg.max_iters} iterations" + (f", validation every {val}" if val else "")
              + f"; full log: {log_file_of(runner.logger)}", flush=True)
    capture = _LastValMetrics()
    runner.register_hook(capture, priority="LOWEST")
    runner.train()
    val_metrics = with_per_class(capture.metrics) if capture.metrics else {}

    summary: dict[str, Any] = {"config": str(cfg_path), "work_dir": str(work_dir), "arch": arch,
                               "init": str(init) if init else None, "random_init": bool(random_init),
                               "head": head_name(cfg), "dataset": dataset, "preset": preset,
                               "iters": int(cfg.train_cfg.max_iters), "val": val_metrics,
                               "held_out": held_out_split(cfg)}
    from dabench.provenance import atomic_write_json

    model = unwrap_model(runner.model)
    model.dataset_meta = dict(runner.train_dataloader.dataset.metainfo)
    summary.update(final=str(work_dir / "final.safetensors"), registered=str(registered))
    if dist.is_main_process():
        final = save_seg_checkpoint(model, work_dir / "final.safetensors", cfg, dataset=dataset, preset=preset,
                                    extra={"init": summary["init"], "iters": summary["iters"], "seed": seed})
        registered.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(final, registered)
        cfg.dump(str(work_dir / "config.py"))
    if evaluate_test and cfg.get("test_dataloader"):
        # every rank takes part (mmengine's evaluator gathers the per-rank results), and every rank
        # must score the saved model: plain BN running stats drift apart between DDP ranks
        _broadcast_buffers(model)
        summary["test"] = with_per_class(runner.test())
        summary["test_samples"] = len(runner.test_dataloader.dataset)  # every image of the held-out split
        n = num_classes_of(cfg)
        cls = majority_class(train_split_for(cfg.test_dataloader.dataset, cfg.train_dataloader.dataset), n)
        base = majority_model(cls, n, cfg.model.data_preprocessor)
        base.dataset_meta = model.dataset_meta
        summary["majority_class"] = model.dataset_meta["classes"][cls]
        summary["test_majority_baseline"] = with_per_class(evaluate(base, cfg.test_dataloader))
    if dist.is_main_process():
        if summary.get("test"):
            summary["records"] = write_finetune_records(summary, cfg, name=name, seed=seed, results_dir=results_dir)
        atomic_write_json(work_dir / "summary.json", summary)
    return summary


FINETUNE_SUITE = "finetune-seg"  # records of the fine-tune's own held-out evaluation


def write_finetune_records(summary: dict, cfg, *, name: str, seed: int, results_dir=None) -> list[str]:
    """One results record for the fine-tuned model and one for the majority-class baseline, scored on
    the held-out split after training (suite ``finetune-seg``; ``held_out`` says whether that split is
    also the validation split), and the run's manifest (``runs/<run_id>/run.json``: a finished run).
    Both records count the held-out images scored (``samples.used``; the whole split, so complete).
    Returns the written record paths."""
    from dabench.metrics.registry import SEG_METRICS
    from dabench.provenance import default_results_dir, git_commit, now_iso
    from dabench.results.record import make_data_source, make_record, make_run_id, make_selection
    from dabench.results.store import write_record, write_run_manifest

    test_sets = list(leaf_datasets(cfg.test_dataloader.dataset.to_dict()
                                   if hasattr(cfg.test_dataloader.dataset, "to_dict") else dict(cfg.test_dataloader.dataset)))
    test_ds = test_sets[0]
    synthetic = all(d.get("type") == "DabenchSyntheticSegDataset" for d in test_sets)
    families = sorted({d.get("family", "outdoor") for d in test_sets}) if synthetic else []
    # one family: the seg-synthetic suite's dataset name; both (the default): the --dataset name
    dataset = (f"synthetic-{families[0]}" if len(families) == 1 else "synthetic") if synthetic else summary["dataset"]
    tc = cfg.model.get("test_cfg") or {}
    held = summary["held_out"]
    protocol = {"split": held["split"], "inference": tc.get("mode", "whole"),
                "crop_size": list(tc.get("crop_size", [])) or None, "stride": list(tc.get("stride", [])) or None,
                "multi_scale_flip_tta": False, "ignore_index": 255, "same_as_val": held["same_as_val"],
                "selects_checkpoint": held["selects_checkpoint"]}
    source = make_data_source("synthetic" if synthetic else "disk", None if synthetic else test_ds.get("data_root"))
    run_id = make_run_id(salt=FINETUNE_SUITE + name)
    config = {k: summary[k] for k in ("config", "work_dir", "init", "random_init", "head", "dataset", "preset",
                                      "iters")}
    n = summary.get("test_samples")
    counts = None if n is None else {"used": int(n), "skipped_no_valid": 0, "skipped_missing": 0}
    selection = None if n is None else make_selection(None, [f"{held['split']}:{i}" for i in range(int(n))], int(n),
                                                      int(n))
    results_dir = Path(results_dir) if results_dir else default_results_dir()
    out, records = [], []
    for model, res, extra in ((name, summary["test"], {"checkpoint": summary["final"], "arch": summary["arch"]}),
                              ("majority_class", summary["test_majority_baseline"],
                               {"majority_class": summary["majority_class"]})):
        metrics = {k: v for k, v in res.items() if k != "per_class"}
        rec = make_record(task="segmentation", suite=FINETUNE_SUITE, model=model, dataset=dataset,
                          metric_names=SEG_METRICS, seed=seed, run_id=run_id, data_source=source,
                          config={**config, **({"majority_class": extra["majority_class"]}
                                               if "majority_class" in extra else {})},
                          metrics=metrics, protocol=protocol, primary_metrics=["miou", "aacc"],
                          samples=counts, selection=selection,
                          per_class=res.get("per_class", {}), held_out=held, split=held["split"],
                          arch=extra.get("arch"), checkpoint=extra.get("checkpoint"),
                          random_init=bool(summary["random_init"]) and model == name)
        out.append(str(write_record(rec, results_dir)))
        records.append(rec)
    write_run_manifest(results_dir, run_id, {
        "date": min(str(r.get("date")) for r in records), "finished": now_iso(), "suite": FINETUNE_SUITE,
        "models": sorted(r["model"] for r in records),
        "datasets": [dataset], "limit": None, "seed": seed, "complete": True, "records": len(records),
        "git_commit": git_commit(), "argv": sys.argv[1:]})
    return out


def _split_name(ds_cfg) -> str | None:
    """The split a dataset config reads: ``split`` (synthetic) or its image folder."""
    ds = next(leaf_datasets(ds_cfg.to_dict() if hasattr(ds_cfg, "to_dict") else dict(ds_cfg)), {})
    return ds.get("split") or (ds.get("data_prefix") or {}).get("img_path")


def held_out_split(cfg) -> dict[str, Any]:
    """What the after-training evaluation scores, said plainly: the test loader's split, whether it is
    the validation split too, and whether validation picks a checkpoint (``save_best``). Cityscapes and
    ADE20K publish no test labels, so their "held-out" split is the validation split."""
    test = cfg.get("test_dataloader")
    val = cfg.get("val_dataloader")
    if not test:
        return {"split": None, "same_as_val": False, "selects_checkpoint": False, "note": "no test split"}
    same = bool(val) and _split_name(test["dataset"]) == _split_name(val["dataset"])
    test_cfg = test["dataset"].to_dict() if hasattr(test["dataset"], "to_dict") else dict(test["dataset"])
    families = [d["family"] for d in leaf_datasets(test_cfg) if d.get("family")]
    best = (cfg.default_hooks.get("checkpoint") or {}).get("save_best")
    info = {"split": _split_name(test["dataset"]), "same_as_val": same, "selects_checkpoint": bool(best and same),
            "families": families or None}
    if same:
        info["note"] = ("the held-out split is the validation split used during training"
                        + (f" (save_best={best} keeps its best checkpoint as best_*.pth; final.safetensors is the "
                           "last iteration)" if best else "") + ": not an unseen test set")
    else:
        info["note"] = "the test split is disjoint from the validation split"
    if families:  # synthetic: say which worlds are scored (classes of an absent family score nothing)
        info["note"] += f"; synthetic families scored: {', '.join(families)}"
    return info


def _last_val_hook_cls():
    from mmengine.hooks import Hook

    class LastValMetrics(Hook):
        """Keeps the metrics of the last validation run and prints one line for each."""

        def __init__(self):
            self.metrics: dict = {}

        def after_val_epoch(self, runner, metrics=None):
            self.metrics = dict(metrics or {})
            print_validation(runner, self.metrics)

    return LastValMetrics


def _LastValMetrics():  # noqa: N802 - a factory: mmengine is imported lazily
    return _last_val_hook_cls()()
