"""Inference: dabench's batched path (``predict_batch``: images bucketed by network size, batched
forward under ``torch.inference_mode``, attention through timm's fused SDPA) against the official
per-image path, on the same images, with equal outputs checked (max |difference| relative to the
largest prediction).

The baseline is the official ``DepthAnythingV2.infer_image`` as it runs on a CPU: the image
arrives as BGR (``cv2.imread``), ``cv2.cvtColor`` BGR→RGB, ``/ 255`` in float64, ``cv2.resize``
INTER_CUBIC to the lower-bound multiple-of-14 size, ImageNet normalisation in float64, a float32
``1×3×h×w`` tensor, the forward pass under ``torch.no_grad`` with DINOv2's own attention (without
xformers, which is CPU-less, the official ``Attention.forward`` computes ``softmax((q·scale) @ kᵀ) @ v``
explicitly; :func:`official_attention` switches timm's blocks to that same math for the baseline
only), bilinear ``align_corners=True`` back to the original size, ``.cpu().numpy()``.
"""
from __future__ import annotations

import contextlib

import numpy as np


def make_images(n: int, size: tuple[int, int], seed: int = 0) -> list[np.ndarray]:
    """``n`` deterministic RGB uint8 images of ``size`` (smooth gradients + noise)."""
    rng = np.random.default_rng(seed)
    h, w = size
    yy = np.linspace(0, 1, h, dtype=np.float32)[:, None, None]
    xx = np.linspace(0, 1, w, dtype=np.float32)[None, :, None]
    out = []
    for _ in range(n):
        c = rng.uniform(0.2, 1.0, 3).astype(np.float32)
        img = 255 * (0.5 * yy * c + 0.5 * xx * c[::-1]) + rng.normal(0, 12, (h, w, 3))
        out.append(np.clip(img, 0, 255).astype(np.uint8))
    return out


@contextlib.contextmanager
def official_attention(model):
    """Within the block, timm attention modules of ``model`` compute attention explicitly
    (``fused_attn=False``: ``(q * scale) @ k^T``, softmax, ``@ v``), as official DINOv2 does
    without xformers; restored on exit. Yields the number of modules switched."""
    from timm.models.vision_transformer import Attention

    mods = [m for m in model.modules() if isinstance(m, Attention)]
    old = [m.fused_attn for m in mods]
    for m in mods:
        m.fused_attn = False
    try:
        yield len(mods)
    finally:
        for m, o in zip(mods, old):
            m.fused_attn = o


def nondegenerate_head(model) -> None:
    """An untrained DPT head often ends in an all-zero map (its last conv + ReLU), which would make the
    equal-outputs check vacuous: take the absolute value of the last conv's weights (its input is
    post-ReLU, so the output is > 0 wherever the features are) and zero its bias. Same compute."""
    import torch

    last = [m for m in model.modules() if isinstance(m, torch.nn.Conv2d)][-1]
    with torch.no_grad():
        last.weight.abs_()
        if last.bias is not None:
            last.bias.zero_()


def official_infer_image(model, bgr_image: np.ndarray, input_size: int, device) -> np.ndarray:
    """The official ``infer_image`` on one BGR uint8 image (call inside :func:`official_attention`)."""
    import cv2

    from dabench.models.inference import predict_image

    rgb = cv2.cvtColor(bgr_image, cv2.COLOR_BGR2RGB)
    return predict_image(model, rgb, input_size, device)


