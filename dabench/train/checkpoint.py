"""Checkpoint files of the training loop: weights as safetensors, the rest (optimiser, scheduler,
per-rank RNG states, step) as a ``torch.load(weights_only=True)``-readable ``state.pt``; the newest
complete checkpoint is named in ``checkpoints/last_checkpoint`` (mmengine's convention, read with
``mmengine.runner.find_latest_checkpoint``) and ``checkpoints/latest.json`` (older runs).
"""
from __future__ import annotations

import json
import os
import random
from pathlib import Path
from typing import Any, Mapping

import numpy as np
import torch
from torch import nn

from dabench.errors import CheckpointError
from dabench.provenance import atomic_path

__all__ = ["flatten_dict", "fingerprint_diff", "save_weights", "load_weights", "latest_checkpoint", "rng_state",
           "set_rng_state", "LAST_CHECKPOINT", "checkpoint_candidates", "read_checkpoint_files",
           "CorruptCheckpointError"]

#: mmengine's pointer file to the newest checkpoint, inside ``<out>/checkpoints``.
LAST_CHECKPOINT = "last_checkpoint"


def flatten_dict(d: Mapping, prefix: str = "") -> dict[str, Any]:
    """``{"a": {"b": 1}}`` -> ``{"a.b": 1}`` (lists/tuples become JSON text so they compare)."""
    out: dict[str, Any] = {}
    for k, v in d.items():
        key = f"{prefix}{k}"
        if isinstance(v, Mapping):
            out.update(flatten_dict(v, key + "."))
        elif isinstance(v, (list, tuple)):
            out[key] = json.dumps(v, default=str)
        else:
            out[key] = v
    return out


def fingerprint_diff(old: Mapping, new: Mapping) -> list[str]:
    fo, fn = flatten_dict(old), flatten_dict(new)
    diffs = []
    for k in sorted(set(fo) | set(fn)):
        a, b = fo.get(k, "<absent>"), fn.get(k, "<absent>")
        if a != b:
            diffs.append(f"{k}: {a!r} in the checkpoint vs {b!r} now")
    return diffs


def save_weights(model: nn.Module, path: Path, metadata: dict[str, str] | None = None) -> None:
    """All of ``model.state_dict()`` as safetensors (atomic)."""
    from safetensors.torch import save_file

    sd = {k: v.detach().to("cpu").contiguous().clone() for k, v in model.state_dict().items()}
    with atomic_path(path) as tmp:
        save_file(sd, str(tmp), metadata=metadata)


def load_weights(model: nn.Module, path: Path, sd: Mapping[str, torch.Tensor] | None = None) -> None:
    """Load a ``save_weights`` file (or its already read tensors ``sd``) strictly; a key or shape
    mismatch raises ``CheckpointError``."""
    from safetensors.torch import load_file

    sd = dict(sd) if sd is not None else load_file(str(path))
    own = model.state_dict()
    missing = sorted(set(own) - set(sd))
    unexpected = sorted(set(sd) - set(own))
    shapes = [f"{k}: {tuple(sd[k].shape)} in the file vs {tuple(own[k].shape)} in the model"
              for k in sorted(set(sd) & set(own)) if sd[k].shape != own[k].shape]
    if missing or unexpected or shapes:
        parts = []
        if missing:
            parts.append(f"missing keys {missing[:5]}{' ...' if len(missing) > 5 else ''}")
        if unexpected:
            parts.append(f"unexpected keys {unexpected[:5]}{' ...' if len(unexpected) > 5 else ''}")
        if shapes:
            parts.append("shape mismatches " + "; ".join(shapes[:5]))
        raise CheckpointError(f"{path} does not fit this model (another architecture?): " + "; ".join(parts))
    model.load_state_dict(sd, strict=True)


def _complete(p: Path) -> bool:
    return (p / "state.pt").is_file() and (p / "model.safetensors").is_file()


