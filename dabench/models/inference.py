"""Image → disparity inference with the official Depth Anything pre- and post-processing.

``preprocess`` reproduces the official ``image2tensor``: the RGB uint8 image is scaled to
[0, 1] (float64, as the official ``/ 255.0``), resized with ``cv2.INTER_CUBIC`` keeping the aspect
ratio so that both sides are at least ``input_size`` ("lower_bound") and multiples of 14
(rounded to the nearest multiple, rounded up if that falls below ``input_size``), normalised with
the ImageNet mean/std and converted to a ``1×3×h×w`` float32 tensor. (The official code receives
BGR from ``cv2.imread`` and converts it; dabench images are already RGB.)

``predict_image`` is the official ``infer_image`` (one image, prediction resized back to the
original size with bilinear ``align_corners=True``). ``predict_batch`` does the same for many
images: inputs whose network size is equal are batched together (bucketing, no padding, so every
result equals the one-image path), optionally under bf16/fp16 autocast and ``torch.compile``.
"""
from __future__ import annotations

from typing import Callable, Sequence

import numpy as np

from dabench.errors import ConfigError, DataError

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
DEFAULT_INPUT_SIZE = 518


def _constrain_to_multiple_of(x: float, multiple: int, min_val: int = 0) -> int:
    # Official Resize.constrain_to_multiple_of (no max_val): nearest multiple (numpy's round
    # half to even), bumped up to the next multiple when that falls below min_val.
    y = int(np.round(x / multiple) * multiple)
    if y < min_val:
        y = int(np.ceil(x / multiple) * multiple)
    return y


def network_size(height: int, width: int, input_size: int = DEFAULT_INPUT_SIZE,
                 ensure_multiple_of: int = 14) -> tuple[int, int]:
    """The ``(h, w)`` the network sees for an image of ``height × width`` pixels (official lower_bound rule)."""
    if height <= 0 or width <= 0:
        raise DataError(f"image size {height}x{width} is empty")
    if input_size <= 0 or ensure_multiple_of <= 0:
        raise ConfigError(f"input_size ({input_size}) and ensure_multiple_of ({ensure_multiple_of}) must be > 0")
    scale_h = input_size / height
    scale_w = input_size / width
    # lower_bound with keep_aspect_ratio: use the larger scale so both sides reach input_size
    if scale_w > scale_h:
        scale_h = scale_w
    else:
        scale_w = scale_h
    new_h = _constrain_to_multiple_of(scale_h * height, ensure_multiple_of, min_val=input_size)
    new_w = _constrain_to_multiple_of(scale_w * width, ensure_multiple_of, min_val=input_size)
    return new_h, new_w


def check_image(image, name: str = "image") -> np.ndarray:
    """Return ``image`` as an H×W×3 uint8 array, or raise DataError naming it."""
    if not isinstance(image, np.ndarray):
        raise DataError(f"{name}: expected an H×W×3 uint8 numpy array, got {type(image).__name__}")
    if image.ndim != 3 or image.shape[2] != 3:
        raise DataError(f"{name}: expected an H×W×3 RGB image, got shape {tuple(image.shape)}")
    if image.dtype != np.uint8:
        raise DataError(f"{name}: expected dtype uint8 (0-255), got {image.dtype}")
    if image.shape[0] == 0 or image.shape[1] == 0:
        raise DataError(f"{name}: image is empty ({image.shape[0]}x{image.shape[1]})")
    return image


def preprocess_numpy(image: np.ndarray, input_size: int = DEFAULT_INPUT_SIZE,
                     ensure_multiple_of: int = 14) -> np.ndarray:
    """The official transform as a ``3×h×w`` float32 array (see :func:`preprocess`)."""
    import cv2

    image = check_image(image)
    h, w = network_size(image.shape[0], image.shape[1], input_size, ensure_multiple_of)
    x = image / 255.0  # float64, as the official code
    x = cv2.resize(x, (w, h), interpolation=cv2.INTER_CUBIC)
    x = (x - np.asarray(IMAGENET_MEAN)) / np.asarray(IMAGENET_STD)
    return np.ascontiguousarray(np.transpose(x, (2, 0, 1))).astype(np.float32)


def preprocess(image: np.ndarray, input_size: int = DEFAULT_INPUT_SIZE, ensure_multiple_of: int = 14):
    """RGB uint8 ``H×W×3`` → normalised ``1×3×h×w`` float32 tensor, exactly as the official ``image2tensor``."""
    import torch

    return torch.from_numpy(preprocess_numpy(image, input_size, ensure_multiple_of)).unsqueeze(0)


