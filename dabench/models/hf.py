"""``--model hf:<folder or hub id>``: any transformers ``AutoModelForDepthEstimation`` checkpoint.

The model's own image processor and ``post_process_depth_estimation`` run exactly as in
transformers' ``depth-estimation`` pipeline (``pipelines/depth_estimation.py``): the processor
prepares each image, the model predicts, post-processing returns ``predicted_depth`` at the image
size. So dabench's prediction is what a transformers user gets; dabench only scores it.

What the output means comes from the config (``output_space``/``is_metric`` model options
override it for model types not listed here):

- DPT (MiDaS v3/v3.1) and relative Depth Anything: relative inverse depth → ``disparity``;
- ZoeDepth, Depth Pro, GLPN and Depth Anything with ``depth_estimation_type: metric``: depth in metres.

Depth Pro also declares intrinsics (``geometry_outputs``, ``predict_geometry``: K from the focal
length its field-of-view head gives), so the ``moge`` suite scores its field of view and point maps.

Weights are read from safetensors only (``use_safetensors=True``: no pickled code runs) and no
remote code is trusted. A folder is used when it exists; otherwise the name is a hub id, downloaded
unless ``HF_HUB_OFFLINE=1`` (then a missing snapshot is a clear error naming the folder layout).
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np
from torch import nn

from dabench.errors import ConfigError, DataError, MissingFileError
from dabench.models import snapshot_check

#: config.model_type → (output_space, is_metric) for the relative/metric kinds transformers ships.
OUTPUT_BY_MODEL_TYPE = {
    "dpt": ("disparity", False),
    "depth_anything": ("disparity", False),  # metric when config.depth_estimation_type == "metric"
    "zoedepth": ("depth", True),
    "depth_pro": ("depth", True),
    "glpn": ("depth", True),
}
HF_OPTIONS = ("revision", "output_space", "is_metric")
SNAPSHOT_LAYOUT = "config.json + model.safetensors + preprocessor_config.json"
#: Processor settings worth recording (JSON-friendly; the full processor config stays in the snapshot).
_PROCESSOR_KEYS = ("image_processor_type", "image_mean", "image_std", "size", "keep_aspect_ratio",
                   "ensure_multiple_of", "resample", "do_resize", "do_rescale", "rescale_factor", "do_normalize",
                   "do_pad", "size_divisor")


class HFDepthModel(nn.Module):
    """A transformers depth model + its image processor, under dabench's model contract.

    ``predict(images)`` (RGB uint8 H×W×3 each) → one float32 H×W map per image, as the
    transformers pipeline's ``predicted_depth``. ``forward(pixel_values)`` is the bare network
    (``predicted_depth`` at the network size) for callers that preprocess themselves.
    """

    source = "hf"
    data_config = None  # the processor owns pre- and post-processing

    def __init__(self, model: nn.Module, processor, location: str, revision: str | None,
                 output_space: str, is_metric: bool):
        super().__init__()
        self.hf_model = model
        self.processor = processor
        self.location = location
        self.revision = revision
        self.output_space = output_space
        self.is_metric = bool(is_metric)
        self.model_type = str(getattr(model.config, "model_type", ""))
        self.family = f"hf-{self.model_type}"
        self.processor_config = {k: _jsonable(v) for k, v in processor.to_dict().items() if k in _PROCESSOR_KEYS}
        if self.model_type == "depth_pro" and output_space == "depth" and self.is_metric:
            # Depth Pro also estimates its field of view: metric depth plus intrinsics (dabench.models.outputs)
            self.geometry_outputs = {"depth": "metric", "intrinsics": "metric"}
            self.predict_geometry = self._predict_with_focal

    def forward(self, pixel_values):
        return self.hf_model(pixel_values=pixel_values).predicted_depth

    def _post(self, image: np.ndarray) -> dict:
        import torch

        device = next(self.hf_model.parameters()).device
        inputs = self.processor(images=image, return_tensors="pt").to(device)
        inputs = {k: (v.to(self.hf_model.dtype) if torch.is_floating_point(v) else v) for k, v in inputs.items()}
        outputs = self.hf_model(**inputs)
        return self.processor.post_process_depth_estimation(outputs, [tuple(image.shape[:2])])[0]

    def predict(self, images: list[np.ndarray]) -> list[np.ndarray]:
        """One image at a time, as the pipeline (processors may resize images of one batch differently)."""
        return [self._post(image)["predicted_depth"].float().cpu().numpy() for image in images]

    def _predict_with_focal(self, images: list[np.ndarray]) -> list[dict[str, np.ndarray]]:
        """Depth Pro: ``{"depth", "intrinsics"}`` per image; K from the focal length (pixels of the image)
        that ``post_process_depth_estimation`` derives from the estimated field of view, square pixels,
        principal point at the image centre."""
        import torch

        out = []
        for image in images:
            with torch.inference_mode():
                post = self._post(image)
            f = post.get("focal_length")
            if f is None:
                raise DataError(f"hf:{self.location}: the model returned no field of view, so no focal length")
            f = float(f)
            h, w = image.shape[:2]
            K = np.array([[f, 0.0, (w - 1) / 2.0], [0.0, f, (h - 1) / 2.0], [0.0, 0.0, 1.0]], dtype=np.float32)
            out.append({"depth": post["predicted_depth"].float().cpu().numpy(), "intrinsics": K})
        return out


def _jsonable(v: Any) -> Any:
    if isinstance(v, (str, int, float, bool)) or v is None:
        return v
    if isinstance(v, dict):
        return {str(k): _jsonable(x) for k, x in v.items()}
    if isinstance(v, (list, tuple)):
        return [_jsonable(x) for x in v]
    return str(v)


def output_kind(config, overrides: dict[str, Any]) -> tuple[str, bool]:
    """``(output_space, is_metric)`` of a transformers depth config (see the module docstring)."""
    model_type = str(getattr(config, "model_type", ""))
    space, metric = OUTPUT_BY_MODEL_TYPE.get(model_type, (None, None))
    if model_type == "depth_anything" and getattr(config, "depth_estimation_type", "relative") == "metric":
        space, metric = "depth", True
    if "output_space" in overrides:
        space = overrides["output_space"]
        metric = overrides.get("is_metric", space == "depth" if metric is None else metric)
    elif "is_metric" in overrides:
        metric = overrides["is_metric"]
    if space not in ("disparity", "depth"):
        raise ConfigError(f"hf model type {model_type!r}: dabench does not know what its output means; pass "
                          "--model-option output_space=disparity|depth (and is_metric=true for metres)")
    return space, bool(metric)


def _check_local_snapshot(folder: Path, model_cls) -> None:
    """Refuse a hostile snapshot folder before transformers builds anything from it (see snapshot_check)."""
    from transformers import AutoConfig

    config = snapshot_check.read_json_object(folder / "config.json", "transformers config.json")
    snapshot_check.check_layer_counts(config, folder / "config.json")
    proc = folder / "preprocessor_config.json"
    if proc.is_file():
        snapshot_check.check_processor_size(
            snapshot_check.read_json_object(proc, "transformers preprocessor_config.json"), proc)
    weights = snapshot_check.safetensors_elements(sorted(folder.glob("*.safetensors")))
    try:
        cfg = AutoConfig.from_pretrained(str(folder), trust_remote_code=False, local_files_only=True)
    except Exception as e:
        raise DataError(f"{folder / 'config.json'}: not a transformers config dabench can read "
                        f"({str(e).splitlines()[0] if str(e) else type(e).__name__})") from None
    snapshot_check.check_parameters_fit(model_cls, cfg, weights, folder / "config.json")


def load_hf_model(location: str, **options: Any) -> HFDepthModel:
    """Load ``location`` (a snapshot folder, else a hub id) as an :class:`HFDepthModel`.

    Options: ``revision`` (hub branch/tag/commit), ``output_space``, ``is_metric``.
    """
    snapshot_check.check_options("hf", location, options, HF_OPTIONS)
    try:
        from transformers import AutoImageProcessor, AutoModelForDepthEstimation
    except ImportError:
        raise ConfigError("hf: models need transformers: pip install 'dabench[hf]'") from None
    folder, local = snapshot_check.local_folder(
        "hf", location, f"a transformers snapshot folder with {SNAPSHOT_LAYOUT}, or a hub id such as Intel/dpt-large")
    if local and not (folder / "config.json").is_file():
        raise MissingFileError(f"hf:{location}: {folder} has no config.json (expected {SNAPSHOT_LAYOUT})")
    if local and not any(folder.glob("*.safetensors")):
        raise MissingFileError(f"hf:{location}: {folder} holds no .safetensors weights (expected {SNAPSHOT_LAYOUT}; "
                               "pickled .bin weights are refused)")
    if local:
        _check_local_snapshot(folder, AutoModelForDepthEstimation)
    src = str(folder) if local else location
    offline = os.environ.get("HF_HUB_OFFLINE", "").strip().lower() in ("1", "true", "yes", "on")
    kw: dict[str, Any] = {"use_safetensors": True, "trust_remote_code": False}
    if offline:  # read at call time: huggingface_hub reads the variable only when it is imported
        kw["local_files_only"] = True
    if options.get("revision"):
        kw["revision"] = str(options["revision"])
    try:
        model = AutoModelForDepthEstimation.from_pretrained(src, **kw)
        processor = AutoImageProcessor.from_pretrained(src, **{k: v for k, v in kw.items() if k != "use_safetensors"})
    except DataError:
        raise
    except Exception as e:  # transformers raises many kinds (OSError, ValueError, RuntimeError, SafetensorError)
        where = (f"folder {folder}" if local else
                 f"hub id {location!r}" + (" (HF_HUB_OFFLINE is set: only the local cache is read)" if offline else ""))
        raise MissingFileError(f"hf:{location}: could not load a depth-estimation model from the {where}: "
                               f"{str(e).splitlines()[0] if str(e) else type(e).__name__}. A snapshot folder needs "
                               f"{SNAPSHOT_LAYOUT}.") from None
    space, metric = output_kind(model.config, options)
    revision = (f"sha256:{snapshot_check.weights_sha256(folder)}" if local
                else getattr(model.config, "_commit_hash", None) or options.get("revision"))
    wrapped = HFDepthModel(model.eval(), processor, location, revision, space, metric)
    wrapped.arch = None
    return wrapped
