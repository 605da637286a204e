"""Batched inference for the evaluation loop: preprocessing split from the forward pass, so that the loop
can prepare batch k + 1 on one thread while batch k runs on the device.

``Predictor.prepare(images)`` groups the images by the network size of the model's ``data_config``
(no padding, as ``predict_batch``) and builds each group's normalised ``B×3×h×w`` input:

- ``host``: the data config's own transform (``DataConfig.preprocess_numpy``'s operations in the same
  order: scale to [0, 1] in float32, ``cv2.resize``, normalise), written into reused buffers: the same
  bits as ``predict_batch``, without allocating per image;
- ``device``: uint8 images copied (pinned, asynchronously) to the model's device and resized there with
  ``torch.nn.functional.interpolate`` (bicubic / bilinear / nearest, which OpenCV's float resize matches
  to float rounding), then normalised: what keeps a GPU fed.

``auto`` is ``device`` on CUDA when the interpolation has a torch twin, else ``host``.
``Predictor.run(prepared)`` runs the model (autocast, flip TTA averaged at image size as
``predict_images`` does) and returns each image's raw prediction at its own size, on the device, and its
side outputs (``aux=True``: the model's ``auxiliary_outputs``, for ``--log-samples``).
Data configs beyond one float resize (Depth Anything 3's two-step side resize, uint8 resizing) are
prepared by ``DataConfig.preprocess_numpy`` itself.
A model with its own ``predict(images)`` is handed the images (``predict_batch``).
"""
from __future__ import annotations

import threading
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from dabench.models.contract import data_config_of, unwrap

TORCH_INTERPOLATION = {"bicubic": "bicubic", "bilinear": "bilinear", "nearest": "nearest"}
PREPROCESS = ("auto", "host", "device")


@dataclass
class Prepared:
    """One batch ready for the forward pass: ``groups`` of (positions in the batch, input tensor[, the
    mirrored input for flip TTA]) or, for models with their own ``predict``, the images themselves."""

    sizes: list[tuple[int, int]]
    groups: list[tuple[list[int], Any, Any]] = field(default_factory=list)
    images: list[np.ndarray] | None = None


