"""Inference: dabench's batched path (``predict_batch``: images bucketed by network size, batched
forward under ``torch.inference_mode``) against the official per-image path (``predict_image``, the
official ``infer_image``: per-image resize, normalise, forward, resize back), on the same images,
with equal outputs checked (max |difference| relative to the largest prediction)."""
from __future__ import annotations

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


def run(model_name: str = "da2_test", images: int = 16, size: tuple[int, int] = (480, 640), input_size: int = 518,
        batch_size: int = 8, repeats: int = 3, device: str = "cpu", seed: int = 0) -> dict:
    """Per-image seconds/image over batched seconds/image (goal >= 1.5), interleaved ``repeats`` times."""
    import torch

    from dabench.bench.timing import paired
    from dabench.models import create_model
    from dabench.models.inference import predict_batch, predict_image

    torch.manual_seed(seed)
    model = create_model(model_name).eval().to(device)
    ims = make_images(images, size, seed)
    # warm-up both paths (allocator, oneDNN primitive caches)
    predict_image(model, ims[0], input_size, device)
    predict_batch(model, ims[:batch_size], input_size, device, batch_size=batch_size)

    per_image_out: list = []
    batched_out: list = []

    def per_image():
        per_image_out[:] = [predict_image(model, im, input_size, device) for im in ims]

    def batched():
        batched_out[:] = predict_batch(model, ims, input_size, device, batch_size=batch_size)

    t = paired(per_image, batched, repeats)
    scale = max(float(np.abs(p).max()) for p in per_image_out) or 1.0
    diff = max(float(np.abs(a - b).max()) for a, b in zip(per_image_out, batched_out)) / scale
    return {"ratio": t["ratio_of_medians"], "direction": "per_image_seconds / batched_seconds", "goal": 1.5,
            "goal_op": ">=", "per_image_seconds": t["baseline_median_s"], "batched_seconds": t["candidate_median_s"],
            "images_per_second": {"per_image": images / t["baseline_median_s"],
                                  "batched": images / t["candidate_median_s"]},
            "median_pair_ratio": t["median_pair_ratio"], "model": model_name, "images": images,
            "image_size": list(size), "input_size": input_size, "batch_size": batch_size, "repeats": repeats,
            "outputs_equal": bool(diff < 1e-4), "max_relative_difference": diff,
            "all_per_image_s": t["baseline_s"], "all_batched_s": t["candidate_s"]}
