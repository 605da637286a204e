"""Metric engine: dabench's streaming ``DepthMetricState.update_batch`` (torch, one fused pass over a
batch of maps) against the per-image numpy evaluation researchers run today, a transcription of
ZoeDepth's ``compute_metrics`` / ``compute_errors`` (``zoedepth/utils/misc.py``, also used by
Depth Anything's metric-depth code) with its NYU settings: predictions clipped to
[1e-3, 10] m, valid = 1e-3 < gt < 10, Eigen crop, then the nine metrics of each image averaged over
images. Both sides score the same NYU-sized float32 maps; the reported metrics must agree.
"""
from __future__ import annotations


import numpy as np

NYU_COUNT, NYU_SIZE = 654, (480, 640)
MIN_DEPTH, MAX_DEPTH = 1e-3, 10.0
# ZoeDepth's key for each dabench metric
ZOE_KEYS = {"abs_rel": "abs_rel", "sq_rel": "sq_rel", "rmse": "rmse", "rmse_log": "rmse_log", "log10": "log_10",
            "silog": "silog", "delta1": "a1", "delta2": "a2", "delta3": "a3"}


def zoedepth_compute_errors(gt: np.ndarray, pred: np.ndarray) -> dict[str, float]:
    """ZoeDepth's ``compute_errors`` (verbatim formulas) on the valid pixels of one image."""
    thresh = np.maximum((gt / pred), (pred / gt))
    a1 = (thresh < 1.25).mean()
    a2 = (thresh < 1.25 ** 2).mean()
    a3 = (thresh < 1.25 ** 3).mean()
    abs_rel = np.mean(np.abs(gt - pred) / gt)
    sq_rel = np.mean(((gt - pred) ** 2) / gt)
    rmse = (gt - pred) ** 2
    rmse = np.sqrt(rmse.mean())
    rmse_log = (np.log(gt) - np.log(pred)) ** 2
    rmse_log = np.sqrt(rmse_log.mean())
    err = np.log(pred) - np.log(gt)
    silog = np.sqrt(np.mean(err ** 2) - np.mean(err) ** 2) * 100
    log_10 = (np.abs(np.log10(gt) - np.log10(pred))).mean()
    return dict(a1=a1, a2=a2, a3=a3, abs_rel=abs_rel, rmse=rmse, log_10=log_10, rmse_log=rmse_log,
                silog=silog, sq_rel=sq_rel)


def zoedepth_compute_metrics(gt: np.ndarray, pred: np.ndarray, min_depth_eval: float = MIN_DEPTH,
                             max_depth_eval: float = MAX_DEPTH, eigen_crop: bool = True,
                             eigen_box: tuple[int, int, int, int] = (45, 471, 41, 601)) -> dict[str, float]:
    """ZoeDepth's ``compute_metrics`` for one NYU image (numpy part; the prediction is already at the
    ground truth's size): clip, range mask, Eigen crop, ``compute_errors``. ``eigen_box`` is
    ZoeDepth's literal ``[45:471, 41:601]``; other sizes (the bench's ``--quick``) pass the box
    ``dabench.data.crops.eigen_box`` scales to them."""
    pred = np.array(pred)  # ZoeDepth: pred.squeeze().cpu().numpy(), then clips in place
    pred[pred < min_depth_eval] = min_depth_eval
    pred[pred > max_depth_eval] = max_depth_eval
    pred[np.isinf(pred)] = max_depth_eval
    pred[np.isnan(pred)] = min_depth_eval
    valid_mask = np.logical_and(gt > min_depth_eval, gt < max_depth_eval)
    if eigen_crop:
        eval_mask = np.zeros(valid_mask.shape)
        t, b, l, r = eigen_box
        eval_mask[t:b, l:r] = 1
        valid_mask = np.logical_and(valid_mask, eval_mask)
    return zoedepth_compute_errors(gt[valid_mask], pred[valid_mask])


class NyuLikeMaps:
    """Deterministic NYU-like (gt, pred) float32 map batches: smooth indoor depth 0.6-11 m with holes,
    predictions with multiplicative noise and a slight bias. Generated outside the timed region."""

    def __init__(self, size: tuple[int, int], seed: int = 0):
        h, w = size
        rng = np.random.default_rng(seed)
        self.h, self.w = h, w
        self.yy = (np.arange(h, dtype=np.float32) / h)[:, None]
        self.xx = (np.arange(w, dtype=np.float32) / w)[None, :]
        self.noise = np.exp(rng.normal(0.0, 0.12, (4, h, w))).astype(np.float32)
        self.holes = rng.random((4, h, w)) < 0.06
        self.rng = rng

    def batch(self, b: int) -> tuple[np.ndarray, np.ndarray]:
        gt = np.empty((b, self.h, self.w), np.float32)
        pred = np.empty_like(gt)
        for i in range(b):
            a, c, ph = self.rng.uniform(0.6, 1.5), self.rng.uniform(4.0, 10.0), self.rng.uniform(0, 6.3)
            depth = a + c * (1.0 - self.yy) * (0.55 + 0.45 * np.sin(3.0 * self.xx + ph))
            k, s = int(self.rng.integers(4)), int(self.rng.integers(self.w))
            gt[i] = np.where(np.roll(self.holes[k], s, axis=1), 0.0, depth)
            pred[i] = depth * np.roll(self.noise[(k + 1) % 4], s, axis=1) * self.rng.uniform(0.95, 1.05)
        return gt, pred