def native_input_size(model) -> int:
    """The shorter side ``model`` runs at by default (pixels): its ``input_size`` (the training size
    recorded in a dabench checkpoint), else 518 as the official weights; DDP/compile wrappers unwrapped."""
    inner = getattr(model, "module", model)
    return int(getattr(inner, "input_size", None) or 518)


def resolve_device(device=None):
    """``None``/``"auto"`` → CUDA when available, else CPU; strings become ``torch.device``."""
    import torch

    if device is None or device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        return torch.device(device)
    except (RuntimeError, TypeError) as e:
        raise ConfigError(f"unknown device {device!r} ({e})") from None


def resolve_amp_dtype(amp_dtype):
    """``None``/``"none"``/``"fp32"`` → None; ``"bf16"``/``"fp16"`` (or torch dtypes) → the torch dtype."""
    import torch

    if amp_dtype is None or isinstance(amp_dtype, torch.dtype):
        if amp_dtype not in (None, torch.bfloat16, torch.float16):
            raise ConfigError(f"autocast dtype must be bfloat16 or float16, got {amp_dtype}")
        return amp_dtype
    table = {"none": None, "fp32": None, "float32": None, "bf16": torch.bfloat16, "bfloat16": torch.bfloat16,
             "fp16": torch.float16, "float16": torch.float16, "half": torch.float16}
    key = str(amp_dtype).lower()
    if key not in table:
        raise ConfigError(f"unknown precision {amp_dtype!r}; expected one of fp32, bf16, fp16")
    return table[key]


def _autocast(device, amp_dtype):
    import contextlib

    import torch

    if amp_dtype is None:
        return contextlib.nullcontext()
    return torch.autocast(device_type=device.type, dtype=amp_dtype)


def predict_image(model, image: np.ndarray, input_size: int = DEFAULT_INPUT_SIZE, device=None) -> np.ndarray:
    """One RGB uint8 image → ``H×W`` float32 prediction at the original size (official ``infer_image``)."""
    import torch
    import torch.nn.functional as F

    image = check_image(image)
    dev = resolve_device(device if device is not None else _model_device(model))
    model = model.to(dev).eval()
    x = preprocess(image, input_size).to(dev)
    with torch.no_grad():
        pred = model(x)
        pred = F.interpolate(pred[:, None].float(), image.shape[:2], mode="bilinear", align_corners=True)[0, 0]
    return pred.cpu().numpy()


def _model_device(model):
    import torch

    for p in model.parameters():
        return p.device
    return torch.device("cpu")


def predict_batch(model, images: Sequence[np.ndarray], input_size: int = DEFAULT_INPUT_SIZE, device="cpu",
                  amp_dtype=None, batch_size: int = 8, compile: bool = False,
                  progress: Callable[[int], None] | None = None) -> list[np.ndarray]:
    """Predict many RGB uint8 images; returns one float32 ``H×W`` map per image at its original size.

    Images are bucketed by their network input size (same-size inputs share a batch of up to
    ``batch_size``; no padding, so results equal :func:`predict_image`). ``amp_dtype``: None,
    "bf16"/"fp16" or a torch dtype (autocast; outputs are returned as float32). ``compile``:
    wrap the model in ``torch.compile`` first. ``progress(n)`` is called after each batch with the
    number of images it held.
    """
    import torch
    import torch.nn.functional as F

    if batch_size < 1:
        raise ConfigError(f"batch_size must be >= 1, got {batch_size}")
    dev = resolve_device(device)
    amp = resolve_amp_dtype(amp_dtype)
    images = [check_image(im, f"image {i}") for i, im in enumerate(images)]
    model = model.to(dev).eval()
    run = torch.compile(model) if compile else model

    buckets: dict[tuple[int, int], list[int]] = {}
    for i, im in enumerate(images):
        buckets.setdefault(network_size(im.shape[0], im.shape[1], input_size), []).append(i)

    results: list[np.ndarray | None] = [None] * len(images)
    with torch.inference_mode():
        for _size, idxs in buckets.items():
            for start in range(0, len(idxs), batch_size):
                chunk = idxs[start:start + batch_size]
                x = torch.from_numpy(np.stack([preprocess_numpy(images[i], input_size) for i in chunk])).to(dev)
                with _autocast(dev, amp):
                    pred = run(x)
                pred = pred.float()
                for j, i in enumerate(chunk):
                    out = F.interpolate(pred[j][None, None], images[i].shape[:2], mode="bilinear",
                                        align_corners=True)[0, 0]
                    results[i] = out.cpu().numpy()
                if progress is not None:
                    progress(len(chunk))
    return results  # type: ignore[return-value]
