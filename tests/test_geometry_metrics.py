"""dabench.metrics.geometry against MoGe's evaluation code (``moge.test.metrics``, when installed:
``pip install --no-deps dlr-moge dlr-utils3d==1.3``), a transcription of Depth Pro's boundary metrics
(below, test-only) and hand-computed cases, on hand-made scenes: planes, boxes with sharp edges,
known intrinsics."""
from __future__ import annotations

import itertools

import numpy as np
import pytest
import torch

from dabench.metrics import geometry as geo
from dabench.metrics.geometry_align import (l1_affine, l1_points_scale, l1_points_scale_shift, l1_points_shift, l1_scale,
                                            masked_nearest_subsample)
from dabench.metrics.registry import METRICS, list_metrics


def _moge():
    try:
        import utils3d
        from moge.test import metrics as moge_metrics
        from moge.utils import alignment as moge_alignment
    except ImportError as e:  # optional test extra
        pytest.skip(f"MoGe reference not installed (pip install --no-deps dlr-moge dlr-utils3d==1.3): {e}")
    if not hasattr(utils3d.pt, "sliding_window_2d"):  # dlr-moge 2.0 calls the name dlr-utils3d 1.3 spells sliding_window
        utils3d.pt.sliding_window_2d = utils3d.pt.sliding_window
    return moge_metrics, moge_alignment, utils3d


