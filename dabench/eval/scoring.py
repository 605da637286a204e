"""One sample scored: its evaluation mask, the window crops, alignment and the depth metrics.

Scoring one sample (``score_sample``), with ``gt`` in metres:

1. valid = card mask & finite & ``min_depth < gt < max_depth`` & evaluation crop.
2. A NaN/inf anywhere in the raw prediction is a ``DataError`` naming the sample.
3. The raw output is brought into the space the alignment reads (``median``/``scale``/
   ``scale_shift_depth`` read depth, ``scale_shift_disparity`` reads disparity, ``none`` keeps the
   model's space) by a reciprocal with a floor of 1e-8 when the spaces differ.
4. ``align`` fits on the valid pixels of this image.
5. Conversion to the score space and clamping to the protocol's range:
   disparity alignment scored in disparity → clamp to [1/max_depth, 1/floor], gt → 1/gt (DA authors);
   disparity alignment scored in depth → disparity clamped at 1/depth_cap (default max_depth) and
   inverted (MiDaS), then floored at ``floor``;
   depth prediction → clamped to [floor, max_depth], inverted if scored in disparity.
   ``floor`` is the protocol's ``pred_floor`` (metric suites: ``min_depth``, as ZoeDepth; relative:
   ``min_depth``, 1e-3 m when a card sets 0). ``alignment_max_res`` fits step 4 on Marigold's subsample.
6. The nine depth metrics of the image go into a ``DepthMetricState``.
"""
from __future__ import annotations

from typing import Any

import numpy as np

from dabench.errors import DataError
from dabench.eval.align import ALIGNMENT_INPUT_SPACE, DegenerateAlignmentError, align
from dabench.eval.suites import Protocol
from dabench.metrics.registry import depth_engine_metrics

RECIPROCAL_FLOOR = 1e-8  # floor of a prediction before 1/x brings it into the alignment's space
SAMPLE_STATUSES = ("ok", "skipped_no_valid", "skipped_degenerate")


def eval_valid_mask(sample: dict, protocol: Protocol) -> np.ndarray:
    """Pixels scored for this sample: the card's mask, finite gt inside (min_depth, max_depth), eval crop."""
    gt = np.asarray(sample["depth"])
    valid = np.isfinite(gt)
    if sample.get("valid") is not None:
        v = np.asarray(sample["valid"]).astype(bool)
        if v.shape != gt.shape:
            raise DataError(f"{sample.get('name', 'sample')}: valid mask shape {v.shape} != depth shape {gt.shape}")
        valid &= v
    with np.errstate(invalid="ignore"):
        if protocol.range_inclusive:  # Depth-Anything-V2 metric_depth: min <= gt <= max
            valid &= (gt >= protocol.min_depth) & (gt <= protocol.max_depth)
        else:
            valid &= (gt > protocol.min_depth) & (gt < protocol.max_depth)
    if sample.get("_eval_crop_mask") is not None:  # set by prepare_sample for KB-cropped samples
        valid &= sample["_eval_crop_mask"]
    elif protocol.crop and protocol.crop != "none":
        from dabench.data.crops import apply_eval_crop

        valid = np.asarray(apply_eval_crop(valid, protocol.crop)).astype(bool)
    return valid


def prepare_sample(sample: dict, protocol: Protocol) -> dict:
    """Crops that change what the network sees. ``kb*`` crops (KITTI benchmark window): the image,
    depth and mask are cut to the 352×1216 bottom-centre window *before* inference (ZoeDepth's
    ``do_kb_crop``) and the evaluation mask is the crop's mask inside that window
    (``dabench.data.crops.window_crop_mask``: ZoeDepth's Garg box of the window for ``kb+garg``, the
    full frame's for BTS's ``kb+garg_bts``). Other crops only mask pixels."""
    from dabench.data.crops import is_window_crop, kb_box, window_crop_mask

    if not protocol.crop or not is_window_crop(protocol.crop):
        return sample
    depth = np.asarray(sample["depth"])
    t, b, l, r = kb_box(*depth.shape[:2])
    out = dict(sample)
    for key in ("image", "depth", "valid", "labels", "sky"):
        if sample.get(key) is not None:
            out[key] = np.ascontiguousarray(np.asarray(sample[key])[t:b, l:r])
    out["_eval_crop_mask"] = window_crop_mask(depth.shape[:2], protocol.crop)
    return out