def crop_box(size: tuple[int, int]) -> tuple[int, int, int, int]:
    """The Eigen crop (top, bottom, left, right) for maps of ``size``; maps smaller than NYU's (the
    bench's --quick) get the same fractions (a timing check, not a protocol)."""
    from dabench.data.crops import EIGEN_BOX_480x640, NYU_SIZE, eigen_box

    h, w = size
    if h >= NYU_SIZE[0] and w >= NYU_SIZE[1]:
        return eigen_box(h, w)
    t0, b0, l0, r0 = EIGEN_BOX_480x640
    return round(t0 / 480 * h), round(b0 / 480 * h), round(l0 / 640 * w), round(r0 / 640 * w)


def run(count: int = NYU_COUNT, size: tuple[int, int] = NYU_SIZE, batch: int = 6, compile: bool = True,
        seed: int = 0, device: str = "cpu") -> dict:
    """Score ``count`` maps of ``size`` with both engines (batch by batch, alternating which goes
    first) and return the timing ratio and the agreement of the reported metrics."""
    import torch

    from dabench.metrics import DEPTH_METRICS, DepthMetricState
    from dabench.metrics.depth_torch import pick_engine
    from dabench.metrics.registry import depth_engine_metrics, depth_sum_terms
    from dabench.bench.timing import timed

    engine = pick_engine(torch.device(device).type, depth_sum_terms(depth_engine_metrics()), "auto", compile)
    if engine == "native":
        from dabench.metrics.depth_native import available

        engine = f"native ({available()[1]})"

    maps = NyuLikeMaps(size, seed)
    box = crop_box(size)
    t, b_, l, r = box

    def dabench_batch(state, gt, pred):
        # the Eigen crop is a rectangle: score the crop views in place (no mask, no copy), clip in the same pass
        p = torch.from_numpy(pred).to(device)[:, t:b_, l:r]
        g = torch.from_numpy(gt).to(device)[:, t:b_, l:r]
        state.update_batch(p, g, None, min_depth=MIN_DEPTH, max_depth=MAX_DEPTH, clamp_pred=True, compile=compile)

    # warm-up: build/compile the fused kernel (reported, not timed in the ratio)
    gt, pred = maps.batch(batch)
    compile_s = timed(lambda: dabench_batch(DepthMetricState(), gt, pred))

    state = DepthMetricState()
    zoe_sums = {k: 0.0 for k in ZOE_KEYS.values()}
    zoe_n = [0]

    def zoe_batch(gt, pred):
        for i in range(gt.shape[0]):
            m = zoedepth_compute_metrics(gt[i], pred[i], eigen_box=box)
            for k, v in m.items():  # ZoeDepth's RunningAverageDict
                zoe_sums[k] += float(v)
            zoe_n[0] += 1

    def read_floor(gt, pred):
        # the physical floor: read the same prediction and ground-truth views once (a sum over both)
        p = torch.from_numpy(pred).to(device)[:, t:b_, l:r]
        g = torch.from_numpy(gt).to(device)[:, t:b_, l:r]
        float(p.sum()) + float(g.sum())

    read_floor(gt, pred)  # warm-up
    t_zoe = t_dab = t_floor = 0.0
    done = 0
    nb = 0
    while done < count:
        b = min(batch, count - done)
        gt, pred = maps.batch(b)
        sides = [("zoe", lambda: zoe_batch(gt, pred)), ("dabench", lambda: dabench_batch(state, gt, pred)),
                 ("floor", lambda: read_floor(gt, pred))]
        for name, fn in sides[nb % 3:] + sides[:nb % 3]:  # rotate who goes first: same load for all three
            dt = timed(fn)
            if name == "zoe":
                t_zoe += dt
            elif name == "dabench":
                t_dab += dt
            else:
                t_floor += dt
        done += b
        nb += 1
    ours = state.compute()
    theirs = {m: zoe_sums[ZOE_KEYS[m]] / zoe_n[0] for m in DEPTH_METRICS}
    rel = {m: abs(ours[m] - theirs[m]) / max(abs(theirs[m]), 1e-12) for m in DEPTH_METRICS}
    max_rel = max(rel.values())
    return {"ratio": t_zoe / t_dab, "direction": "baseline_seconds / dabench_seconds", "goal": 20.0,
            "goal_op": ">=", "baseline_seconds": t_zoe, "dabench_seconds": t_dab,
            "floor_seconds": t_floor, "seconds_over_floor": t_dab / t_floor, "seconds_over_floor_goal": 2.0,
            "seconds_over_floor_met": bool(t_dab / t_floor <= 2.0),
            "floor": "read floor: torch sum over the same prediction and ground-truth crop views, timed in the same "
                     "loop (dabench_seconds / floor_seconds is how far the fused pass is from merely reading its input)",
            "baseline": "per-image numpy, ZoeDepth compute_metrics/compute_errors (NYU: clip, 1e-3<gt<10, Eigen crop)",
            "dabench": f"DepthMetricState.update_batch, {engine} fused pass over the Eigen-crop views (clip, range "
                       f"mask, 9 metrics), batches of {batch} maps on {device}, {torch.get_num_threads()} threads",
            "engine": engine,
            "maps": count, "size": list(size), "images_scored": int(state.n_images), "compile_warmup_s": compile_s,
            "values_agree": bool(max_rel < 1e-5 and int(state.n_images) == zoe_n[0]),
            "max_relative_difference": max_rel, "metrics_dabench": ours, "metrics_baseline": theirs,
            "ms_per_map": {"baseline": 1e3 * t_zoe / count, "dabench": 1e3 * t_dab / count,
                           "floor": 1e3 * t_floor / count}}


__all__ = ["run", "crop_box", "NyuLikeMaps", "zoedepth_compute_errors", "zoedepth_compute_metrics"]