def scene(h=24, w=32, f=28.0, box_depth=2.5, wall=6.0, cam_h=1.5):
    """A room corner seen by a pinhole camera with known K: a floor plane ``cam_h`` below the camera, a
    fronto-parallel back wall at ``wall`` m and a box whose front face (``box_depth`` m) covers a
    rectangle of the image: sharp depth edges on all four sides of the box."""
    cx, cy = (w - 1) / 2, (h - 1) / 2
    jj, ii = np.meshgrid(np.arange(w), np.arange(h))
    rx, ry = (jj - cx) / f, (ii - cy) / f
    z = np.full((h, w), wall)
    with np.errstate(divide="ignore"):
        floor = np.where(ry > 1e-6, cam_h / ry, np.inf)
    z = np.minimum(z, floor)
    box = (ii >= h // 3) & (ii < 2 * h // 3) & (jj >= w // 3) & (jj < 2 * w // 3)
    z = np.where(box, box_depth, z)
    points = np.stack([rx * z, ry * z, z], -1)
    seg = np.where(box, 1, np.where(floor < wall, 2, 3))
    K = np.array([[f / w, 0, (cx + 0.5) / w], [0, f / h, (cy + 0.5) / h], [0, 0, 1]])
    return {"depth": z, "points": points, "box": box, "seg": seg, "K": K}


def _gt(s, mask=None, is_metric=True, sharp=True, seg=True, dtype=torch.float32):
    m = np.ones(s["depth"].shape, bool) if mask is None else mask
    gt = {"depth": torch.tensor(s["depth"], dtype=dtype), "depth_mask": torch.tensor(m),
          "points": torch.tensor(s["points"], dtype=dtype), "intrinsics": torch.tensor(s["K"], dtype=dtype),
          "is_metric": is_metric, "has_sharp_boundary": sharp}
    if seg:
        gt["segmentation_mask"] = torch.tensor(s["seg"])
        gt["segmentation_labels"] = {"box": 1, "floor": 2, "wall": 3}
    return gt


def _preds(s, seed=0):
    rng = np.random.default_rng(seed)
    z, pts = s["depth"], s["points"]
    noise = np.exp(rng.normal(0, 0.05, z.shape))
    blur = z.copy()
    blur[1:-1, 1:-1] = (z[:-2, 1:-1] + z[2:, 1:-1] + z[1:-1, :-2] + z[1:-1, 2:] + z[1:-1, 1:-1]) / 5  # soft edges
    K2 = s["K"].copy()
    K2[0, 0] *= 1.15
    K2[1, 1] *= 1.15
    full = {"depth_metric": z * noise * 1.1, "depth_scale_invariant": blur * noise * 3,
            "depth_affine_invariant": z * noise * 2 + 1, "disparity_affine_invariant": 0.5 / (z * noise) + 0.1,
            "points_metric": pts * noise[..., None] + [0.1, 0, 0.2], "points_scale_invariant": pts * noise[..., None] * 2,
            "points_affine_invariant": pts * noise[..., None] * 2 + [1, 2, 3], "intrinsics": K2}
    return {k: torch.tensor(v, dtype=torch.float32) for k, v in full.items()}


def _close(a: dict, b: dict, rel=1e-6):
    assert set(a) == set(b), (sorted(a), sorted(b))
    for lv in a:
        assert set(a[lv]) == set(b[lv]), lv
        for m in a[lv]:
            assert b[lv][m] == pytest.approx(a[lv][m], rel=rel, abs=1e-7), (lv, m, a[lv][m], b[lv][m])


# --- against MoGe's compute_metrics ---------------------------------------------------------------
# MoGe fits the affine point levels over all 4096 anchors of the subsample (seconds on a CPU, tens of
# seconds on a shared one): the full-dictionary comparisons are slow tests, the depth levels fast ones.
@pytest.mark.slow
def test_levels_equal_moge_on_box_scene():
    moge_metrics, _, _ = _moge()
    s = scene()
    mask = np.ones(s["depth"].shape, bool)
    mask[:4, :9] = False  # an invalid corner: the subsample must skip it
    gt, pred = _gt(s, mask), _preds(s)
    ref, _ = moge_metrics.compute_metrics(pred, gt)
    ours = geo.compute_levels(pred, gt)
    assert set(ours) == set(geo.LEVELS)  # every level present with a full prediction
    _close(ref, ours)


@pytest.mark.parametrize("keys,is_metric,sharp", [
    (("disparity_affine_invariant",), False, True),  # an affine-disparity model (Depth Anything): one depth level
    (("depth_metric", "intrinsics"), False, True),  # metric depth on a non-metric set: no metric level
    (("depth_metric", "depth_affine_invariant"), True, True),
    pytest.param(("depth_scale_invariant", "points_scale_invariant"), True, False, marks=pytest.mark.slow),
])
def test_level_subsets_equal_moge(keys, is_metric, sharp):
    moge_metrics, _, _ = _moge()
    s = scene(h=20, w=28, f=24.0, box_depth=1.8)
    full = _preds(s, seed=1)
    pred = {k: full[k] for k in keys}
    gt = _gt(s, is_metric=is_metric, sharp=sharp)
    ref, _ = moge_metrics.compute_metrics(pred, gt)
    _close(ref, geo.compute_levels(pred, gt))


def test_subsample_equals_utils3d():
    _, _, utils3d = _moge()
    rng = np.random.default_rng(3)
    for (h, w) in ((50, 40), (64, 64), (97, 131), (200, 150)):
        mask = torch.tensor(rng.random((h, w)) > 0.3)
        mask[: h // 3, : w // 4] = False  # whole empty windows
        ref_mask, ref_idx = utils3d.pt.masked_nearest_resize(mask=mask, size=(64, 64), return_index=True)
        cell, idx = masked_nearest_subsample(mask, (64, 64))
        assert torch.equal(ref_mask, cell)
        assert torch.equal(ref_idx[0][cell], idx[0][cell]) and torch.equal(ref_idx[1][cell], idx[1][cell])


def test_solvers_equal_moge():
    _, al, _ = _moge()
    rng = np.random.default_rng(4)
    x = torch.tensor(rng.uniform(1, 5, 300), dtype=torch.float32)
    y = 2 * x + 1 + torch.tensor(rng.normal(0, 0.1, 300), dtype=torch.float32)
    w = 1 / y
    assert float(l1_scale(x, y, w)[0]) == float(al.align_depth_scale(x, y, w))
    assert [float(v) for v in l1_affine(x, y, w)] == [float(v) for v in al.align_depth_affine(x, y, w)]
    p = torch.tensor(rng.normal(0, 1, (200, 3)) + [0, 0, 4], dtype=torch.float32)
    q = 1.7 * p + torch.tensor([0.3, -0.2, 1.0]) + torch.tensor(rng.normal(0, 0.05, (200, 3)), dtype=torch.float32)
    wq = 1 / q.norm(dim=-1)
    s_ref, b_ref = al.align_points_scale_xyz_shift(p, q, wq)
    s_ours, b_ours = l1_points_scale_shift(p, q, wq)
    assert float(s_ours) == float(s_ref) and torch.equal(b_ours, b_ref)
    assert float(l1_points_scale(p, q, wq)) == float(al.align_points_scale(p, q, wq))
    assert torch.equal(l1_points_shift(p, q, wq), al.align_points_xyz_shift(p, q, wq))


# --- independent references -------------------------------------------------------------------------
def test_l1_solvers_reach_the_brute_force_optimum():
    rng = np.random.default_rng(5)
    x, y = rng.uniform(0.5, 3, 25), rng.uniform(0.5, 3, 25)
    w = rng.uniform(0.1, 1, 25)
    a = float(l1_scale(torch.tensor(x), torch.tensor(y), torch.tensor(w))[0])
    best = min((w * np.abs(r * x - y)).sum() for r in y / x)  # the optimum is at a ratio y_i / x_i
    assert (w * np.abs(a * x - y)).sum() == pytest.approx(best, rel=1e-12)
    s, b = (float(v) for v in l1_affine(torch.tensor(x), torch.tensor(y), torch.tensor(w)))
    lines = [((y[j] - y[i]) / (x[j] - x[i]), y[i] - (y[j] - y[i]) / (x[j] - x[i]) * x[i])
             for i, j in itertools.combinations(range(25), 2)]  # an optimal L1 line passes through two points
    best = min((w * np.abs(p * x + q - y)).sum() for p, q in lines)
    assert (w * np.abs(s * x + b - y)).sum() == pytest.approx(best, rel=1e-9)


def test_perfect_and_transformed_predictions_hand_computed():
    s = scene()
    gt = _gt(s, seg=False, dtype=torch.float64)
    z, pts = s["depth"], s["points"]
    pred = {"depth_affine_invariant": torch.tensor(3 * z - 0.5, dtype=torch.float64),
            "points_affine_invariant": torch.tensor(0.5 * pts + [1.0, -2.0, 4.0], dtype=torch.float64),
            "intrinsics": torch.tensor(s["K"])}
    out = geo.compute_levels(pred, gt)
    assert set(out) == {"depth_affine_invariant", "points_affine_invariant", "fov_x", "boundary"}  # no SI/metric level
    assert out["depth_affine_invariant"]["rel"] == pytest.approx(0, abs=1e-9)
    assert out["depth_affine_invariant"]["delta1"] == 1.0
    assert out["points_affine_invariant"]["rel"] == pytest.approx(0, abs=1e-9)
    assert out["fov_x"] == {"mae": 0.0, "deviation": 0.0}
    assert out["boundary"] == {"radius1_f1": 1.0, "radius2_f1": 1.0, "radius3_f1": 1.0}
    # a 10% longer focal length: fov = 2 atan(1 / (2 f_norm)); the deviation is hand-computed
    K = s["K"].copy()
    K[0, 0] *= 1.1
    out = geo.compute_levels({"depth_metric": torch.tensor(z), "intrinsics": torch.tensor(K)}, {**gt, "is_metric": True})
    want = np.degrees(2 * np.arctan(0.5 / K[0, 0]) - 2 * np.arctan(0.5 / s["K"][0, 0]))
    assert out["fov_x"]["deviation"] == pytest.approx(want, rel=1e-9)
    assert out["depth_metric"] == {"rel": pytest.approx(0, abs=1e-9), "delta1": 1.0}


def test_flat_names_are_registered():
    for name in geo.LEVEL_METRICS:
        assert METRICS.get(name).task == "geometry"
    assert set(list_metrics("boundary")) == {"si_boundary_f1", "si_boundary_recall"}
    out = geo.flatten_levels({"fov_x": {"mae": 1.0, "deviation": -1.0}})
    assert out == {"fov_x_mae": 1.0, "fov_x_deviation": -1.0}


# --- Depth Pro's boundary metrics -------------------------------------------------------------------
# A transcription of the reference formulas (src/depth_pro/eval/boundary_metrics.py, apple/ml-depth-pro),
# kept in this test as the independent reference: loops, one run at a time.
def _ref_nms_h(ratio, t):
    mask = np.zeros_like(ratio, dtype=bool)
    r, c = np.nonzero(ratio > t)
    if len(r) == 0:
        return mask
    runs, cur = [], [0]
    for i in range(1, r.size):
        if r[i] == r[cur[-1]] and c[i] == c[cur[-1]] + 1:
            cur.append(i)
        else:
            runs.append(cur)
            cur = [i]
    runs.append(cur)
    for ids in runs:
        k = ids[int(np.argmax([ratio[r[i], c[i]] for i in ids]))]
        mask[r[k], c[k]] = True
    return mask


def _ref_fgbg(d, t):
    return (d[:, :-1] / d[:, 1:] > t, d[:-1, :] / d[1:, :] > t, d[:, 1:] / d[:, :-1] > t, d[1:, :] / d[:-1, :] > t)


def _ref_f1(p, g, t):
    P, G = _ref_fgbg(p, t), _ref_fgbg(g, t)
    r = 0.25 * sum(np.count_nonzero(a & b) / max(np.count_nonzero(b), 1) for a, b in zip(P, G))
    pr = 0.25 * sum(np.count_nonzero(a & b) / max(np.count_nonzero(a), 1) for a, b in zip(P, G))
    return 0.0 if r + pr == 0 else 2 * r * pr / (r + pr)


def _ref_si_f1(pred, gt, t_min=1.05, t_max=1.25, n=10):
    ts = np.linspace(t_min, t_max, n)
    inv = lambda d: 1.0 / d.clip(min=1e-6)  # noqa: E731
    return np.sum(np.array([_ref_f1(inv(pred), inv(gt), t) for t in ts]) * ts / ts.sum())


def _ref_si_recall(pred, mask, t_min=1.05, t_max=1.25, n=10, alpha=0.1):
    ts = np.linspace(t_min, t_max, n)
    d = 1.0 / pred.clip(min=1e-6)
    m = mask > alpha
    G = (m[:, :-1] & ~m[:, 1:], m[:-1, :] & ~m[1:, :], m[:, 1:] & ~m[:, :-1], m[1:, :] & ~m[:-1, :])
    out = []
    for t in ts:
        P = (_ref_nms_h(d[:, :-1] / d[:, 1:], t), _ref_nms_h((d[:-1, :] / d[1:, :]).T, t).T,
             _ref_nms_h(d[:, 1:] / d[:, :-1], t), _ref_nms_h((d[1:, :] / d[:-1, :]).T, t).T)
        out.append(0.25 * sum(np.count_nonzero(a & b) / max(np.count_nonzero(b), 1) for a, b in zip(P, G)))
    return np.sum(np.array(out) * ts / ts.sum())


def _boundary_cases():
    s = scene()
    z = s["depth"].astype(np.float32)
    rng = np.random.default_rng(7)
    ramp = z.copy()
    ramp[:, 1:] = 0.5 * (z[:, 1:] + z[:, :-1])  # the edges smeared over two pixels
    return s, [z, 2.7 * z, z * np.exp(rng.normal(0, 0.03, z.shape)).astype(np.float32), ramp,
               np.full_like(z, 3.0), np.where(s["box"], 5.0, z).astype(np.float32)]


def test_si_boundary_f1_equals_depth_pro_formulas():
    s, preds = _boundary_cases()
    gt = s["depth"].astype(np.float32)
    for p in preds:
        assert geo.si_boundary_f1(p, gt) == pytest.approx(_ref_si_f1(p, gt), rel=1e-12, abs=1e-15)
    assert geo.si_boundary_f1(gt, gt) == pytest.approx(1.0)  # scale-invariant: any exact copy scores 1
    assert geo.si_boundary_f1(3 * gt, gt) == pytest.approx(1.0)
    assert geo.si_boundary_f1(np.full_like(gt, 3.0), gt) == 0.0  # no predicted edge
    assert geo.si_boundary_f1(preds[3], gt, t_min=1.1, t_max=1.3, n=4) == pytest.approx(
        _ref_si_f1(preds[3], gt, 1.1, 1.3, 4), rel=1e-12)


def test_si_boundary_f1_hand_computed_step():
    # one vertical step 2 m -> 1 m: a single column of "right is closer" pairs (inverse ratio 2 > every t).
    # Precision and recall are means over the four directions, a direction without edges counting 0
    # (count / max(0, 1)), so even an exact copy scores 0.25 here (the box scene, with edges in all four
    # directions, scores 1)
    gt = np.array([[2.0, 2.0, 1.0, 1.0]] * 3)
    assert geo.si_boundary_f1(gt, gt) == 0.25
    # the prediction puts the step one column late: no pair in common, F1 = 0
    late = np.array([[2.0, 2.0, 2.0, 1.0]] * 3)
    assert geo.si_boundary_f1(late, gt) == 0.0
    # a step of ratio 1.15 is an edge for thresholds below 1.15 only: 5 of the 10 thresholds (1.05..1.1333)
    soft = np.array([[1.15, 1.15, 1.0, 1.0]] * 3)
    ts = np.linspace(1.05, 1.25, 10)
    assert geo.si_boundary_f1(soft, gt) == pytest.approx(0.25 * ts[ts < 1.15].sum() / ts.sum())


def test_si_boundary_recall_equals_depth_pro_formulas():
    s, preds = _boundary_cases()
    box = s["box"].astype(np.float32)
    for p in preds:
        assert geo.si_boundary_recall(p, box) == pytest.approx(_ref_si_recall(p, box), rel=1e-12, abs=1e-15)
    assert geo.si_boundary_recall(s["depth"], box) == pytest.approx(1.0)  # the box is in front of everything
    # a matte with fractional alpha: only alpha > 0.1 is foreground
    soft = box * 0.5 + 0.05
    assert geo.si_boundary_recall(preds[3], soft) == pytest.approx(_ref_si_recall(preds[3], soft), rel=1e-12)


def test_si_boundary_recall_thins_a_smeared_edge():
    # depth 1 m (mask) | 1.5 | 3 m: two successive "left is closer" pairs of ratio 1.5 and 2 in each row;
    # thinning keeps the larger, which is not on the mask edge (col 0|1): recall 0 in that direction
    d = np.array([[1.0, 1.5, 3.0, 3.0]] * 2)
    mask = np.array([[1.0, 0.0, 0.0, 0.0]] * 2)
    assert geo.si_boundary_recall(d, mask) == pytest.approx(_ref_si_recall(d, mask))
    assert geo.si_boundary_recall(d, mask) == 0.0
    sharp = np.array([[1.0, 3.0, 3.0, 3.0]] * 2)
    assert geo.si_boundary_recall(sharp, mask) == pytest.approx(0.25)  # 1 of 4 directions has mask edges