class Predictor:
    """The model of one evaluation (see module doc). ``preprocess``: one of ``PREPROCESS``."""

    def __init__(self, model, input_size: int | None, device, amp_dtype=None, flip_tta: bool = False,
                 preprocess: str = "auto", aux: bool = False):
        import torch

        from dabench.models.inference import native_input_size, resolve_amp_dtype, resolve_device

        if preprocess not in PREPROCESS:
            raise ValueError(f"preprocess must be one of {PREPROCESS}, got {preprocess!r}")
        self.device = resolve_device(device)
        self.amp = resolve_amp_dtype(amp_dtype)
        self.model = model.to(self.device).eval()
        self.flip = bool(flip_tta)
        self.own_predict = callable(getattr(unwrap(model), "predict", None))
        self.cfg = None if self.own_predict else data_config_of(model)
        self.size = None if self.own_predict else (input_size or native_input_size(model))
        # side outputs (``auxiliary_outputs(x) -> (prediction, {name: B×h×w})``, e.g. DA3's confidence)
        self.side = getattr(unwrap(model), "auxiliary_outputs", None) if aux else None
        # one resize in float32 after scaling to [0, 1]: the fast paths; other configs (DA3's two-step
        # longest/shortest-side resize, uint8 resizing, "auto" interpolation) take preprocess_numpy itself
        self.plain = self.cfg is not None and self.cfg.resize not in ("longest_side", "shortest_side") and \
            not getattr(self.cfg, "resize_uint8", False) and self.cfg.interpolation in ("nearest", "bilinear",
                                                                                          "bicubic", "area", "lanczos")
        if preprocess == "auto":
            preprocess = ("device" if self.device.type == "cuda" and self.plain
                          and self.cfg.interpolation in TORCH_INTERPOLATION else "host")
        if preprocess == "device" and self.cfg is not None and (not self.plain or self.cfg.interpolation
                                                                not in TORCH_INTERPOLATION):
            raise ValueError(f"this data config ({self.cfg.resize}, {self.cfg.interpolation}) has no torch twin: "
                             "preprocess on the host")
        self.preprocess = preprocess
        self._buffers = threading.local()
        if self.cfg is not None:
            self._mean = np.asarray(self.cfg.mean, dtype=np.float32)
            self._std = np.asarray(self.cfg.std, dtype=np.float32)
            self._mean_t = torch.tensor(self.cfg.mean, dtype=torch.float32, device=self.device).view(1, 3, 1, 1)
            self._std_t = torch.tensor(self.cfg.std, dtype=torch.float32, device=self.device).view(1, 3, 1, 1)

    def network_size(self, height: int, width: int) -> tuple[int, int] | None:
        return None if self.cfg is None else self.cfg.network_size(height, width, self.size)

    # -- preprocessing --------------------------------------------------------------------------
    def prepare(self, images: list) -> Prepared:
        """``images``: H×W×3 uint8 numpy arrays or torch tensors (pinned on CUDA)."""
        sizes = [tuple(im.shape[:2]) for im in images]
        if self.own_predict:
            return Prepared(sizes, images=[np.asarray(im) for im in images])
        buckets: dict[tuple[int, int], list[int]] = {}
        for i, (h, w) in enumerate(sizes):
            buckets.setdefault(self.cfg.network_size(h, w, self.size), []).append(i)
        out = Prepared(sizes)
        for net, idx in buckets.items():
            make = self._device_input if self.preprocess == "device" else self._host_input
            x = make([images[i] for i in idx], net, False)
            xf = make([images[i] for i in idx], net, True) if self.flip else None
            out.groups.append((idx, x, xf))
        return out

    def _buffer(self, name: str, shape: tuple[int, ...]) -> np.ndarray:
        bufs = self._buffers.__dict__
        b = bufs.get(name)
        if b is None or b.shape != shape:
            b = bufs[name] = np.empty(shape, dtype=np.float32)
        return b

    def _host_input(self, images, net, mirror: bool):
        """``DataConfig.preprocess_numpy`` for each image: the same operations in the same order (the same
        bits), into reused buffers, the planes split (``cv2.split``) straight into the batch tensor and
        normalised there: no allocation and no strided transpose per image."""
        import cv2
        import torch

        from dabench.models.contract import check_image, cv2_flag

        h, w = net
        x = torch.empty((len(images), 3, h, w), dtype=torch.float32)
        xn = x.numpy()
        scale = np.float32(1.0 / 255.0)
        flag = cv2_flag(self.cfg.interpolation) if self.plain else None
        for j, im in enumerate(images):
            im = check_image(np.asarray(im), "image")
            if mirror:
                im = im[:, ::-1]
            if not self.plain:
                xn[j] = self.cfg.preprocess_numpy(np.ascontiguousarray(im), self.size)
                continue
            src = self._buffer("src", im.shape)
            np.multiply(im, scale, out=src, dtype=np.float32)  # == im.astype(float32) * float32(1/255)
            if (h, w) != im.shape[:2]:
                dst = self._buffer(f"dst{h}x{w}", (h, w, 3))
                cv2.resize(src, (w, h), dst=dst, interpolation=flag)
            else:
                dst = src
            planes = [xn[j, c] for c in range(3)]
            cv2.split(dst, planes)
            for c, out in enumerate(planes):  # (x - mean) / std, channel by channel
                np.subtract(out, self._mean[c], out=out)
                np.divide(out, self._std[c], out=out)
        return x.to(self.device) if self.device.type != "cpu" else x

    def _device_input(self, images, net, mirror: bool):
        """Resize and normalise on the model's device (``TORCH_INTERPOLATION``; align_corners=False as
        OpenCV's half-pixel centres)."""
        import torch
        import torch.nn.functional as F

        mode = TORCH_INTERPOLATION[self.cfg.interpolation]
        parts = []
        same = len({tuple(im.shape) for im in images}) == 1
        groups = [images] if same else [[im] for im in images]
        for grp in groups:
            t = torch.stack([torch.as_tensor(im) for im in grp]) if len(grp) > 1 else torch.as_tensor(grp[0])[None]
            t = t.to(self.device, non_blocking=True)
            if mirror:
                t = t.flip(2)
            x = t.permute(0, 3, 1, 2).float().mul_(1.0 / 255.0)
            if tuple(x.shape[-2:]) != tuple(net):
                kw = {} if mode == "nearest" else {"align_corners": False}
                x = F.interpolate(x, size=tuple(net), mode=mode, **kw)
            parts.append(((x - self._mean_t) / self._std_t).contiguous())
        return parts[0] if len(parts) == 1 else torch.cat(parts)

    # -- the forward pass ---------------------------------------------------------------------------
    def run(self, prepared: Prepared, finish: bool = True):
        """Raw predictions (float32, each image's size; torch tensors on the device, or numpy for models
        with their own ``predict``). ``finish=False`` returns the network-size outputs for ``finish`` to
        resize back later (on the CPU the loop does that on its scoring thread)."""
        import torch

        from dabench.models.inference import autocast, predict_batch

        if prepared.images is not None:
            aux: list | None = [] if self.side is not None else None
            preds = predict_batch(self.model, prepared.images, device=self.device, amp_dtype=self.amp,
                                  batch_size=max(1, len(prepared.images)), aux=aux)
            preds = [np.asarray(p, dtype=np.float32) for p in preds]
            if self.flip:
                flipped = predict_batch(self.model, [np.ascontiguousarray(im[:, ::-1]) for im in prepared.images],
                                        device=self.device, amp_dtype=self.amp, batch_size=max(1, len(preds)))
                preds = [0.5 * (p + np.asarray(f, dtype=np.float32)[:, ::-1]) for p, f in zip(preds, flipped)]
            out = ("done", preds, aux or [{} for _ in preds])
            return self.finish(out) if finish else out
        raw = []
        with torch.inference_mode():
            for idx, x, xf in prepared.groups:
                extra: dict = {}
                with autocast(self.device, self.amp):
                    if callable(self.side):
                        pred, extra = self.side(x)
                    else:
                        pred = self.model(x)
                    pred_f = self.model(xf) if xf is not None else None
                raw.append((idx, pred.float(), None if pred_f is None else pred_f.float(), extra))
        out = ("raw", prepared.sizes, raw)
        return self.finish(out) if finish else out

    def finish(self, out) -> tuple[list, list[dict]]:
        """``(predictions, side outputs)`` of each image from ``run(..., finish=False)``: resized back to its
        own size as the data config says (one call per group when the sizes agree), flip TTA averaged at
        image size; side outputs (of the unflipped pass) as numpy maps at image size, ``{}`` without any."""
        import torch

        if out[0] == "done":
            return out[1], out[2]
        _, sizes, raw = out
        maps: list = [None] * len(sizes)
        aux: list[dict] = [{} for _ in sizes]
        with torch.inference_mode():
            for idx, pred, pred_f, extra in raw:
                shapes = [sizes[i] for i in idx]
                ms = self._to_image_size(pred, shapes)
                if pred_f is not None:
                    ms = [0.5 * (p + f.flip(-1)) for p, f in zip(ms, self._to_image_size(pred_f, shapes))]
                for i, m in zip(idx, ms):
                    maps[i] = m
                for key, val in extra.items():
                    for j, i in enumerate(idx):
                        aux[i][key] = self.cfg.to_image_size(val[j].float(), sizes[i]).cpu().numpy()
        return maps, aux

    def _to_image_size(self, pred, sizes) -> list:
        if len(set(sizes)) == 1:  # one resize back for the whole group
            return list(self.cfg.to_image_size(pred, sizes[0]).unbind(0))
        return [self.cfg.to_image_size(pred[j], s) for j, s in enumerate(sizes)]


__all__ = ["Predictor", "Prepared", "PREPROCESS"]
