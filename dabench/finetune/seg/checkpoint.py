"""Segmentation checkpoints: dabench ``final.safetensors`` (weights + the mmseg model config + class
names in the metadata) and mmengine's own resume checkpoints of a run folder."""
from __future__ import annotations

import copy
import json
import os
import sys
from pathlib import Path

from dabench.errors import CheckpointError, MissingFileError
from dabench.finetune.seg.config import check_head_available, head_name, import_mmseg, mmseg_scope, num_classes_of

SEG_HEAD_PREFIX = "seg_"  # dabench.head metadata of seg checkpoints: seg_upernet, seg_mask2former


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


def preload_checkpoint(path: str, ckpt: dict) -> None:
    """Hand mmengine's loader the checkpoint at ``path`` already read and checked (by
    ``resume_checkpoint``), so it is read once."""
    _PRELOADED[str(Path(path).resolve())] = ckpt


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
# checkpoints
# ---------------------------------------------------------------------------------------------
def unwrap_model(model):
    """The segmentor inside an mmengine/torch model wrapper (DDP), else ``model``."""
    from mmengine.model import is_model_wrapper

    return model.module if is_model_wrapper(model) else model


def save_seg_checkpoint(model, path: str | os.PathLike, cfg, *, dataset: str, preset: str | None,
                        extra: dict | None = None) -> Path:
    """Write the segmentor's weights as dabench safetensors; metadata keeps the mmseg model config
    (encoder ``init`` cleared: the weights are in the file) and the class names."""
    from dabench.models import save_checkpoint

    model = unwrap_model(model)
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
    from mmengine.model import revert_sync_batchnorm

    with mmseg_scope():
        model = revert_sync_batchnorm(MODELS.build(cfg))  # evaluation is single-process: SyncBN -> BN
    if state_dict is not None:
        missing, unexpected = model.load_state_dict(state_dict, strict=False)
        if missing or unexpected:
            raise CheckpointError(f"checkpoint {source} does not match its own model config: "
                                  f"missing {sorted(missing)[:6]}, unexpected {sorted(unexpected)[:6]}")
    if config.get("classes"):
        model.dataset_meta = {"classes": tuple(config["classes"])}
    return model
