"""Image → prediction inference driven by the model's ``data_config`` (see ``dabench.models.contract``).

``preprocess`` scales the RGB uint8 image to [0, 1] (float64), resizes it with the model's resize
rule and interpolation (for Depth Anything: the official ``image2tensor`` — keep the aspect ratio so
both sides are at least ``input_size`` and multiples of 14, ``cv2.INTER_CUBIC``), normalises with the
model's mean/std and returns a ``1×3×h×w`` float32 tensor. (The official code receives BGR from
``cv2.imread`` and converts it; dabench images are already RGB.)

``predict_image`` is the official ``infer_image`` (one image, prediction resized back to the
original size as the data config says: bilinear ``align_corners=True`` for Depth Anything).
``predict_batch`` does the same for many images: inputs whose network size is equal are batched
together (bucketing, no padding, so every result equals the one-image path), optionally under
bf16/fp16 autocast and ``torch.compile``. A model with its own ``predict(images)`` (transformers
processors, diffusion pipelines) is handed the images as they are.
"""
from __future__ import annotations

from typing import Callable, Sequence

import numpy as np

from dabench.errors import ConfigError
from dabench.models.contract import DataConfig, check_image, data_config_of, unwrap

__all__ = ["network_size", "preprocess", "preprocess_numpy", "predict_image", "predict_batch", "check_image",
           "native_input_size", "resolve_device", "resolve_amp_dtype", "default_data_config", "check_input_size"]


def default_data_config() -> DataConfig:
    """Depth Anything's data config (the default of the module-level helpers below)."""
    from dabench.models.depth_anything import default_data_config as _da

    return _da()


def _config(data_config: DataConfig | None, ensure_multiple_of: int | None = None) -> DataConfig:
    cfg = data_config or default_data_config()
    if ensure_multiple_of is not None:
        if ensure_multiple_of <= 0:
            raise ConfigError(f"ensure_multiple_of must be > 0, got {ensure_multiple_of}")
        cfg = cfg.replace(multiple_of=int(ensure_multiple_of))
    return cfg


def network_size(height: int, width: int, input_size: int | None = None, ensure_multiple_of: int | None = None,
                 data_config: DataConfig | None = None) -> tuple[int, int]:
    """The ``(h, w)`` the network sees for a ``height × width`` image (pixels); default: Depth Anything's rule."""
    return _config(data_config, ensure_multiple_of).network_size(height, width, input_size)


def preprocess_numpy(image: np.ndarray, input_size: int | None = None, ensure_multiple_of: int | None = None,
                     data_config: DataConfig | None = None) -> np.ndarray:
    """The model's transform as a ``3×h×w`` float32 array (see :func:`preprocess`)."""
    return _config(data_config, ensure_multiple_of).preprocess_numpy(image, input_size)


def preprocess(image: np.ndarray, input_size: int | None = None, ensure_multiple_of: int | None = None,
               data_config: DataConfig | None = None):
    """RGB uint8 ``H×W×3`` → normalised ``1×3×h×w`` float32 tensor (Depth Anything: the official ``image2tensor``)."""
    import torch

    return torch.from_numpy(preprocess_numpy(image, input_size, ensure_multiple_of, data_config)).unsqueeze(0)


def native_input_size(model) -> int | None:
    """The size ``model`` runs at by default (pixels): its ``input_size`` (the training size recorded in a
    dabench checkpoint), else its data config's; DDP/compile wrappers unwrapped. None for a model with its
    own ``predict(images)`` (its processor or pipeline sizes the input)."""
    inner = unwrap(model)
    if callable(getattr(inner, "predict", None)):
        return None
    size = getattr(inner, "input_size", None)
    if size:
        return int(size)
    return int(data_config_of(inner).input_size)


