"""Segmentation fine-tuning configs: presets under ``dabench/configs/heads/seg/``, mmseg import and scope, and the
command line applied to an mmengine ``Config`` (encoder, classes, data root, iterations, launcher).

- :func:`import_mmseg` imports mmseg (through the mmcv-lite shim) and registers dabench's
  components: ``DepthAnythingEncoder``, ``DabenchSyntheticSegDataset``,
  ``DabenchLoadAnnotations``, ``DabenchIoUMetric``, ``MajorityClassSegmentor``.
- :func:`resolve_config` maps ``(preset, dataset, head)`` to a config under ``dabench/configs/heads/seg/``;
  :func:`configure` applies the command line to it.
"""
from __future__ import annotations

import os
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, Literal, Mapping

from dabench.errors import ConfigError, MissingFileError, excerpt
from dabench.finetune.seg.mmcv_compat import INSTALL_HINT, ensure_mmcv_ops, full_mmcv_available
from dabench import configs
from dabench.typed_config import (Count, NonNegativeFloat, PositiveFloat, PositiveInt, Probability, Range, build,
                                  check_value)

DATASETS = ("cityscapes", "ade20k", "synthetic")
HEAD_NAMES = ("upernet", "mask2former")
PRESET_NAMES = ("tiny", "paper")
#: (preset, dataset, head) -> config file under dabench/configs/heads/seg/
PRESETS: dict[tuple[str, str, str], str] = {
    ("paper", "cityscapes", "upernet"): "upernet_da2-vits14_8xb2-80k_cityscapes-896x896.py",
    ("paper", "ade20k", "upernet"): "upernet_da2-vits14_8xb2-160k_ade20k-896x896.py",
    ("paper", "cityscapes", "mask2former"): "mask2former_da1-vitl14_8xb2-80k_cityscapes-896x896.py",
    ("paper", "ade20k", "mask2former"): "mask2former_da1-vitl14_8xb2-160k_ade20k-896x896.py",
    ("tiny", "synthetic", "upernet"): "upernet_da2-test_1xb8-600_synthetic-70x70.py",
    ("tiny", "synthetic", "mask2former"): "mask2former_da2-test_1xb8-600_synthetic-70x70.py",
    ("tiny", "cityscapes", "upernet"): "upernet_da2-test_1xb4-300_cityscapes-70x70.py",
    ("tiny", "ade20k", "upernet"): "upernet_da2-test_1xb4-300_ade20k-70x70.py",
}



@dataclass(frozen=True)
class SegOptions:
    """dabench's own options of ``dabench finetune seg`` (the mmseg model keeps mmseg's config),
    checked by the same typed validator as the training and metric configs before anything runs."""

    dataset: Literal["cityscapes", "ade20k", "synthetic"]
    head: Literal["upernet", "mask2former"]
    preset: Literal["tiny", "paper"]
    init: str | None
    random_init: bool
    arch: str | None
    iters: PositiveInt | None
    batch_size: PositiveInt | None
    seed: Count

    def validate_section(self, key: str) -> None:
        if self.init and self.random_init:
            raise ConfigError("--init and --random-init are exclusive")
        if not self.init and not self.random_init:
            raise ConfigError("pass --init CKPT (official Depth Anything .pth or dabench .safetensors), "
                              "or --random-init to fine-tune a randomly initialised encoder")


def seg_options(**options) -> SegOptions:
    return build(SegOptions, options)


#: the type of an mmseg config key that ``--cfg-option`` may set, by its last part; other keys take
#: the type of the value the config already holds
SEG_KEY_TYPES: dict[str, Any] = {
    "lr": PositiveFloat, "weight_decay": NonNegativeFloat, "eps": PositiveFloat, "momentum": Probability,
    "power": PositiveFloat, "eta_min": NonNegativeFloat, "num_workers": Count, "batch_size": PositiveInt,
    "max_iters": PositiveInt, "val_interval": PositiveInt, "interval": PositiveInt, "num_samples": PositiveInt,
    "max_keep_ckpts": Annotated[int, Range(ge=-1)], "seed": Count,
}


