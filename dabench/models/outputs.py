"""What a model's outputs mean beyond one map: the geometry outputs contract.

A model may return ``depth``, ``disparity``, ``points`` (H×W×3, camera frame, OpenCV axes) and
``intrinsics`` (3×3 K in pixels of the image), each declared ``metric``, ``scale_invariant`` or
``affine_invariant``:

- ``model.geometry_outputs``: ``{kind: invariance}`` (optional). Without it the declaration follows
  the depth contract: ``output_space`` and ``is_metric`` (``disparity`` → affine-invariant disparity;
  ``depth`` → metric depth when ``is_metric``, else affine-invariant depth).
- ``model.predict_geometry(images_uint8) -> list[{kind: array}]`` (optional): the outputs of models
  that give more than one map (``hf:`` Depth Pro: depth and its focal length). Without it the single
  map of :func:`dabench.models.inference.predict_batch` is the declared depth / disparity.

``moge_prediction`` turns those outputs into MoGe's prediction keys (``dabench.metrics.geometry``):
a model is scored at the levels its outputs admit and no other. A depth map at the metric or
scale-invariant level with the model's own intrinsics also gives a point map at that level (the
depth unprojected through the predicted K), as MoGe's own baselines do. Intrinsics are always
absolute (``metric``).

Ray-predicting models (Depth Anything 3) set ``geometry_outputs`` (e.g. ``{"depth": "scale_invariant",
"points": "scale_invariant", "intrinsics": "metric"}``) and return K from ``predict_geometry``.

Models that need the camera (``model.needs_intrinsics``; Depth Anything 3's metric model: metres =
output × f_px / 300) are handed each sample's pixel K: ``predict_geometry(images, intrinsics=...)`` in
the geometry tasks, and in the depth tasks :func:`with_intrinsics` turns the raw prediction into metres
(``model.metric_depth(pred, K, image_size, input_size)``). Without K a depth suite that aligns scale
per image scores the raw map (any global scale cancels); one that scores metres refuses the sample.
``predict_geometry`` may take ``intrinsics``, ``input_size``, ``device`` and ``amp_dtype``; it is given
those its signature names.
"""
from __future__ import annotations

from typing import Any, Mapping

import numpy as np

from dabench.errors import ConfigError, DataError
from dabench.models.contract import is_metric_of, output_space_of, unwrap

GEOMETRY_KINDS = ("depth", "disparity", "points", "intrinsics")
INVARIANCES = ("metric", "scale_invariant", "affine_invariant")


def declared_outputs(model) -> dict[str, str]:
    """``{kind: invariance}`` of ``model`` (see the module doc); a bad declaration is a ConfigError."""
    inner = unwrap(model)
    declared = getattr(inner, "geometry_outputs", None)
    name = getattr(inner, "arch", None) or type(inner).__name__
    if declared is None:
        space = output_space_of(model)
        if space == "disparity":
            return {"disparity": "affine_invariant"}
        return {"depth": "metric" if is_metric_of(model) else "affine_invariant"}
    if not isinstance(declared, Mapping) or not declared:
        raise ConfigError(f"model {name}: geometry_outputs must be a non-empty mapping kind -> invariance")
    for kind, inv in declared.items():
        if kind not in GEOMETRY_KINDS:
            raise ConfigError(f"model {name}: unknown geometry output {kind!r}; valid: {', '.join(GEOMETRY_KINDS)}")
        if inv not in INVARIANCES:
            raise ConfigError(f"model {name}: {kind} invariance must be one of {', '.join(INVARIANCES)}, got {inv!r}")
        if kind == "intrinsics" and inv != "metric":
            raise ConfigError(f"model {name}: intrinsics are absolute; declare them 'metric', got {inv!r}")
    if not ({"depth", "disparity", "points"} & set(declared)):
        raise ConfigError(f"model {name}: geometry_outputs declares no depth, disparity or points")
    return dict(declared)


def needs_intrinsics(model) -> bool:
    """Whether ``model`` gives metric depth only with each image's camera K (``model.needs_intrinsics``)."""
    return bool(getattr(unwrap(model), "needs_intrinsics", False))


def _no_intrinsics(model, name: str) -> DataError:
    inner = unwrap(model)
    arch = getattr(inner, "arch", None) or type(inner).__name__
    return DataError(f"{name}: {arch} gives metric depth only with the camera's focal length (metres = output x "
                     "f_px / 300) and this sample carries no intrinsics; score it in a suite that aligns scale "
                     "per image, or on a dataset whose card gives intrinsics (intrinsics_source)")


