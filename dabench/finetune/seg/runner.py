"""Glue between dabench and mmsegmentation/mmengine: configs, training, checkpoints, evaluation.

- :func:`import_mmseg` imports mmseg (through the mmcv-lite shim) and registers dabench's
  components: ``DepthAnythingEncoder``, ``DabenchSyntheticSegDataset``,
  ``DabenchLoadAnnotations``, ``DabenchIoUMetric``, ``MajorityClassSegmentor``.
- :func:`resolve_config` maps ``(preset, dataset, head)`` to a config under ``heads/seg/``;
  :func:`configure` applies the command line (encoder arch and checkpoint, data root, work dir,
  iterations, distributed launcher) to an mmengine ``Config``.
- :func:`finetune_seg` trains with mmengine's ``Runner`` (checkpoints every ``interval``
  iterations, ``resume``, DDP through ``torchrun``), writes ``final.safetensors`` and evaluates
  the model and the majority-class baseline on the held-out test split.
- :func:`evaluate` runs a model (or a dabench seg checkpoint) over an mmseg test dataloader
  through ``Runner.test`` and ``DabenchIoUMetric``.
"""
from __future__ import annotations

import copy
import json
import os
import shutil
import sys
import tempfile
import uuid
from pathlib import Path
from typing import Any

from dabench.errors import CheckpointError, ConfigError, MissingFileError
from dabench.finetune.seg.mmcv_compat import INSTALL_HINT, ensure_mmcv_ops, full_mmcv_available
from dabench.provenance import repo_root

DATASETS = ("cityscapes", "ade20k", "synthetic")
HEAD_NAMES = ("upernet", "mask2former")
PRESET_NAMES = ("tiny", "paper")
#: (preset, dataset, head) -> config file under heads/seg/
PRESETS: dict[tuple[str, str, str], str] = {
    ("paper", "cityscapes", "upernet"): "upernet_da2-vits14_8xb2-80k_cityscapes-896x896.py",
    ("paper", "ade20k", "upernet"): "upernet_da2-vits14_8xb2-160k_ade20k-896x896.py",
    ("paper", "cityscapes", "mask2former"): "mask2former_da1-vitl14_8xb2-80k_cityscapes-896x896.py",
    ("paper", "ade20k", "mask2former"): "mask2former_da1-vitl14_8xb2-160k_ade20k-896x896.py",
    ("tiny", "synthetic", "upernet"): "upernet_da2-test_1xb8-600_synthetic-70x70.py",
    ("tiny", "synthetic", "mask2former"): "mask2former_da2-test_1xb8-600_synthetic-70x70.py",
}
#: dataset name -> (dataset base config, sub-directory of the data root)
DATASET_BASES: dict[str, tuple[str, str | None]] = {
    "cityscapes": ("cityscapes.py", "cityscapes"),
    "ade20k": ("ade20k.py", "ade/ADEChallengeData2016"),
    "synthetic": ("synthetic.py", None),
}
SEG_HEAD_PREFIX = "seg_"  # dabench.head metadata of seg checkpoints: seg_upernet, seg_mask2former


def heads_dir() -> Path:
    return repo_root() / "heads" / "seg"


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
    path = heads_dir() / PRESETS[key]
    if not path.is_file():
        raise MissingFileError(f"config {path} does not exist")
    return path


def load_config(path: str | os.PathLike):
    from mmengine.config import Config

    path = Path(path)
    if not path.is_file():
        raise MissingFileError(f"config {path} does not exist")
    try:
        return Config.fromfile(str(path))
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


def _datasets(ds_cfg):
    if ds_cfg is None:
        return
    if ds_cfg.get("type") == "ConcatDataset":
        for d in ds_cfg["datasets"]:
            yield from _datasets(d)
    elif "dataset" in ds_cfg and isinstance(ds_cfg["dataset"], dict):  # RepeatDataset etc.
        yield from _datasets(ds_cfg["dataset"])
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