def _type_of(value: Any):
    if isinstance(value, bool):
        return bool
    if isinstance(value, int):
        return int
    if isinstance(value, float):
        return float
    if isinstance(value, str):
        return str
    if isinstance(value, (list, tuple)):
        return list
    if isinstance(value, Mapping):
        return dict
    return Any


def check_cfg_options(cfg, options: Mapping[str, Any] | None, source: str) -> None:
    """``--cfg-option`` keys and values on an mmseg config, checked before they are merged: each
    key must exist in the config (a new key only as an argument of a registry component, a mapping
    with ``type``), list items are addressed by index, and each value must have the type of
    ``SEG_KEY_TYPES`` (ranges included) or of the value it replaces. ``ConfigError`` names the key."""
    tree = cfg.to_dict() if hasattr(cfg, "to_dict") else dict(cfg)
    for key, value in (options or {}).items():
        parts = str(key).split(".")
        node: Any = tree
        for i, part in enumerate(parts):
            where = ".".join(parts[:i]) or "the top level"
            last = i == len(parts) - 1
            if isinstance(node, Mapping):
                if part in node:
                    node = node[part]
                    continue
                if last and "type" in node:  # a new argument of a registry-built component
                    node = None
                    break
                valid = sorted(map(str, node))
                shown = ", ".join(valid[:25]) + (", ..." if len(valid) > 25 else "")
                raise ConfigError(f"unknown config key {key!r} in --cfg-option ({part!r} is not in {where} of "
                                  f"{source}; valid: {shown})")
            if isinstance(node, (list, tuple)):
                if not part.isdigit() or int(part) >= len(node):
                    raise ConfigError(f"unknown config key {key!r} in --cfg-option ({where} of {source} is a list of "
                                      f"{len(node)} items; address one as {where}.0 .. {where}.{len(node) - 1})")
                node = node[int(part)]
                continue
            raise ConfigError(f"unknown config key {key!r} in --cfg-option ({where} of {source} is "
                              f"{excerpt(node)}, not a section)")
        leaf = parts[-1]
        tp = SEG_KEY_TYPES.get(leaf, _type_of(node) if node is not None else Any)
        if node is None and leaf not in SEG_KEY_TYPES:
            tp = Any  # an existing null (or a new component argument) takes any value
        check_value(tp, value, key)


def heads_dir() -> Path:
    """The shipped segmentation-head configs (``dabench/configs/heads/seg``)."""
    return configs.shipped_dir("heads/seg")


def import_mmseg():
    """Import mmsegmentation with dabench's components registered in its registries."""
    ensure_mmcv_ops()
    import mmseg.datasets  # noqa: F401
    import mmseg.engine  # noqa: F401
    import mmseg.evaluation  # noqa: F401
    import mmseg.models  # noqa: F401
    from mmseg.utils import register_all_modules

    register_all_modules(init_default_scope=False)
    from dabench.finetune.seg import backbone, datasets, metric, segmentors, transforms  # noqa: F401

    import mmseg

    return mmseg


def mmseg_scope():
    """Context in which mmseg's registries resolve bare names (``SegDataPreProcessor``, ...)."""
    from mmengine.registry import DefaultScope

    return DefaultScope.overwrite_default_scope("mmseg")