def with_intrinsics(model, pred: np.ndarray, sample: Mapping[str, Any], protocol) -> np.ndarray:
    """The depth-task hook: ``pred`` (``H×W``, the raw map of ``sample``'s image as the loop predicted
    it) in metres for a model that ``needs_intrinsics``, from ``sample["intrinsics"]``
    (``model.metric_depth(pred, K, pred.shape, protocol.input_size)``); ``pred`` unchanged for other
    models. A sample without K keeps the raw map where ``protocol.alignment`` fits a scale per image
    (it cancels) and is a DataError naming it where metres are scored (``alignment: none``)."""
    if not needs_intrinsics(model):
        return pred
    K = sample.get("intrinsics")
    if K is None:
        if protocol.alignment != "none":
            return pred
        raise _no_intrinsics(model, str(sample.get("name", "sample")))
    return unwrap(model).metric_depth(pred, K, tuple(np.shape(pred)[:2]), protocol.input_size)


def _call_predict_geometry(fn, images: list, options: Mapping[str, Any]):
    """``fn(images, **the options its signature names)``."""
    import inspect

    try:
        params = inspect.signature(fn).parameters
    except (TypeError, ValueError):
        params = {}
    return fn(images, **{k: v for k, v in options.items() if k in params})


def predict_outputs(model, images, predict_maps, *, intrinsics=None, names=None,
                    **options) -> list[dict[str, np.ndarray]]:
    """Each image's outputs ``{kind: array}``: ``model.predict_geometry`` when it has one, else the one map
    ``predict_maps(images)`` gives, under the declared depth / disparity kind. ``intrinsics``: each image's
    pixel K or None (required by a model that ``needs_intrinsics``: a missing K is a DataError naming the
    image from ``names``); ``options`` (``input_size``, ``device``, ``amp_dtype``) go to
    ``predict_geometry`` when it takes them."""
    inner = unwrap(model)
    declared = declared_outputs(model)
    images = list(images)
    if needs_intrinsics(model):
        intrinsics = list(intrinsics) if intrinsics is not None else [None] * len(images)
        for i, K in enumerate(intrinsics):
            if K is None:
                raise _no_intrinsics(model, str(names[i]) if names is not None else f"image {i}")
        options = {**options, "intrinsics": intrinsics}
    if callable(getattr(inner, "predict_geometry", None)):
        import torch

        with torch.inference_mode():
            outs = list(_call_predict_geometry(inner.predict_geometry, images, options))
        if len(outs) != len(images):
            raise DataError(f"predict_geometry returned {len(outs)} outputs for {len(images)} images")
        for o in outs:
            missing = sorted(set(declared) - set(o))
            if missing:
                raise DataError(f"predict_geometry did not return the declared output(s) {', '.join(missing)}")
        return [{k: np.asarray(v.detach().cpu() if hasattr(v, "detach") else v, dtype=np.float32)
                 for k, v in o.items() if k in declared} for o in outs]
    kind = "disparity" if "disparity" in declared else "depth"
    return [{kind: np.asarray(p, dtype=np.float32)} for p in predict_maps(images)]


def normalized_intrinsics(K, size: tuple[int, int]) -> np.ndarray:
    """MoGe's normalised intrinsics of a pixel K (principal point at integer pixel centres) for an image
    of ``size = (H, W)``: focal lengths over W and H, principal point in [0, 1] image coordinates."""
    h, w = size
    K = np.asarray(K, dtype=np.float64)
    return np.array([[K[0, 0] / w, K[0, 1] / w, (K[0, 2] + 0.5) / w],
                     [0.0, K[1, 1] / h, (K[1, 2] + 0.5) / h], [0.0, 0.0, 1.0]])


def unproject(depth: np.ndarray, K) -> np.ndarray:
    """H×W×3 camera-frame points of a planar depth map through the pixel intrinsics ``K``."""
    from dabench.data.synthetic.geometry import point_map

    return point_map(depth, K)


def moge_prediction(outputs: Mapping[str, Any], declared: Mapping[str, str], size: tuple[int, int]) -> dict:
    """MoGe's prediction keys for one image's ``outputs`` (see the module doc). Disparity declared metric
    or scale-invariant is scored as the depth it inverts to."""
    pred: dict[str, np.ndarray] = {}
    for kind, inv in declared.items():
        if kind == "intrinsics":
            continue
        v = np.asarray(outputs[kind], dtype=np.float32)
        if kind == "disparity" and inv != "affine_invariant":
            kind, v = "depth", 1.0 / np.maximum(v, 1e-6)
        pred[f"{kind}_{inv}"] = v
    if "intrinsics" in declared:
        K = np.asarray(outputs["intrinsics"], dtype=np.float64)
        pred["intrinsics"] = normalized_intrinsics(K, size).astype(np.float32)
        if "points" not in declared:
            for inv in ("metric", "scale_invariant"):
                if f"depth_{inv}" in pred:
                    pred[f"points_{inv}"] = unproject(pred[f"depth_{inv}"], K)
                    break
    return pred