def _reciprocal(x: np.ndarray) -> np.ndarray:
    return 1.0 / np.maximum(np.asarray(x, dtype=np.float64), RECIPROCAL_FLOOR)


def score_sample(pred: np.ndarray, sample: dict, protocol: Protocol, output_space: str,
                 *, name: str | None = None, keep_maps: bool = False) -> tuple[str, dict[str, float] | None, dict[str, Any]]:
    """Score one raw prediction (H×W, the model's ``output_space``) against ``sample``.

    Returns ``(status, metrics or None, info)`` with status ``ok``, ``skipped_no_valid`` or
    ``skipped_degenerate`` (see ``dabench.eval.align`` for the degenerate policy) and info holding
    the valid pixel count and the fitted scale/shift; with ``keep_maps`` also ``score_maps``:
    ``(pred, gt, valid)`` in the score space as scored (error maps of ``dabench report``).
    """
    from dabench.metrics.depth import depth_sums, metrics_from_sums

    name = name or str(sample.get("name", "sample"))
    pred = np.asarray(pred)
    gt = np.asarray(sample["depth"], dtype=np.float64)
    if pred.shape != gt.shape:
        raise DataError(f"{name}: prediction shape {pred.shape} does not match ground truth shape {gt.shape}")
    bad = ~np.isfinite(pred)
    if bad.any():
        raise DataError(f"{name}: the model predicted {int(bad.sum())} NaN/inf values (of {pred.size})")
    valid = eval_valid_mask(sample, protocol)
    info: dict[str, Any] = {"valid_pixels": int(valid.sum()), "scale": None, "shift": None,
                            "output_space": output_space}
    if not valid.any() or info["valid_pixels"] < protocol.min_valid_pixels:
        return "skipped_no_valid", None, info
    mode = protocol.alignment
    space = ALIGNMENT_INPUT_SPACE[mode] or output_space
    x = pred.astype(np.float64) if space == output_space else _reciprocal(pred)
    try:
        aligned, params = align(x, gt, valid, mode, name=name, return_params=True,
                                max_res=protocol.alignment_max_res)
    except DegenerateAlignmentError as e:
        info["reason"] = str(e)
        return "skipped_degenerate", None, info
    info.update(params)
    aligned = np.asarray(aligned, dtype=np.float64)
    floor = protocol.floor()
    if space == "disparity":
        if protocol.score_space == "disparity":
            p_s, g_s = np.clip(aligned, 1.0 / protocol.max_depth, 1.0 / floor if floor > 0 else np.inf), 1.0 / np.where(valid, gt, 1.0)
        else:
            cap = protocol.depth_cap or protocol.max_depth
            p_s, g_s = np.maximum(1.0 / np.maximum(aligned, 1.0 / cap), floor), gt
    else:
        depth = np.clip(aligned, floor, protocol.max_depth) if protocol.clamp_pred else aligned
        if protocol.score_space == "disparity":
            p_s, g_s = 1.0 / depth, 1.0 / np.where(valid, gt, 1.0)
        else:
            p_s, g_s = depth, gt
    metrics = depth_engine_metrics(protocol.metric_family)
    info["sums"] = depth_sums(p_s, g_s, valid, name=name, metrics=metrics)
    if keep_maps:
        info["score_maps"] = (np.asarray(p_s, dtype=np.float64), np.asarray(g_s, dtype=np.float64), valid)
    info["aligned"] = p_s  # score space (disparity or metres), for --log-samples
    return "ok", metrics_from_sums(info["sums"], metrics), info