# ---------------------------------------------------------------------------------------------
# configs
# ---------------------------------------------------------------------------------------------
def resolve_config(dataset: str, head: str, preset: str) -> Path:
    """The config file for ``(preset, dataset, head)``; a clear error lists the valid combinations."""
    for value, valid, what in ((dataset, DATASETS, "dataset"), (head, HEAD_NAMES, "head"),
                               (preset, PRESET_NAMES, "preset")):
        if value not in valid:
            raise ConfigError(f"unknown {what} {value!r}; valid: {', '.join(valid)}")
    key = (preset, dataset, head)
    if key not in PRESETS:
        combos = "; ".join(f"--preset {p} --dataset {d} --head {h}" for p, d, h in PRESETS)
        raise ConfigError(f"no {preset} config for {head} on {dataset}; available: {combos} "
                          f"(or pass any mmseg config with --config)")
    path = configs.find("heads/seg", PRESETS[key][: -len(".py")]) or heads_dir() / PRESETS[key]
    if not path.is_file():
        raise MissingFileError(f"config {path} does not exist")
    return path


def load_config(path: str | os.PathLike):
    from dabench.safety import load_config_file

    path = Path(path)
    if not path.is_file():
        raise MissingFileError(f"config {path} does not exist")
    try:
        return load_config_file(path)
    except ConfigError:
        raise
    except Exception as e:  # mmengine raises several types for bad python/config files
        raise ConfigError(f"config {path} could not be loaded: {e}") from None


def head_type(cfg) -> str:
    return str(cfg.model.get("decode_head", {}).get("type", "?"))


def head_name(cfg) -> str:
    t = head_type(cfg).lower()
    return "mask2former" if "mask2former" in t else ("upernet" if "uper" in t else t.replace("head", ""))


def check_head_available(cfg) -> None:
    """Mask2Former needs mmcv's compiled ops and mmdet: say so before anything is built."""
    if head_name(cfg) != "mask2former":
        return
    missing = []
    if not full_mmcv_available():
        missing.append("full mmcv with compiled ops (only mmcv-lite is installed)")
    try:
        import mmdet  # noqa: F401
    except ImportError:
        missing.append("mmdet")
    if missing:
        raise ConfigError(f"the Mask2Former head needs {' and '.join(missing)}; {INSTALL_HINT}. "
                          "The default head, --head upernet, runs with mmcv-lite.")


def encoder_width(arch: str) -> int:
    from dabench.models.depth_anything import CONFIGS
    from dabench.models.dinov2 import ENCODERS

    if arch not in CONFIGS:
        raise ConfigError(f"{arch!r} is not a Depth Anything model; valid: {', '.join(sorted(CONFIGS))}")
    return int(ENCODERS[CONFIGS[arch].encoder].embed_dim)


def _pipelines(cfg):
    """Every transform list in the config (datasets of all dataloaders, nested ConcatDatasets, TTA)."""
    def walk(obj):
        if isinstance(obj, dict):
            for k, v in obj.items():
                if k in ("pipeline", "transforms") and isinstance(v, list):
                    yield v
                yield from walk(v)
        elif isinstance(obj, list):
            for v in obj:
                yield from walk(v)

    yield from walk(cfg._cfg_dict if hasattr(cfg, "_cfg_dict") else cfg)


def leaf_datasets(ds_cfg):
    """The leaf dataset configs of an mmseg dataset config (inside ``ConcatDataset`` / ``RepeatDataset``)."""
    if ds_cfg is None:
        return
    if ds_cfg.get("type") == "ConcatDataset":
        for d in ds_cfg["datasets"]:
            yield from leaf_datasets(d)
    elif "dataset" in ds_cfg and isinstance(ds_cfg["dataset"], dict):  # RepeatDataset etc.
        yield from leaf_datasets(ds_cfg["dataset"])
    else:
        yield ds_cfg


def set_backbone(cfg, arch: str, init: str | None) -> None:
    """Point the config at encoder ``arch`` (loading ``init``) and resize neck/head inputs to its width."""
    width = encoder_width(arch)
    m = cfg.model
    m.backbone.arch = arch
    m.backbone.init = str(init) if init else None
    if "neck" in m and m.neck is not None:
        m.neck.embed_dim = width
    if "decode_head" in m:
        m.decode_head.in_channels = [width] * 4
    if m.get("auxiliary_head"):
        m.auxiliary_head.in_channels = width


