"""Content-addressed prediction cache: a rerun of a suite skips the network for finished samples.

Key = sha256 of (cache format version, model fingerprint, image content, the protocol fields that
change the raw prediction: input size, flip TTA, autocast dtype). The value is the raw model
output resized to the image (float32 ``.npy``, the model's own output space), so alignment,
crops and metrics are recomputed from it and changing those never needs a new forward pass.
Files live in ``cache_dir()/predictions/<2 hex>/<key>.npy`` and are written atomically.
"""
from __future__ import annotations

import hashlib
import io
import json
from pathlib import Path
from typing import Any

import numpy as np

from dabench.provenance import atomic_write_bytes, cache_dir, sha256_file

CACHE_FORMAT = "dabench.predcache/1"


def model_fingerprint(model, name: str, checkpoint: str | None = None) -> str:
    """Identity of the weights: the checkpoint file's sha256 if there is one, else a hash of the
    state dict (random-init weights, fine-tuned in-memory models) plus scalar hyper-parameters
    (weight-free baselines)."""
    h = hashlib.sha256()
    h.update(f"{name}|{type(model).__module__}.{type(model).__qualname__}|{getattr(model, 'output_space', '')}".encode())
    scalars = {k: v for k, v in sorted(vars(model).items())
               if not k.startswith("_") and isinstance(v, (int, float, str, bool)) and k != "checkpoint_path"}
    h.update(json.dumps(scalars, sort_keys=True).encode())
    if checkpoint:
        h.update(sha256_file(checkpoint).encode())
    else:
        for k, t in sorted(model.state_dict().items()):
            t = t.detach().cpu().contiguous()
            h.update(f"{k}|{t.dtype}|{tuple(t.shape)}".encode())
            h.update(t.view(-1).view(__import__("torch").uint8).numpy().tobytes() if t.numel() else b"")
    return h.hexdigest()


def image_fingerprint(image: np.ndarray) -> str:
    image = np.ascontiguousarray(image)
    h = hashlib.sha256(f"{image.dtype}|{image.shape}|".encode())
    h.update(image.tobytes())
    return h.hexdigest()


class PredictionCache:
    """get/put raw predictions by key; ``enabled=False`` makes every lookup a miss and stores nothing."""

    def __init__(self, root: str | Path | None = None, enabled: bool = True):
        self.root = Path(root) if root is not None else cache_dir() / "predictions"
        self.enabled = enabled
        self.hits = 0
        self.misses = 0

    @staticmethod
    def key(model_fp: str, image: np.ndarray, pred_protocol: dict[str, Any]) -> str:
        return PredictionCache.key_for(model_fp, image_fingerprint(image), pred_protocol)

    @staticmethod
    def key_for(model_fp: str, image_fp: str, pred_protocol: dict[str, Any]) -> str:
        """``key`` from the image's ``image_fingerprint`` (computed where the image is read: a loader worker)."""
        payload = json.dumps({"format": CACHE_FORMAT, "model": model_fp, "image": image_fp,
                              "protocol": pred_protocol}, sort_keys=True, default=str)
        return hashlib.sha256(payload.encode()).hexdigest()

    def path(self, key: str) -> Path:
        from dabench.safety import safe_join

        return safe_join(self.root, key[:2], f"{key}.npy", what="cache key")

    def get(self, key: str, shape: tuple[int, ...] | None = None) -> np.ndarray | None:
        """The cached prediction, or None (a miss: recompute) when absent, damaged, not a float32
        array, or not of ``shape`` (the image's H×W) — a stale or foreign entry is never an error."""
        if not self.enabled:
            self.misses += 1
            return None
        p = self.path(key)
        from dabench.data.formats import read_npy_header
        from dabench.errors import DabenchError

        try:
            read_npy_header(p, "cache entry")  # a header claiming a huge array is not loaded
            arr = np.load(p, allow_pickle=False)
        except (OSError, ValueError, EOFError, DabenchError):  # absent or damaged: recompute and overwrite
            arr = None
        if (not isinstance(arr, np.ndarray) or arr.dtype != np.float32
                or (shape is not None and tuple(arr.shape) != tuple(shape))):
            self.misses += 1
            return None
        self.hits += 1
        return arr

    def put(self, key: str, pred: np.ndarray) -> None:
        if not self.enabled:
            return
        buf = io.BytesIO()
        np.save(buf, np.ascontiguousarray(pred, dtype=np.float32), allow_pickle=False)
        atomic_write_bytes(self.path(key), buf.getvalue())