def set_data_root(cfg, dataset: str, data_root: str | os.PathLike | None) -> None:
    """Set Cityscapes/ADE20K roots from ``--data-root`` (``<root>/cityscapes``,
    ``<root>/ade/ADEChallengeData2016``) and check the standard layout exists."""
    sub = DATASET_BASES.get(dataset, (None, None))[1]
    if sub is None:
        return
    from dabench.provenance import data_root as _data_root

    root = _data_root(data_root)
    if root is None:
        raise ConfigError(f"{dataset} needs a data root: pass --data-root DIR or set DABENCH_DATA "
                          f"(expects DIR/{sub}; see README, 'Semantic segmentation')")
    full = Path(root) / sub
    for loader in ("train_dataloader", "val_dataloader", "test_dataloader"):
        if cfg.get(loader):
            for ds in _datasets(cfg[loader]["dataset"]):
                ds["data_root"] = str(full)


def check_layout(cfg, loaders=("train_dataloader", "val_dataloader")) -> None:
    """The image and annotation folders the config reads must exist (clear error naming them)."""
    for loader in loaders:
        if not cfg.get(loader):
            continue
        for ds in _datasets(cfg[loader]["dataset"]):
            if "data_root" not in ds or ds.get("type") == "DabenchSyntheticSegDataset":
                continue
            prefix = ds.get("data_prefix", {})
            for key in ("img_path", "seg_map_path"):
                if prefix.get(key):
                    p = Path(ds["data_root"]) / prefix[key]
                    if not p.is_dir():
                        raise MissingFileError(f"{ds.get('type')}: folder {p} does not exist "
                                               "(see README, 'Semantic segmentation', for the expected layout)")


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


def rescale_schedule(schedulers: list, old_iters: int, new_iters: int) -> list:
    """Stretch iteration-based schedulers (warm-up then poly) from ``old_iters`` to ``new_iters``,
    keeping every phase at least one iteration long and phases contiguous."""
    bounds = sorted({int(s[k]) for s in schedulers for k in ("begin", "end") if s.get(k) is not None})
    mapped: dict[int, int] = {}
    last = -1
    for b in bounds:
        m = round(b * new_iters / old_iters)
        m = max(m, last + 1) if b > 0 else 0
        mapped[b] = last = m
    out = []
    for s in schedulers:
        s = dict(s)
        for k in ("begin", "end"):
            if s.get(k) is not None:
                s[k] = mapped[int(s[k])]
        if s.get("begin", 0) < new_iters:
            out.append(s)
    return out


# ---------------------------------------------------------------------------------------------
# resume: mmengine's checkpoints pickle a little training state besides tensors (the message hub's
# HistoryBuffer objects, numpy arrays, scalars and dtypes). They are read with
# torch.load(weights_only=True) and an allow-list of exactly those classes: nothing else in a
# checkpoint can be built or called, so a planted iter_N.pth cannot run code. mmengine's own local
# loader is replaced by this one, so every checkpoint it reads goes through the same check.
# ---------------------------------------------------------------------------------------------
_STATISTICS = ("min", "max", "current", "mean")  # HistoryBuffer's statistics methods (pickled by reference)


def _history_buffer_method(owner, name):
    """Stands in for ``builtins.getattr`` while unpickling: HistoryBuffer pickles its statistics
    methods as ``getattr(HistoryBuffer, "mean")``; any other attribute lookup is refused."""
    from mmengine.logging.history_buffer import HistoryBuffer

    if owner is not HistoryBuffer or name not in _STATISTICS:
        raise CheckpointError(f"attribute {name!r} of {owner!r} is not part of an mmengine checkpoint")
    return getattr(HistoryBuffer, name)


def mmengine_safe_globals() -> list:
    """The classes an mmengine (0.10) training checkpoint holds besides tensors: the allow-list."""
    import numpy as np
    from mmengine.logging.history_buffer import HistoryBuffer

    core = getattr(np, "_core", None) or np.core  # numpy 2 renamed numpy.core
    dtypes = (np.bool_, np.int8, np.int16, np.int32, np.int64, np.uint8, np.uint16, np.uint32, np.uint64,
              np.float16, np.float32, np.float64)
    return [HistoryBuffer, core.multiarray._reconstruct, core.multiarray.scalar, np.ndarray, np.dtype,
            *{type(np.dtype(t)) for t in dtypes}, (_history_buffer_method, "builtins.getattr")]