def set_num_classes(cfg, n: int) -> None:
    m = cfg.model
    for key in ("decode_head", "auxiliary_head"):
        h = m.get(key)
        if h:
            h.num_classes = n
            if h.get("loss_cls", {}).get("class_weight") is not None:  # Mask2Former: + "no object"
                h.loss_cls.class_weight = [1.0] * n + [0.1]
    for pipeline in _pipelines(cfg):
        for t in pipeline:
            if isinstance(t, dict) and t.get("type") == "DabenchLoadAnnotations":
                t["num_classes"] = n


def card_dataset_cfg(card: dict, split: str, root: str | os.PathLike | None, template: dict) -> dict:
    """An mmseg dataset config for ``split`` of a real segmentation card: ``template``'s type with the
    card's folders (``segmentation.folders``), file suffixes and ``reduce_zero_label`` under ``root``
    (no pipeline)."""
    seg = card["segmentation"]
    folders = seg["folders"]
    if split not in folders:
        raise ConfigError(f"{card['name']}: split must be one of {', '.join(folders)} (labelled splits), got {split!r}")
    img, ann = folders[split]
    return dict(type=template["type"], data_root=str(root) if root else None,
                data_prefix=dict(img_path=img, seg_map_path=ann), img_suffix=seg["img_suffix"],
                seg_map_suffix=seg["seg_map_suffix"], reduce_zero_label=bool(seg["reduce_zero_label"]))


def set_data_root(cfg, dataset: str, data_root: str | os.PathLike | None) -> None:
    """Point the train/val/test datasets of a Cityscapes/ADE20K config at ``<data root>/<card root>``
    (``--data-root``/``$DABENCH_DATA``), reading the card's split folders and file suffixes: train
    on ``segmentation.train_split``, validate and test on the card's ``default_split``."""
    if dataset == "synthetic":
        return
    from dabench.data.cards import load_card
    from dabench.provenance import data_root as _data_root

    card = load_card(dataset)
    root = _data_root(data_root)
    if root is None:
        raise ConfigError(f"{dataset} needs a data root: pass --data-root DIR or set DABENCH_DATA "
                          f"(expects DIR/{card['root']}; see docs/finetune.md, 'Semantic segmentation')")
    full = Path(root) / card["root"]
    splits = {"train_dataloader": card["segmentation"]["train_split"], "val_dataloader": card["default_split"],
              "test_dataloader": card["default_split"]}
    for loader, split in splits.items():
        if cfg.get(loader):
            for ds in leaf_datasets(cfg[loader]["dataset"]):
                if ds.get("type") == "DabenchSyntheticSegDataset":
                    raise ConfigError(f"this config trains on the synthetic world, not {dataset}: use "
                                      f"--preset tiny or paper with --dataset {dataset}, or a config that reads "
                                      f"{dataset}")
                pipeline = ds.get("pipeline")
                ds.update(card_dataset_cfg(card, split, full, ds))
                if pipeline is not None:
                    ds["pipeline"] = pipeline


def check_layout(cfg, loaders=("train_dataloader", "val_dataloader")) -> None:
    """The image and annotation folders the config reads must exist (clear error naming them)."""
    for loader in loaders:
        if not cfg.get(loader):
            continue
        for ds in leaf_datasets(cfg[loader]["dataset"]):
            if "data_root" not in ds or ds.get("type") == "DabenchSyntheticSegDataset":
                continue
            prefix = ds.get("data_prefix", {})
            for key in ("img_path", "seg_map_path"):
                if prefix.get(key):
                    p = Path(ds["data_root"]) / prefix[key]
                    if not p.is_dir():
                        raise MissingFileError(f"{ds.get('type')}: folder {p} does not exist "
                                               "(see docs/finetune.md, 'Semantic segmentation', for the expected layout)")


def num_classes_of(cfg) -> int:
    return int(cfg.model.decode_head.num_classes)