def check_input_size(input_size: int | None, model=None, what: str = "--input-size") -> None:
    """Refuse an input size the network would not run at as recorded: not a positive number of
    pixels, not a multiple of ``model``'s patch size (``data_config.multiple_of``: 13 would silently
    become 14), or so large that the network input alone exceeds the pixel cap
    (``dabench.data.formats.max_pixels``). ``None`` (the model's native size) is always fine."""
    if input_size is None:
        return
    size = int(input_size)
    if size < 1:
        raise ConfigError(f"{what} must be a positive number of pixels, got {input_size} (omit it for the model's "
                          "native size)")
    from dabench.data.formats import max_pixels

    if size * size > max_pixels():
        raise ConfigError(f"{what} {size}: the network would see at least {size}x{size} pixels, above the "
                          f"{max_pixels() / 1e6:g}-megapixel cap (--max-pixels / DABENCH_MAX_PIXELS)")
    if model is None or callable(getattr(unwrap(model), "predict", None)):
        return  # a model with its own predict() sizes its input itself
    m = int(data_config_of(model).multiple_of)
    if m > 1 and size % m:
        lower, upper = max(m, size // m * m), (size // m + 1) * m
        raise ConfigError(f"{what} {size} is not a multiple of {m} (the model's patch size); the network would "
                          f"not see {size}: use {lower} or {upper}")


def resolve_device(device=None):
    """``None``/``"auto"`` → CUDA when available, else CPU; strings become ``torch.device``. A device
    this machine does not have (``cuda`` without CUDA, ``cuda:3`` with one GPU) is a one-line
    ``ConfigError``: callers resolve the device before loading any model or data."""
    import torch

    if device is None or device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        dev = torch.device(device)
    except (RuntimeError, TypeError) as e:
        raise ConfigError(f"unknown device {device!r} ({e})") from None
    if dev.type == "cuda":
        if not torch.cuda.is_available():
            why = "this torch is built without CUDA" if torch.version.cuda is None else "no GPU is visible"
            raise ConfigError(f"--device {device}: CUDA is not available on this machine ({why}); "
                              "use --device cpu (or auto)")
        if dev.index is not None and dev.index >= torch.cuda.device_count():
            raise ConfigError(f"--device {device}: this machine has {torch.cuda.device_count()} CUDA device(s) "
                              f"(cuda:0..cuda:{torch.cuda.device_count() - 1})")
    elif dev.type == "mps" and not (getattr(torch.backends, "mps", None) and torch.backends.mps.is_available()):
        raise ConfigError(f"--device {device}: Apple MPS is not available on this machine; use --device cpu")
    return dev


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


def autocast(device, amp_dtype):
    """``torch.autocast`` on ``device`` at ``amp_dtype`` (a no-op context for None: full precision)."""
    import contextlib

    import torch

    if amp_dtype is None:
        return contextlib.nullcontext()
    return torch.autocast(device_type=device.type, dtype=amp_dtype)


def predict_image(model, image: np.ndarray, input_size: int | None = None, device=None) -> np.ndarray:
    """One RGB uint8 image → ``H×W`` float32 prediction at the original size (official ``infer_image``).

    ``input_size`` (pixels): default the model's native size (:func:`native_input_size`)."""
    import torch

    image = check_image(image)
    dev = resolve_device(device if device is not None else _model_device(model))
    model = model.to(dev).eval()
    if callable(getattr(unwrap(model), "predict", None)):
        with torch.no_grad():
            return _own_predict(model, [image])[0]
    cfg = data_config_of(model)
    x = preprocess(image, input_size or native_input_size(model), data_config=cfg).to(dev)
    with torch.no_grad():
        pred = cfg.to_image_size(model(x)[0].float(), image.shape[:2])
    return pred.cpu().numpy()


def _model_device(model):
    import torch

    for p in model.parameters():
        return p.device
    return torch.device("cpu")


def _own_predict(model, images: list[np.ndarray]) -> list[np.ndarray]:
    """Call ``model.predict(images)`` and check it kept its side of the contract (one H×W map per image)."""
    inner = unwrap(model)
    preds = inner.predict(images)
    name = getattr(inner, "arch", None) or type(inner).__name__
    if len(preds) != len(images):
        raise ConfigError(f"model {name}: predict() returned {len(preds)} maps for {len(images)} images")
    out = []
    for im, p in zip(images, preds):
        p = p.detach().float().cpu().numpy() if hasattr(p, "detach") else np.asarray(p)
        p = np.squeeze(p).astype(np.float32)
        if p.shape != im.shape[:2]:
            raise ConfigError(f"model {name}: predict() returned a {p.shape} map for a {im.shape[:2]} image "
                              "(the contract: one H×W map per image, at the image size)")
        out.append(p)
    return out


def predict_batch(model, images: Sequence[np.ndarray], input_size: int | None = None, device="cpu",
                  amp_dtype=None, batch_size: int = 8, compile: bool = False,
                  progress: Callable[[int], None] | None = None, aux: list | None = None) -> list[np.ndarray]:
    """Predict many RGB uint8 images; returns one float32 ``H×W`` map per image at its original size.

    Preprocessing follows the model's ``data_config``; ``input_size`` (pixels) defaults to the model's
    native size. Images are bucketed by their network input size (same-size inputs share a batch of up
    to ``batch_size``; no padding, so results equal :func:`predict_image`). ``amp_dtype``: None,
    "bf16"/"fp16" or a torch dtype (autocast; outputs are returned as float32). ``compile``:
    wrap the model in ``torch.compile`` first. ``progress(n)`` is called after each batch with the
    number of images it held. A model with its own ``predict(images)`` gets the images in chunks of
    ``batch_size`` (``input_size`` and ``compile`` do not apply: its processor decides).

    ``aux``: a list to fill with one dict per image of the model's per-pixel side outputs
    (``model.auxiliary_outputs(x) -> (prediction, {name: B×h×w})``, e.g. Depth Anything 3's
    ``confidence``), resized to the image like the prediction; ``{}`` for models without any.
    """
    import torch

    if batch_size < 1:
        raise ConfigError(f"batch_size must be >= 1, got {batch_size}")
    dev = resolve_device(device)
    amp = resolve_amp_dtype(amp_dtype)
    images = [check_image(im, f"image {i}") for i, im in enumerate(images)]
    model = model.to(dev).eval()
    results: list[np.ndarray | None] = [None] * len(images)
    if callable(getattr(unwrap(model), "predict", None)):
        with torch.inference_mode():
            for start in range(0, len(images), batch_size):
                chunk = images[start:start + batch_size]
                with autocast(dev, amp):
                    results[start:start + len(chunk)] = _own_predict(model, chunk)
                if progress is not None:
                    progress(len(chunk))
        return results  # type: ignore[return-value]

    cfg = data_config_of(model)
    size = input_size or native_input_size(model)
    run = torch.compile(model) if compile else model
    side = getattr(unwrap(model), "auxiliary_outputs", None) if aux is not None else None
    aux_maps: list[dict] = [{} for _ in images]
    buckets: dict[tuple[int, int], list[int]] = {}
    for i, im in enumerate(images):
        buckets.setdefault(cfg.network_size(im.shape[0], im.shape[1], size), []).append(i)

    with torch.inference_mode():
        for _size, idxs in buckets.items():
            for start in range(0, len(idxs), batch_size):
                chunk = idxs[start:start + batch_size]
                x = torch.from_numpy(np.stack([cfg.preprocess_numpy(images[i], size) for i in chunk])).to(dev)
                extra: dict = {}
                with autocast(dev, amp):
                    if callable(side):
                        pred, extra = side(x)
                    else:
                        pred = run(x)
                pred = pred.float()
                for key, val in extra.items():
                    for j, i in enumerate(chunk):
                        aux_maps[i][key] = cfg.to_image_size(val[j].float(), images[i].shape[:2]).cpu().numpy()
                shapes = {images[i].shape[:2] for i in chunk}
                if len(shapes) == 1:  # one resize back for the whole batch (a dataset's frames share a size)
                    outs = cfg.to_image_size(pred, shapes.pop()).cpu().numpy()
                else:
                    outs = [cfg.to_image_size(pred[j], images[i].shape[:2]).cpu().numpy() for j, i in enumerate(chunk)]
                for j, i in enumerate(chunk):
                    results[i] = outs[j]
                if progress is not None:
                    progress(len(chunk))
    if aux is not None:
        aux[:] = aux_maps
    return results  # type: ignore[return-value]