def latest_checkpoint(out_dir: str | os.PathLike) -> Path | None:
    """The newest complete checkpoint directory under ``out_dir/checkpoints``, or None: the one
    ``last_checkpoint`` names (only its last path component is used, so the pointer cannot lead
    outside the folder), else ``latest.json``'s, else the highest ``step_*``."""
    from mmengine.runner import find_latest_checkpoint

    root = Path(out_dir) / "checkpoints"
    if (root / LAST_CHECKPOINT).is_file():
        name = find_latest_checkpoint(str(root))
        if name:
            p = root / Path(name).name
            if p.name.startswith("step_") and _complete(p):
                return p
    pointer = root / "latest.json"
    if pointer.is_file():
        try:
            p = root / Path(str(json.loads(pointer.read_text())["dir"])).name
            if _complete(p):
                return p
        except (ValueError, KeyError, TypeError):
            pass
    cands = sorted(p for p in root.glob("step_*") if _complete(p))
    return cands[-1] if cands else None


def checkpoint_candidates(out_dir: str | os.PathLike) -> list[Path]:
    """Complete checkpoint directories of ``out_dir`` to resume from, best first: the one
    :func:`latest_checkpoint` names, then the other ``step_*`` from the highest step down (the
    fall-backs when the newest turns out to be corrupt)."""
    root = Path(out_dir) / "checkpoints"
    first = latest_checkpoint(out_dir)
    rest = sorted((p for p in root.glob("step_*") if _complete(p) and p != first), reverse=True)
    return ([first] if first is not None else []) + rest


class CorruptCheckpointError(CheckpointError):
    """A checkpoint file that cannot be read at all (truncated, overwritten): resume may fall back."""


def read_checkpoint_files(ckpt: Path) -> tuple[dict, dict]:
    """``(state, weights)`` of checkpoint directory ``ckpt`` (``state.pt`` with weights_only=True,
    ``model.safetensors``); ``CorruptCheckpointError`` naming the file that cannot be read."""
    from safetensors.torch import load_file

    try:
        state = torch.load(ckpt / "state.pt", map_location="cpu", weights_only=True)
    except Exception as e:  # noqa: BLE001 - truncated zip, foreign pickle, ...: never unpickled further
        first = str(e).splitlines()[0] if str(e) else type(e).__name__
        if "weights_only" in first or "Weights only" in first:
            first = "it holds objects other than tensors and plain values"
        raise CorruptCheckpointError(f"training state {ckpt / 'state.pt'} cannot be read ({first})") from None
    if not isinstance(state, dict) or "step" not in state:
        raise CorruptCheckpointError(f"training state {ckpt / 'state.pt'} is not a dabench training state")
    try:
        weights = load_file(str(ckpt / "model.safetensors"))
    except Exception as e:  # noqa: BLE001 - safetensors raises its own error type for a damaged file
        raise CorruptCheckpointError(f"weights {ckpt / 'model.safetensors'} cannot be read ({e})") from None
    return state, weights


def rng_state() -> dict:
    st = {"torch": torch.get_rng_state(), "python": _py_state_to_tensor(random.getstate()),
          "numpy": _np_state_to_tensor(np.random.get_state())}
    if torch.cuda.is_available():
        st["cuda"] = torch.cuda.get_rng_state()
    return st


def set_rng_state(st: Mapping) -> None:
    torch.set_rng_state(st["torch"])
    random.setstate(_py_state_from_tensor(st["python"]))
    np.random.set_state(_np_state_from_tensor(st["numpy"]))
    if "cuda" in st and torch.cuda.is_available():
        torch.cuda.set_rng_state(st["cuda"])


def _py_state_to_tensor(s) -> dict:
    version, internal, gauss = s
    return {"version": int(version), "internal": torch.tensor(internal, dtype=torch.int64),
            "gauss": None if gauss is None else float(gauss)}


def _py_state_from_tensor(d) -> tuple:
    return (d["version"], tuple(int(x) for x in d["internal"].tolist()), d["gauss"])


def _np_state_to_tensor(s) -> dict:
    name, keys, pos, has_gauss, cached = s
    return {"name": str(name), "keys": torch.from_numpy(np.asarray(keys, dtype=np.int64)), "pos": int(pos),
            "has_gauss": int(has_gauss), "cached": float(cached)}


def _np_state_from_tensor(d) -> tuple:
    return (d["name"], d["keys"].numpy().astype(np.uint32), d["pos"], d["has_gauss"], d["cached"])