def configure(cfg, *, work_dir: str | os.PathLike, arch: str | None = None, init: str | None = None,
              dataset: str | None = None, data_root: str | os.PathLike | None = None,
              max_iters: int | None = None, batch_size: int | None = None, seed: int = 0,
              launcher: str = "none", checkpoint_interval: int | None = None, log_level: str | None = None):
    """Apply command-line choices to ``cfg`` (in place) and return it."""
    if arch is not None:
        set_backbone(cfg, arch, init)
    elif init is not None:
        cfg.model.backbone.init = str(init)
    set_num_classes(cfg, num_classes_of(cfg))
    if dataset is not None:
        set_data_root(cfg, dataset, data_root)
    cfg.work_dir = str(work_dir)
    cfg.randomness = dict(seed=int(seed))
    cfg.launcher = launcher
    cfg.experiment_name = f"dabench-seg-{uuid.uuid4().hex[:8]}"
    if isinstance(cfg.get("visualizer"), dict):
        cfg.visualizer.pop("name", None)  # unique per Runner (several Runners may share a process)
    if log_level:
        cfg.log_level = log_level
    if batch_size is not None:
        cfg.train_dataloader.batch_size = int(batch_size)
    if max_iters is not None:
        if max_iters < 1:
            raise ConfigError(f"--iters must be >= 1, got {max_iters}")
        old = int(cfg.train_cfg.max_iters)
        cfg.train_cfg.max_iters = int(max_iters)
        cfg.train_cfg.val_interval = min(int(cfg.train_cfg.get("val_interval", max_iters)), int(max_iters))
        cfg.param_scheduler = rescale_schedule(cfg.get("param_scheduler", []) or [], old, int(max_iters))
    if checkpoint_interval is not None:
        cfg.default_hooks.checkpoint.interval = int(checkpoint_interval)
    ckpt_hook = cfg.default_hooks.get("checkpoint")
    if ckpt_hook is not None:
        ckpt_hook.interval = min(int(ckpt_hook.interval), int(cfg.train_cfg.max_iters))
    if launcher != "none":
        import torch

        cfg.env_cfg.setdefault("dist_cfg", {})
        if not torch.cuda.is_available():
            cfg.env_cfg.dist_cfg = dict(backend="gloo")
            cfg.model_wrapper_cfg = dict(type="MMDistributedDataParallel", device_ids=None,
                                         find_unused_parameters=bool(cfg.get("find_unused_parameters", False)))
    return cfg


MIN_SCHEDULE_PHASE = 5  # iterations: a shorter linear warm-up never gets near the base rate (mmengine's
#                         LinearLR ends at (n-1)/n of it and the poly decay chains from there)


def rescale_schedule(schedulers: list, old_iters: int, new_iters: int) -> list:
    """Stretch iteration-based schedulers (warm-up then poly) from ``old_iters`` to ``new_iters``:
    every phase keeps its fraction of the run. A phase that would be shorter than
    ``MIN_SCHEDULE_PHASE`` iterations is dropped (the next one starts where it began), except the
    last, so ``--iters 10`` of the paper's 80k schedule (warm-up 1500) trains at the base rate
    decaying to zero rather than staying in a warm-up that never ramps."""
    phases = [dict(s) for s in schedulers]
    for s in phases:
        for k in ("begin", "end"):
            if s.get(k) is not None:
                s[k] = min(new_iters, round(int(s[k]) * new_iters / old_iters))
    out: list[dict] = []
    begin = None  # where a dropped phase began: the next kept phase starts there
    for i, s in enumerate(phases):
        if begin is not None and s.get("begin") is not None:
            s["begin"] = begin
            begin = None
        last = i == len(phases) - 1
        length = (s.get("end", new_iters) if s.get("end") is not None else new_iters) - s.get("begin", 0)
        if s.get("begin", 0) >= new_iters or (length < MIN_SCHEDULE_PHASE and not last):
            if s.get("begin") is not None and begin is None:
                begin = s["begin"]
            continue
        out.append(s)
    return out