def load_mmengine_checkpoint(filename: str | os.PathLike, map_location=None) -> dict:
    """An mmengine checkpoint read with ``torch.load(weights_only=True)`` + :func:`mmengine_safe_globals`.

    ``CheckpointError`` naming the file when it holds anything else (it was not written by mmengine,
    or was tampered with) or is corrupt. The ``meta.config`` string, which mmengine's resume would
    parse as a Python config (i.e. execute), is dropped.
    """
    import pickle

    import torch

    path = Path(str(filename))
    if not path.is_file():
        raise MissingFileError(f"checkpoint {path} does not exist")
    try:
        with torch.serialization.safe_globals(mmengine_safe_globals()):
            ckpt = torch.load(str(path), map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as e:
        raise CheckpointError(f"refusing to load checkpoint {path}: it holds objects an mmengine checkpoint does "
                              f"not contain ({_unpickling_reason(e)}); dabench only builds tensors, numpy values "
                              "and mmengine's HistoryBuffer from a checkpoint, so this file was not written by "
                              "`dabench finetune seg` or was altered") from None
    except CheckpointError as e:
        raise CheckpointError(f"refusing to load checkpoint {path}: {e}") from None
    except (RuntimeError, OSError, EOFError, ValueError, KeyError, TypeError) as e:
        raise CheckpointError(f"checkpoint {path} is corrupt or truncated ({type(e).__name__}: "
                              f"{str(e).splitlines()[0] if str(e) else ''})") from None
    if not isinstance(ckpt, dict):
        raise CheckpointError(f"checkpoint {path} is not an mmengine checkpoint (a {type(ckpt).__name__}, not a dict)")
    meta = ckpt.get("meta")
    if isinstance(meta, dict):
        meta.pop("config", None)  # mmengine's resume runs Config.fromstring on it: Python code from the file
    return ckpt


def _unpickling_reason(e: Exception) -> str:
    """The refused global/operation of a weights_only error, without torch's advice to unpickle anyway."""
    import re

    text = str(e)
    m = re.search(r"(GLOBAL [\w.]+|unsupported GLOBAL [\w.]+|unrecognized function [^\n]+?)(?: was| which|\n|$)", text)
    if m:
        return m.group(1).strip()
    for line in text.splitlines():
        if line.strip() and "weights_only" not in line and "Weights only" not in line and "torch.load" not in line:
            return line.strip()[:200]
    return type(e).__name__


_PRELOADED: dict[str, dict] = {}  # resolved path -> checkpoint already read (and checked) by resume_checkpoint


def _mmengine_local_loader(filename, map_location=None):
    path = Path(os.path.expanduser(filename))
    cached = _PRELOADED.pop(str(path.resolve()), None)
    return cached if cached is not None else load_mmengine_checkpoint(path, map_location=map_location)


def use_safe_checkpoint_loader() -> None:
    """Make mmengine read local checkpoints (``load_from``, ``resume``) with :func:`load_mmengine_checkpoint`."""
    from mmengine.runner import CheckpointLoader

    CheckpointLoader.register_scheme(prefixes="", loader=_mmengine_local_loader, force=True)


def _mmengine_checkpoints(work_dir: Path) -> list[Path]:
    """``iter_N.pth`` / ``epoch_N.pth`` in ``work_dir``, newest (highest N) first."""
    import re

    found = []
    for p in work_dir.glob("*.pth"):
        m = re.fullmatch(r"(iter|epoch)_(\d+)\.pth", p.name)
        if m and p.is_file():
            found.append((int(m.group(2)), p))
    return [p for _, p in sorted(found, reverse=True)]


def latest_checkpoint(work_dir: str | os.PathLike) -> Path | None:
    """The checkpoint mmengine's CheckpointHook last wrote in ``work_dir`` (``last_checkpoint`` file);
    a name pointing outside ``work_dir`` is refused."""
    from dabench.safety import safe_join

    work_dir = Path(work_dir)
    marker = work_dir / "last_checkpoint"
    if not marker.is_file():
        return None
    try:
        text = marker.read_text(encoding="utf-8").strip()
    except (OSError, UnicodeDecodeError) as e:
        raise CheckpointError(f"{marker} is not a text file naming a checkpoint ({e})") from None
    p = Path(text)
    if p.is_absolute():  # mmengine writes the absolute path; it must still lie in work_dir
        try:
            p = p.resolve().relative_to(work_dir.resolve())
        except ValueError:
            raise CheckpointError(f"{marker} names {text}, outside the run folder {work_dir}") from None
    p = safe_join(work_dir, p.as_posix(), what=f"checkpoint named in {marker}", subdirs=True, error=CheckpointError)
    return p if p.is_file() else None


def resume_checkpoint(work_dir: str | os.PathLike, warn=None) -> tuple[Path, dict]:
    """The newest readable checkpoint of ``work_dir`` and its contents: ``last_checkpoint``'s file,
    else the ``iter_N.pth`` files newest first. A corrupt one is reported through ``warn`` and the
    previous one is tried; a file holding disallowed objects is an error (never skipped silently)."""
    work_dir = Path(work_dir)
    last = latest_checkpoint(work_dir)
    candidates = ([last] if last is not None else []) + [p for p in _mmengine_checkpoints(work_dir) if p != last]
    if not candidates:
        raise MissingFileError(f"--resume: no checkpoint in {work_dir} (no last_checkpoint file or iter_N.pth)")
    warn = warn or (lambda msg: print(f"WARNING: {msg}", file=sys.stderr))
    for p in candidates:
        try:
            return p, load_mmengine_checkpoint(p, map_location="cpu")
        except CheckpointError as e:
            if str(e).startswith("refusing"):
                raise
            warn(f"{e}; falling back to the previous checkpoint")
    raise CheckpointError(f"--resume: no readable checkpoint in {work_dir} (tried {', '.join(p.name for p in candidates)})")


# ---------------------------------------------------------------------------------------------
# distributed (torchrun)
# ---------------------------------------------------------------------------------------------
def detect_launcher(launcher: str | None) -> str:
    """``pytorch`` under torchrun (WORLD_SIZE > 1), else ``none``; on a CPU-only torch the gloo
    process group is created here, because mmengine's own init would call CUDA."""
    if launcher in (None, "auto"):
        launcher = "pytorch" if int(os.environ.get("WORLD_SIZE", "1")) > 1 else "none"
    if launcher == "pytorch":
        import torch
        import torch.distributed as dist

        if not torch.cuda.is_available() and not dist.is_initialized():
            dist.init_process_group(backend="gloo")
    return launcher


def _broadcast_buffers(model) -> None:
    """Copy rank 0's buffers (BN running statistics) to every rank."""
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1:
        for buf in model.buffers():
            dist.broadcast(buf.data, src=0)


def is_main_process() -> bool:
    import torch.distributed as dist

    return not (dist.is_available() and dist.is_initialized()) or dist.get_rank() == 0


# ---------------------------------------------------------------------------------------------
# checkpoints
# ---------------------------------------------------------------------------------------------
def _unwrap(model):
    return model.module if hasattr(model, "module") and not hasattr(model, "backbone") else model


def save_seg_checkpoint(model, path: str | os.PathLike, cfg, *, dataset: str, preset: str | None,
                        extra: dict | None = None) -> Path:
    """Write the segmentor's weights as dabench safetensors; metadata keeps the mmseg model config
    (encoder ``init`` cleared: the weights are in the file) and the class names."""
    from dabench.models import save_checkpoint

    model = _unwrap(model)
    model_cfg = copy.deepcopy(cfg.model.to_dict() if hasattr(cfg.model, "to_dict") else dict(cfg.model))
    model_cfg["backbone"]["init"] = None
    meta = getattr(model, "dataset_meta", None) or {}
    classes = [str(c) for c in meta.get("classes", ())]
    config = {"model": model_cfg, "classes": classes or None, "dataset": dataset, "preset": preset,
              "head": head_name(cfg), "num_classes": num_classes_of(cfg), **(extra or {})}
    return save_checkpoint(model, path, arch=model_cfg["backbone"]["arch"], head=SEG_HEAD_PREFIX + head_name(cfg),
                           config=json.loads(json.dumps(config, default=_json_default)))


def _json_default(o):
    if isinstance(o, tuple):
        return list(o)
    if isinstance(o, Path):
        return str(o)
    raise TypeError(f"not JSON serialisable in a seg config: {type(o).__name__}")


def read_seg_checkpoint(path: str | os.PathLike) -> tuple[dict, dict]:
    """``(config, state_dict)`` of a dabench segmentation checkpoint; a clear error for anything else."""
    from dabench.models import checkpoint as ckpt

    meta = ckpt.read_metadata(path)
    head = meta.get(ckpt.META_HEAD, "")
    if not head.startswith(SEG_HEAD_PREFIX):
        what = f"a {head!r} checkpoint" if head else "not a dabench segmentation checkpoint (no dabench.head metadata)"
        raise CheckpointError(f"checkpoint {path} is {what}; segmentation suites need the final.safetensors "
                              "written by `dabench finetune seg`")
    config = ckpt.checkpoint_config(meta, path)
    if "model" not in config:
        raise CheckpointError(f"checkpoint {path}: its dabench.config metadata has no mmseg model config")
    return config, ckpt.read_state_dict(path)


def build_seg_model(config: dict, state_dict: dict | None = None, source: str = "<checkpoint>"):
    """Build the mmseg segmentor described by a seg checkpoint's config and load its weights strictly."""
    import_mmseg()
    from mmengine.config import ConfigDict
    from mmseg.registry import MODELS

    cfg = ConfigDict(copy.deepcopy(config["model"]))
    check_head_available(ConfigDict(model=cfg))
    if cfg.get("neck", {}).get("norm_cfg", {}).get("type") == "SyncBN":  # evaluation is single-process
        _replace_syncbn(cfg)
    with mmseg_scope():
        model = MODELS.build(cfg)
    if state_dict is not None:
        missing, unexpected = model.load_state_dict(state_dict, strict=False)
        if missing or unexpected:
            raise CheckpointError(f"checkpoint {source} does not match its own model config: "
                                  f"missing {sorted(missing)[:6]}, unexpected {sorted(unexpected)[:6]}")
    if config.get("classes"):
        model.dataset_meta = {"classes": tuple(config["classes"])}
    return model


def build_seg_model_from_checkpoint(arch: str, config: dict):
    """``dabench.models.HEADS`` builder for ``seg_*`` checkpoints (weights loaded by the caller)."""
    model = build_seg_model(config)
    model.arch = arch
    return model


def _replace_syncbn(obj):
    if isinstance(obj, dict):
        for k, v in obj.items():
            if k == "type" and v == "SyncBN":
                obj[k] = "BN"
            else:
                _replace_syncbn(v)
    elif isinstance(obj, list):
        for v in obj:
            _replace_syncbn(v)


# ---------------------------------------------------------------------------------------------
# evaluation
# ---------------------------------------------------------------------------------------------
def _runner_for_test(model, test_dataloader: dict, work_dir: str, *, tta: bool = False,
                     log_level: str = "WARNING"):
    from mmengine.runner import Runner

    if tta:
        from mmseg.registry import MODELS

        model = MODELS.build(dict(type="SegTTAModel", module=model))
    return Runner(model=model, work_dir=work_dir, test_dataloader=test_dataloader,
                  test_cfg=dict(type="TestLoop"), test_evaluator=dict(type="DabenchIoUMetric"),
                  default_scope="mmseg", log_level=log_level, experiment_name=f"dabench-seg-eval-{uuid.uuid4().hex[:8]}",
                  env_cfg=dict(cudnn_benchmark=False, dist_cfg=dict(backend="gloo")), randomness=dict(seed=0))


def evaluate(model, test_dataloader: dict, *, tta: bool = False, work_dir: str | None = None,
             log_level: str = "WARNING") -> dict[str, float]:
    """Run ``model`` (an mmseg segmentor) over ``test_dataloader`` with ``Runner.test``; returns the
    ``DabenchIoUMetric`` dict (``miou``/``macc``/``aacc`` in percent, ``IoU.<class>``)."""
    import_mmseg()
    tmp = None
    if work_dir is None:
        tmp = tempfile.mkdtemp(prefix="dabench-seg-eval-")
        work_dir = tmp
    try:
        runner = _runner_for_test(model, test_dataloader, work_dir, tta=tta, log_level=log_level)
        return dict(runner.test())
    finally:
        if tmp:
            shutil.rmtree(tmp, ignore_errors=True)


def majority_class(dataset_cfg: dict, num_classes: int, max_images: int = 2000) -> int:
    """The class covering most labelled pixels of a (training) dataset, read through mmseg's dataset
    and ``DabenchLoadAnnotations`` (so ``reduce_zero_label`` etc. apply). Up to ``max_images`` images."""
    import numpy as np
    from mmseg.registry import DATASETS

    import_mmseg()
    counts = np.zeros(num_classes, dtype=np.int64)
    for ds_cfg in _datasets(copy.deepcopy(dataset_cfg)):
        ds_cfg = dict(ds_cfg)
        ds_cfg["pipeline"] = [dict(type="DabenchLoadAnnotations", num_classes=num_classes)]
        with mmseg_scope():
            ds = DATASETS.build(ds_cfg)
        for i in range(min(len(ds), max_images)):
            seg = ds[i]["gt_seg_map"]
            seg = seg[seg != 255]
            counts += np.bincount(seg.ravel().astype(np.int64), minlength=num_classes)[:num_classes]
    if counts.sum() == 0:
        raise ConfigError("cannot find the majority class: the training labels are all ignore (255)")
    return int(counts.argmax())


def train_split_for(test_dataset: dict, train_dataset: dict) -> dict:
    """The training split that matches ``test_dataset`` (whose majority class is the baseline):
    for a synthetic family its own ``train`` scenes, otherwise the config's training set."""
    from dabench.finetune.seg.suite import SYNTHETIC_TRAIN_SCENES

    if test_dataset.get("type") == "DabenchSyntheticSegDataset":
        return dict(type="DabenchSyntheticSegDataset", family=test_dataset.get("family", "outdoor"), split="train",
                    num_samples=SYNTHETIC_TRAIN_SCENES, size=tuple(test_dataset.get("size", (84, 84))),
                    seed=int(test_dataset.get("seed", 0)))
    return train_dataset


def majority_model(class_id: int, num_classes: int, data_preprocessor: dict):
    import_mmseg()
    from mmseg.registry import MODELS

    with mmseg_scope():
        return MODELS.build(dict(type="MajorityClassSegmentor", class_id=class_id, num_classes=num_classes,
                                 data_preprocessor=copy.deepcopy(data_preprocessor)))


# ---------------------------------------------------------------------------------------------
# fine-tuning
# ---------------------------------------------------------------------------------------------
def finetune_seg(*, dataset: str = "synthetic", head: str = "upernet", preset: str = "tiny",
                 init: str | None = None, random_init: bool = False, arch: str | None = None,
                 config: str | os.PathLike | None = None, out: str | os.PathLike | None = None,
                 name: str | None = None, data_root: str | None = None, iters: int | None = None,
                 batch_size: int | None = None, seed: int = 0, resume: bool = False, force: bool = False,
                 launcher: str | None = None, evaluate_test: bool = True,
                 cfg_options: dict | None = None) -> dict[str, Any]:
    """Fine-tune a segmentation head on a Depth Anything encoder; see ``dabench finetune seg --help``.

    Returns a summary dict: paths (``final``, ``registered``, ``work_dir``), the last validation
    metrics, and — with ``evaluate_test`` — the test-split metrics of the model and of the
    majority-class baseline.
    """
    if init and random_init:
        raise ConfigError("--init and --random-init are exclusive")
    if not init and not random_init:
        raise ConfigError("pass --init CKPT (official Depth Anything .pth or dabench .safetensors), "
                          "or --random-init to fine-tune a randomly initialised encoder")
    if init and not Path(init).is_file():
        raise MissingFileError(f"--init checkpoint {init} does not exist")
    cfg_path = Path(config) if config else resolve_config(dataset, head, preset)
    import_mmseg()
    cfg = load_config(cfg_path)
    if cfg_options:
        try:
            cfg.merge_from_dict(dict(cfg_options), allow_list_keys=True)
        except (KeyError, IndexError, TypeError, ValueError) as e:
            raise ConfigError(f"--cfg-option could not be applied to {cfg_path}: {e}") from None
    check_head_available(cfg)
    if init:
        from dabench.finetune.seg.backbone import infer_arch

        arch = arch or infer_arch(init, preferred=cfg.model.backbone.get("arch"))
    else:
        arch = arch or cfg.model.backbone.get("arch")
        print(f"WARNING: --random-init: the {arch} encoder starts from RANDOM weights; this measures the "
              "head and the schedule, not the transfer of Depth Anything features.", file=sys.stderr)
    name = name or f"seg_{head_name(cfg)}_{arch}_{dataset}_{preset if not config else Path(config).stem}"
    work_dir = Path(out) if out else Path("runs") / "seg" / name
    launcher = detect_launcher(launcher)
    configure(cfg, work_dir=work_dir, arch=arch, init=init, dataset=dataset, data_root=data_root,
              max_iters=iters, batch_size=batch_size, seed=seed, launcher=launcher)
    check_layout(cfg)
    use_safe_checkpoint_loader()
    if resume:
        last, ckpt = resume_checkpoint(work_dir)  # checked here, so a bad file stops before anything is built
        cfg.load_from = str(last.resolve())
        _PRELOADED[cfg.load_from] = ckpt
        cfg.resume = True

    from mmengine.runner import Runner

    from dabench.safety import claim_out_dir

    claim_out_dir(work_dir, command="finetune seg", resume=resume, force=force)
    runner = Runner.from_cfg(cfg)
    capture = _LastValMetrics()
    runner.register_hook(capture, priority="LOWEST")
    runner.train()
    val_metrics = _split(capture.metrics) if capture.metrics else {}

    summary: dict[str, Any] = {"config": str(cfg_path), "work_dir": str(work_dir), "arch": arch,
                               "init": str(init) if init else None, "random_init": bool(random_init),
                               "head": head_name(cfg), "dataset": dataset, "preset": preset,
                               "iters": int(cfg.train_cfg.max_iters), "val": val_metrics}
    from dabench.provenance import atomic_write_json, checkpoints_dir

    model = _unwrap(runner.model)
    model.dataset_meta = dict(runner.train_dataloader.dataset.metainfo)
    registered = checkpoints_dir() / f"{name}.safetensors"
    summary.update(final=str(work_dir / "final.safetensors"), registered=str(registered))
    if is_main_process():
        final = save_seg_checkpoint(model, work_dir / "final.safetensors", cfg, dataset=dataset, preset=preset,
                                    extra={"init": summary["init"], "iters": summary["iters"], "seed": seed})
        registered.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(final, registered)
        cfg.dump(str(work_dir / "config.py"))
    if evaluate_test and cfg.get("test_dataloader"):
        # every rank takes part (mmengine's evaluator gathers the per-rank results), and every rank
        # must score the saved model: plain BN running stats drift apart between DDP ranks
        _broadcast_buffers(model)
        summary["test"] = _split(runner.test())
        n = num_classes_of(cfg)
        cls = majority_class(train_split_for(cfg.test_dataloader.dataset, cfg.train_dataloader.dataset), n)
        base = majority_model(cls, n, cfg.model.data_preprocessor)
        base.dataset_meta = model.dataset_meta
        summary["majority_class"] = model.dataset_meta["classes"][cls]
        summary["test_majority_baseline"] = _split(evaluate(base, cfg.test_dataloader))
    if is_main_process():
        atomic_write_json(work_dir / "summary.json", summary)
    return summary


def parse_cfg_options(items: list[str] | None) -> dict:
    """``["a.b=1", "c=[1,2]"]`` -> ``{"a.b": 1, "c": [1, 2]}`` (values parsed as YAML, else kept as strings)."""
    import yaml

    out = {}
    for item in items or []:
        if "=" not in item:
            raise ConfigError(f"--cfg-option expects KEY=VALUE, got {item!r}")
        key, raw = item.split("=", 1)
        try:
            out[key.strip()] = yaml.safe_load(raw)
        except yaml.YAMLError:
            out[key.strip()] = raw
    return out


def _split(metrics: dict) -> dict:
    from dabench.finetune.seg.metric import split_metrics

    summary, per_class = split_metrics(metrics)
    return {**summary, "per_class": per_class}


def _last_val_hook_cls():
    from mmengine.hooks import Hook

    class LastValMetrics(Hook):
        """Keeps the metrics of the last validation run."""

        def __init__(self):
            self.metrics: dict = {}

        def after_val_epoch(self, runner, metrics=None):
            self.metrics = dict(metrics or {})

    return LastValMetrics


def _LastValMetrics():  # noqa: N802 - a factory: mmengine is imported lazily
    return _last_val_hook_cls()()
