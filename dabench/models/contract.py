"""The model contract: what every model dabench evaluates provides, and how its input is prepared.

A model is an ``nn.Module`` (or any object with the same attributes) that has

- ``forward(x)``: a preprocessed ``B×3×h×w`` float batch → ``B×h×w`` prediction;
- ``output_space``: ``"disparity"`` (relative inverse depth) or ``"depth"`` (metres when
  ``is_metric``, else affine-invariant depth);
- ``is_metric``: whether the output is metric depth in metres (default False);
- ``data_config``: a :class:`DataConfig` saying how an RGB uint8 image becomes the network input
  (mean/std, resize rule, ``multiple_of``, interpolation, default input size) and how the output
  returns to the image size;
- optionally ``predict(images_uint8) -> list[H×W float32]``: models that are not one forward pass
  over a resized image (a transformers processor + post-processing, a diffusion pipeline) bring
  their own; :func:`dabench.models.inference.predict_batch` then calls it instead.

A data config lives beside the model's registration (timm's ``_cfg`` pattern): Depth Anything's in
``dabench/models/depth_anything.py``; ``dabench.models.inference`` and the suites read it, so no
other code knows about ImageNet statistics or the patch size.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any, Mapping

import numpy as np

from dabench.errors import ConfigError, DataError

OUTPUT_SPACES = ("disparity", "depth")
#: How the shorter/longer side is brought to ``input_size`` (MiDaS/Depth Anything ``Resize`` names).
RESIZE_RULES = ("lower_bound", "upper_bound", "fixed", "none", "longest_side", "shortest_side")
#: Interpolation names → OpenCV flags (resolved lazily: cv2 is imported only to resize). ``auto``: bicubic
#: when a resize enlarges the image, area when it shrinks it (Depth Anything 3's processor).
INTERPOLATIONS = ("nearest", "bilinear", "bicubic", "area", "lanczos", "auto")


@dataclass(frozen=True)
class DataConfig:
    """How a model wants its images (units: pixels; ``mean``/``std`` on the [0, 1] scale).

    ``resize``: ``lower_bound`` scales so both sides reach ``input_size`` (keeping the aspect
    ratio; Depth Anything), ``upper_bound`` so neither side exceeds it (MiDaS), ``fixed`` to
    ``input_size × input_size`` (aspect ratio not kept), ``none`` keeps the image size (then only
    rounded to ``multiple_of``). Sides are rounded to the nearest ``multiple_of`` (numpy's round
    half to even), bumped up (lower bound) or down (upper bound) when that crosses ``input_size``.
    ``longest_side``/``shortest_side`` (Depth Anything 3's ``upper_bound_resize``/``lower_bound_resize``)
    first scale that side to exactly ``input_size`` (the other side rounded, Python's round), then move
    each side to its nearest ``multiple_of`` (ties up) with a second, small resize. ``resize_uint8``
    resizes the uint8 image (OpenCV rounds to uint8) before scaling to [0, 1], as DA3's processor does.
    The prediction returns to the image size with ``output_interpolation``/``output_align_corners``.
    """

    mean: tuple[float, float, float]
    std: tuple[float, float, float]
    input_size: int = 518
    resize: str = "lower_bound"
    multiple_of: int = 1
    interpolation: str = "bicubic"
    output_interpolation: str = "bilinear"
    output_align_corners: bool = True
    resize_uint8: bool = False

    def __post_init__(self):
        if len(self.mean) != 3 or len(self.std) != 3 or any(not s > 0 for s in self.std):
            raise ConfigError(f"data_config mean/std must be three numbers (std > 0), got {self.mean}/{self.std}")
        if self.resize not in RESIZE_RULES:
            raise ConfigError(f"data_config resize must be one of {', '.join(RESIZE_RULES)}, got {self.resize!r}")
        if self.interpolation not in INTERPOLATIONS:
            raise ConfigError(f"data_config interpolation must be one of {', '.join(INTERPOLATIONS)}, "
                              f"got {self.interpolation!r}")
        if self.output_interpolation not in ("nearest", "bilinear", "bicubic"):
            raise ConfigError(f"data_config output_interpolation must be nearest, bilinear or bicubic, "
                              f"got {self.output_interpolation!r}")
        if int(self.input_size) <= 0 or int(self.multiple_of) <= 0:
            raise ConfigError(f"data_config input_size ({self.input_size}) and multiple_of ({self.multiple_of}) "
                              "must be > 0")

    # -- (de)serialisation ---------------------------------------------------------------------
    def as_dict(self) -> dict[str, Any]:
        """JSON-ready copy (records carry it)."""
        d = dataclasses.asdict(self)
        d["mean"], d["std"] = list(self.mean), list(self.std)
        return d

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> "DataConfig":
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(d) - known)
        if unknown:
            raise ConfigError(f"unknown data_config key(s) {', '.join(unknown)}; valid: {', '.join(sorted(known))}")
        d = dict(d)
        for k in ("mean", "std"):
            if k in d:
                d[k] = tuple(float(v) for v in d[k])
        return cls(**d)

    def replace(self, **changes: Any) -> "DataConfig":
        return dataclasses.replace(self, **changes)

    # -- the rules -------------------------------------------------------------------------------
    def network_size(self, height: int, width: int, input_size: int | None = None) -> tuple[int, int]:
        """The ``(h, w)`` the network sees for a ``height × width`` image (pixels)."""
        if height <= 0 or width <= 0:
            raise DataError(f"image size {height}x{width} is empty")
        size = int(input_size or self.input_size)
        m = int(self.multiple_of)
        if size <= 0:
            raise ConfigError(f"input_size must be > 0, got {size}")
        if self.resize == "none":
            return (_to_multiple(height, m), _to_multiple(width, m))
        if self.resize in ("longest_side", "shortest_side"):
            h1, w1 = self._side_size(height, width, size)
            return (_nearest_multiple(h1, m), _nearest_multiple(w1, m))
        if self.resize == "fixed":
            return (_to_multiple(size, m), _to_multiple(size, m))
        scale_h, scale_w = size / height, size / width
        if self.resize == "lower_bound":  # the larger scale: both sides reach input_size
            scale = max(scale_h, scale_w)
            return (_to_multiple(scale * height, m, min_val=size), _to_multiple(scale * width, m, min_val=size))
        scale = min(scale_h, scale_w)  # upper_bound: neither side exceeds input_size
        return (_to_multiple(scale * height, m, max_val=size), _to_multiple(scale * width, m, max_val=size))

    def preprocess_numpy(self, image: np.ndarray, input_size: int | None = None) -> np.ndarray:
        """RGB uint8 ``H×W×3`` → normalised ``3×h×w`` float32 (scaled to [0, 1], resized, normalised).

        The official transform scales to float64 before resizing; dabench resizes in float32, which
        agrees with it to float32 rounding (the output is float32 either way) and keeps the full-size
        intermediate at 12 bytes per pixel instead of 24: a 6000x6000 photo no longer takes gigabytes."""
        import cv2

        image = check_image(image)
        h, w = self.network_size(image.shape[0], image.shape[1], input_size)
        steps = [(h, w)]
        if self.resize in ("longest_side", "shortest_side"):  # side to input_size, then to multiples
            steps = [self._side_size(image.shape[0], image.shape[1], int(input_size or self.input_size)), (h, w)]
        if self.resize_uint8:
            x = image
            for size in steps:
                x = self._resize(x, size)
            x = x.astype(np.float32) / np.float32(255.0)
        else:
            x = image.astype(np.float32)
            x *= np.float32(1.0 / 255.0)
            for size in steps:
                x = self._resize(x, size)
        x = (x - np.asarray(self.mean, dtype=np.float32)) / np.asarray(self.std, dtype=np.float32)
        return np.ascontiguousarray(np.transpose(x, (2, 0, 1)), dtype=np.float32)

    def _side_size(self, height: int, width: int, size: int) -> tuple[int, int]:
        """First step of ``longest_side``/``shortest_side``: that side becomes ``size`` (DA3's processor)."""
        side = max(height, width) if self.resize == "longest_side" else min(height, width)
        if side == size:
            return height, width
        scale = size / float(side)
        return max(1, int(round(height * scale))), max(1, int(round(width * scale)))

    def _resize(self, x: np.ndarray, size: tuple[int, int]) -> np.ndarray:
        import cv2

        if tuple(size) == x.shape[:2]:
            return x
        flag = self.interpolation
        if flag == "auto":
            flag = "bicubic" if size[0] > x.shape[0] or size[1] > x.shape[1] else "area"
        return cv2.resize(x, (int(size[1]), int(size[0])), interpolation=_cv2_flag(flag))

    def to_image_size(self, pred, size: tuple[int, int]):
        """A ``h×w`` (or ``B×h×w``) torch prediction resized back to ``size`` = (H, W) pixels."""
        import torch.nn.functional as F

        x = pred[None, None] if pred.ndim == 2 else pred[:, None]
        kw = {"align_corners": self.output_align_corners} if self.output_interpolation != "nearest" else {}
        out = F.interpolate(x.float(), tuple(size), mode=self.output_interpolation, **kw)
        return out[0, 0] if pred.ndim == 2 else out[:, 0]


def _to_multiple(x: float, multiple: int, min_val: int = 0, max_val: int | None = None) -> int:
    # MiDaS/Depth Anything Resize.constrain_to_multiple_of: nearest multiple (round half to even),
    # down when above max_val, up when below min_val.
    y = int(np.round(x / multiple) * multiple)
    if max_val is not None and y > max_val:
        y = int(np.floor(x / multiple) * multiple)
    if y < min_val:
        y = int(np.ceil(x / multiple) * multiple)
    return max(y, multiple)


def _nearest_multiple(x: int, multiple: int) -> int:
    # DA3 InputProcessor._make_divisible_by_resize: the nearer multiple, ties up (never below one multiple)
    down = (x // multiple) * multiple
    up = down + multiple
    return max(multiple, up if abs(up - x) <= abs(x - down) else down)


def cv2_flag(name: str) -> int:
    """The OpenCV interpolation flag of an ``INTERPOLATIONS`` name (not ``auto``)."""
    import cv2

    return {"nearest": cv2.INTER_NEAREST, "bilinear": cv2.INTER_LINEAR, "bicubic": cv2.INTER_CUBIC,
            "area": cv2.INTER_AREA, "lanczos": cv2.INTER_LANCZOS4}[name]


_cv2_flag = cv2_flag


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


def as_data_config(value: DataConfig | Mapping[str, Any] | None) -> DataConfig | None:
    """A :class:`DataConfig` from itself, a dict (``DataConfig.from_dict``) or None."""
    if value is None or isinstance(value, DataConfig):
        return value
    if isinstance(value, Mapping):
        return DataConfig.from_dict(value)
    raise ConfigError(f"data_config must be a DataConfig or a dict, got {type(value).__name__}")


def unwrap(model):
    """The model inside DDP / ``torch.compile`` wrappers."""
    model = getattr(model, "module", model)
    return getattr(model, "_orig_mod", model)


def data_config_of(model) -> DataConfig:
    """``model.data_config`` (a DataConfig), or a ConfigError naming the model when it declares none."""
    inner = unwrap(model)
    cfg = as_data_config(getattr(inner, "data_config", None))
    if cfg is None:
        raise ConfigError(f"model {getattr(inner, 'arch', None) or type(inner).__name__} declares no data_config "
                          "(mean/std, resize rule, input size): register it with dabench.models.register_model("
                          "..., data_config=...) or give it a predict(images) method")
    return cfg


def output_space_of(model) -> str:
    """``"disparity"`` or ``"depth"`` (``model.output_space``; ConfigError when it is something else)."""
    inner = unwrap(model)
    space = getattr(inner, "output_space", None)
    if space not in OUTPUT_SPACES:
        raise ConfigError(f"model {getattr(inner, 'arch', None) or type(inner).__name__} has output_space "
                          f"{space!r}; expected one of {', '.join(OUTPUT_SPACES)}")
    return space


def is_metric_of(model) -> bool:
    """Whether the model predicts metric depth in metres (``model.is_metric``, default False)."""
    return bool(getattr(unwrap(model), "is_metric", False))