def run(model_name: str = "da2_test", images: int = 16, size: tuple[int, int] = (480, 640), input_size: int = 518,
        batch_size: int = 8, repeats: int = 3, device: str = "cpu", seed: int = 0) -> dict:
    """Per-image seconds/image over batched seconds/image (goal >= 1.5), interleaved ``repeats`` times."""
    import torch

    from dabench.bench.timing import paired
    from dabench.models import create_model
    from dabench.models.inference import predict_batch

    torch.manual_seed(seed)
    model = create_model(model_name).eval().to(device)
    nondegenerate_head(model)
    ims = make_images(images, size, seed)
    bgr = [np.ascontiguousarray(im[..., ::-1]) for im in ims]  # what cv2.imread gives the official script
    # warm-up both paths (allocator, oneDNN primitive caches)
    with official_attention(model) as n_attention:
        official_infer_image(model, bgr[0], input_size, device)
    predict_batch(model, ims[:batch_size], input_size, device, batch_size=batch_size)

    per_image_out: list = []
    batched_out: list = []

    def per_image():
        with official_attention(model):
            per_image_out[:] = [official_infer_image(model, im, input_size, device) for im in bgr]

    def batched():
        batched_out[:] = predict_batch(model, ims, input_size, device, batch_size=batch_size)

    t = paired(per_image, batched, repeats)
    diff, scale = relative_difference(per_image_out, batched_out)
    return {"ratio": t["ratio_of_medians"], "direction": "per_image_seconds / batched_seconds", "goal": 1.5,
            "goal_op": ">=", "per_image_seconds": t["baseline_median_s"], "batched_seconds": t["candidate_median_s"],
            "images_per_second": {"per_image": images / t["baseline_median_s"],
                                  "batched": images / t["candidate_median_s"]},
            "median_pair_ratio": t["median_pair_ratio"],
            "baseline": "official infer_image per image: BGR->RGB, /255 float64, cv2 INTER_CUBIC, normalise, "
                        f"explicit softmax(q*scale @ k^T) @ v attention ({n_attention} blocks), bilinear back",
            "dabench": f"predict_batch: bucketed batches of {batch_size}, inference_mode, timm fused SDPA attention",
            "model": model_name, "images": images,
            "image_size": list(size), "input_size": input_size, "batch_size": batch_size, "repeats": repeats,
            "outputs_equal": bool(diff < 1e-4 and scale > 0), "max_relative_difference": diff,
            "output_max": scale, "output_min": min(float(p.min()) for p in per_image_out),
            "all_per_image_s": t["baseline_s"], "all_batched_s": t["candidate_s"]}


def relative_difference(reference: list, other: list) -> tuple[float, float]:
    """``(max |reference - other| / scale, scale)`` over paired maps, ``scale`` the largest |reference|."""
    scale = max(float(np.abs(p).max()) for p in reference)
    diff = max(float(np.abs(a - b).max()) for a, b in zip(reference, other)) / (scale or 1.0)
    return diff, scale


def run_batching(model_name: str = "da3_vits14", images: int = 8, size: tuple[int, int] = (480, 640),
                 batch_size: int = 4, repeats: int = 3, device: str = "cpu", seed: int = 0) -> dict:
    """A model with no official per-image script in dabench's dependencies (Depth Anything 3): dabench's
    own path one image at a time (``predict_batch(batch_size=1)``) over batched, at the model's native
    input size, same images, outputs checked equal. Random weights: the forward, not the values, is timed."""
    import torch

    from dabench.bench.timing import paired
    from dabench.models import create_model
    from dabench.models.inference import predict_batch

    torch.manual_seed(seed)
    model = create_model(model_name).eval().to(device)
    ims = make_images(images, size, seed)
    predict_batch(model, ims[:batch_size], None, device, batch_size=batch_size)  # warm-up
    one: list = []
    many: list = []

    def per_image():
        one[:] = predict_batch(model, ims, None, device, batch_size=1)

    def batched():
        many[:] = predict_batch(model, ims, None, device, batch_size=batch_size)

    t = paired(per_image, batched, repeats)
    diff, scale = relative_difference(one, many)
    return {"ratio": t["ratio_of_medians"], "direction": "per_image_seconds / batched_seconds", "goal": 1.0,
            "goal_op": ">=", "per_image_seconds": t["baseline_median_s"], "batched_seconds": t["candidate_median_s"],
            "median_pair_ratio": t["median_pair_ratio"], "model": model_name, "images": images,
            "image_size": list(size), "input_size": int(model.data_config.input_size), "batch_size": batch_size,
            "repeats": repeats, "baseline": "dabench predict_batch one image per forward",
            "dabench": f"predict_batch: bucketed batches of {batch_size}",
            "outputs_equal": bool(diff < 1e-4 and scale > 0), "max_relative_difference": diff}
