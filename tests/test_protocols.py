"""Protocol details checked against hand-computed cases and the reference formulas:
crops (ZoeDepth's KB-then-Garg, BTS placement, KITTI Eigen, refusals), the prediction floor and
Marigold's alignment_max_res."""
from __future__ import annotations

import numpy as np
import pytest

from dabench.data.crops import (CROPS, crop_mask, eigen_box, eigen_zoedepth_box, garg_box, kb_box, kitti_eigen_box,
                                window_crop_mask)
from dabench.errors import ConfigError, DataError
from dabench.eval.suites import Protocol, parse_suite, resolve_protocol

KITTI = (375, 1242)


def test_crop_boxes_hand_computed():
    # int(0.40810811*375)=153, int(0.99189189*375)=371, int(0.03594771*1242)=44, int(0.96405229*1242)=1197
    assert garg_box(*KITTI) == (153, 371, 44, 1197)
    # int(0.3324324*375)=124, int(0.91351351*375)=342, int(0.0359477*1242)=44, int(0.96405229*1242)=1197
    assert kitti_eigen_box(*KITTI) == (124, 342, 44, 1197)
    assert kb_box(*KITTI) == (23, 375, 13, 1229)
    assert eigen_box(480, 640) == (45, 471, 41, 601)
    # ZoeDepth slices [45:471, 41:601] on any frame: HyperSim keeps the window, a 427x561 SUN RGB-D
    # (Kinect v1) frame is clipped at its border
    assert eigen_zoedepth_box(768, 1024) == (45, 471, 41, 601) and eigen_zoedepth_box(427, 561) == (45, 427, 41, 561)


def test_zoedepth_kb_then_garg_differs_from_bts_as_in_the_issue():
    zoe, bts = crop_mask(KITTI, "kb+garg"), crop_mask(KITTI, "kb+garg_bts")
    # ZoeDepth: Garg of the 352x1216 window: rows int(.40810811*352)=143 .. int(.99189189*352)=349,
    # cols int(.03594771*1216)=43 .. int(.96405229*1216)=1172; + window offset (23, 13)
    rows, cols = np.nonzero(zoe)
    assert (rows.min(), rows.max() + 1, cols.min(), cols.max() + 1) == (166, 372, 56, 1185)
    assert zoe.sum() == 206 * 1129
    assert bts.sum() == 218 * 1153  # the full frame's Garg box, inside the window
    assert (zoe & ~bts).sum() == 1129  # row 371: scored only by ZoeDepth (~1,100 in the issue)
    assert (bts & ~zoe).sum() == 218 * 1153 - 205 * 1129 == 19909  # ~20,000 only by BTS/old dabench
    # Marigold: KB window then KITTI Eigen fractions of the window: rows 117..321, cols 43..1172
    w = window_crop_mask(KITTI, "kb+kitti_eigen")
    r, c = np.nonzero(w)
    assert (r.min(), r.max() + 1, c.min(), c.max() + 1) == (117, 321, 43, 1172)


@pytest.mark.parametrize("crop,shape,phrase", [
    ("eigen", KITTI, "kitti_eigen"), ("eigen", (479, 640), "480x640"), ("eigen", (768, 1024), "eigen_zoedepth"),
    ("eigen_zoedepth", (45, 640), "empty"), ("garg", (640, 480), "landscape"),
    ("kitti_eigen", (500, 500), "landscape"), ("kb", (351, 1242), "352x1216"), ("kb+garg", (375, 1215), "352x1216"),
])
def test_every_crop_refuses_frames_it_was_not_defined_for(crop, shape, phrase):
    with pytest.raises(DataError, match=phrase):
        crop_mask(shape, crop)


def test_crop_names_are_one_list():
    from dabench.data import cards, crops
    from dabench.eval import suites

    assert cards.EVAL_CROPS is crops.CROPS
    with pytest.raises(ConfigError, match="valid crops"):
        parse_suite({"task": "relative", "datasets": [{"dataset": "nyu", "crop": "eigen_nyu"}]})
    assert "kb+kitti_eigen" in CROPS and "kb+garg_bts" in CROPS and suites.CROPS is CROPS


def _zoedepth_reference(gt_full, pred_window, lo, hi):
    """ZoeDepth's metric pipeline written out with numpy: gt cut to the KB window
    (data_mono.py:408-417), pred clamped to [lo, hi], valid lo < gt < hi, Garg box of the window
    (misc.py:217-245), compute_errors (misc.py:180-197)."""
    h, w = gt_full.shape
    t, l = int(h - 352), int((w - 1216) / 2)
    gt = gt_full[t:t + 352, l:l + 1216]
    pred = np.clip(pred_window, lo, hi)
    valid = (gt > lo) & (gt < hi)
    m = np.zeros_like(valid)
    m[int(0.40810811 * 352):int(0.99189189 * 352), int(0.03594771 * 1216):int(0.96405229 * 1216)] = True
    g, p = gt[valid & m].astype(np.float64), pred[valid & m].astype(np.float64)
    thresh = np.maximum(g / p, p / g)
    err = np.log(p) - np.log(g)
    return {"abs_rel": np.mean(np.abs(g - p) / g), "sq_rel": np.mean((g - p) ** 2 / g),
            "rmse": np.sqrt(np.mean((g - p) ** 2)), "rmse_log": np.sqrt(np.mean((np.log(g) - np.log(p)) ** 2)),
            "log10": np.mean(np.abs(np.log10(g) - np.log10(p))),
            "silog": np.sqrt(np.mean(err ** 2) - np.mean(err) ** 2) * 100,
            "delta1": (thresh < 1.25).mean(), "delta2": (thresh < 1.25 ** 2).mean(), "delta3": (thresh < 1.25 ** 3).mean()}


def test_metric_kitti_scoring_matches_zoedepth_reference():
    from dabench.eval.scoring import prepare_sample, score_sample

    rng = np.random.default_rng(0)
    h, w = KITTI
    gt = rng.uniform(0.5, 90, (h, w)).astype(np.float32)
    gt[rng.random((h, w)) < 0.7] = 0  # sparse LiDAR
    sample = {"image": np.zeros((h, w, 3), np.uint8), "depth": gt, "valid": gt > 0, "name": "k"}
    proto = resolve_protocol(parse_suite({"task": "metric", "datasets": [
        {"dataset": "kitti", "crop": "kb+garg", "min_depth": 0.001, "max_depth": 80}]}), "kitti")
    s = prepare_sample(sample, proto)
    pred = (s["depth"] * rng.uniform(0.8, 1.2, s["depth"].shape) + 0.3).astype(np.float32)
    status, ours, _ = score_sample(pred, s, proto, "depth")
    ref = _zoedepth_reference(gt, pred, 0.001, 80.0)
    assert status == "ok"
    for k, v in ref.items():
        assert ours[k] == pytest.approx(float(v), rel=1e-9), k


def test_pred_floor_is_a_named_protocol_value():
    metric = parse_suite({"task": "metric", "datasets": [{"dataset": "ibims", "min_depth": 0.0, "max_depth": 10}]})
    relative = parse_suite({"task": "relative", "datasets": [{"dataset": "ibims", "min_depth": 0.0, "max_depth": 10}]})
    assert resolve_protocol(metric, "ibims").pred_floor == 0.0  # ZoeDepth: clamp at min_depth_eval = 0
    assert resolve_protocol(relative, "ibims").pred_floor == 1e-3
    pinned = parse_suite({"task": "metric", "datasets": [{"dataset": "ibims", "pred_floor": 0.05}]})
    assert resolve_protocol(pinned, "ibims").pred_floor == 0.05
    with pytest.raises(ConfigError, match="pred_floor"):
        parse_suite({"task": "metric", "datasets": [{"dataset": "ibims", "pred_floor": -1}]})


def test_pred_floor_changes_the_score_by_hand():
    from dabench.eval.scoring import score_sample

    gt = np.array([[2.0, 4.0]], np.float32)
    pred = np.array([[0.0005, 4.0]], np.float32)  # one prediction below ZoeDepth's... and dabench's old floor
    s = {"depth": gt, "valid": np.ones_like(gt, bool), "name": "x"}
    base = dict(alignment="none", score_space="depth", min_depth=0.0, max_depth=10.0)
    _, zoe, _ = score_sample(pred, s, Protocol(**base, pred_floor=0.0), "depth")
    _, old, _ = score_sample(pred, s, Protocol(**base, pred_floor=1e-3), "depth")
    assert zoe["abs_rel"] == pytest.approx((2 - 0.0005) / 2 / 2)
    assert old["abs_rel"] == pytest.approx((2 - 0.001) / 2 / 2)


def test_alignment_max_res_subsamples_like_marigold():
    torch = pytest.importorskip("torch")
    from dabench.eval.align import fit_alignment, subsample_for_fit

    rng = np.random.default_rng(3)
    h, w = 20, 30
    gt = rng.uniform(1, 5, (h, w))
    pred = gt * 2 + rng.normal(0, 0.3, (h, w))
    valid = rng.random((h, w)) > 0.2
    p, g, v = subsample_for_fit(pred, gt, valid, 8)
    # Marigold's nn.Upsample(scale_factor=min(8/20, 8/30)) on a 1xHxW tensor: 1-D along W, columns
    # floor(j / (8/30)) = 0, 3, 7, 11, 15, 18, 22, 26; every row kept
    cols = [0, 3, 7, 11, 15, 18, 22, 26]
    np.testing.assert_array_equal(p, pred[:, cols])
    np.testing.assert_array_equal(v, valid[:, cols])
    # the reference solver: lstsq on [pred, 1] over the subsample (src/util/alignment.py:65-72)
    A = np.stack([p[v], np.ones(v.sum())], axis=1)
    ref = np.linalg.lstsq(A, g[v], rcond=None)[0]
    s, t = fit_alignment(pred, gt, valid, "scale_shift_depth", max_res=8)
    assert (s, t) == pytest.approx(tuple(ref), rel=1e-9)
    assert fit_alignment(pred, gt, valid, "scale_shift_depth", max_res=30) == \
        fit_alignment(pred, gt, valid, "scale_shift_depth")  # fits already: full resolution
    up = torch.nn.Upsample(scale_factor=min(8 / 20, 8 / 30), mode="nearest")
    np.testing.assert_array_equal(up(torch.as_tensor(pred).unsqueeze(0)).numpy()[0], p)
    with pytest.raises(ConfigError, match="alignment_max_res"):
        parse_suite({"task": "relative", "datasets": [{"dataset": "eth3d", "alignment_max_res": 0}]})


def test_seg_out_of_range_prediction_is_a_wrong_pixel_as_mmseg():
    torch = pytest.importorskip("torch")
    pytest.importorskip("mmseg")
    from mmseg.evaluation.metrics import IoUMetric

    from dabench.metrics.seg import SegMetricState, seg_areas

    label = np.array([[0, 0, 1, 2], [1, 255, 2, 2]])
    pred = np.array([[0, 7, 1, -1], [1, 9, 2, 3]])  # 7, -1, 3 out of range (9 sits on an ignored pixel)
    ours = seg_areas(pred, label, 3)
    # by hand: intersect = [1, 2, 1]; pred areas (in range) = [1, 2, 1]; label areas = [2, 2, 3]
    np.testing.assert_array_equal(ours[0], [1, 2, 1])
    np.testing.assert_array_equal(ours[2], [1, 2, 1])
    np.testing.assert_array_equal(ours[3], [2, 2, 3])
    theirs = IoUMetric.intersect_and_union(torch.as_tensor(pred), torch.as_tensor(label), 3, 255)
    for a, b in zip(ours, theirs):
        np.testing.assert_array_equal(a, b.numpy())
    st = SegMetricState(3)
    st.update(pred, label)
    assert st.compute()["aacc"] == pytest.approx(4 / 7 * 100)


def test_ls_protocols_and_readme_table_agree():
    from pathlib import Path

    from typer.testing import CliRunner

    from dabench.cli import app
    from dabench.eval.protocol_table import protocol_markdown, protocol_rows

    rows = protocol_rows()
    by = {(r["suite"], r["dataset"]): r for r in rows}
    assert by[("marigold", "eth3d")]["fit res"] == "≤1024 px" and by[("marigold", "eth3d")]["range (m)"] == "1e-05–∞"
    assert by[("marigold", "kitti")]["crop"] == "kb+kitti_eigen" and by[("marigold", "kitti")]["split"] == "test (652)"
    assert by[("metric-kitti", "kitti")]["crop"] == "kb+garg" and "Marigold" in by[("marigold", "nyu")]["source"]
    assert by[("da2k", "da2k")]["alignment"].startswith("-") and not any(r["suite"].startswith("seg-") for r in rows)
    # the docs' Protocols page is generated from the same table at build time (docs/_gen/hooks.py)
    hooks = (Path(__file__).resolve().parents[1] / "docs" / "_gen" / "hooks.py").read_text()
    assert "protocol_markdown(protocol_rows(None))" in hooks
    res = CliRunner().invoke(app, ["ls", "protocols", "--markdown"])
    assert res.exit_code == 0 and res.output == protocol_markdown(rows)
    res = CliRunner().invoke(app, ["ls", "protocols", "--suite", "marigold"], env={"COLUMNS": "250"})
    assert res.exit_code == 0 and "kb+kitti_eigen" in res.output


def test_suite_entry_source_is_kept_and_checked():
    s = parse_suite({"task": "relative", "datasets": [{"dataset": "nyu", "source": "a/b c.py:1"}]})
    assert s.datasets[0].source == "a/b c.py:1" and "source" not in s.datasets[0].overrides
    with pytest.raises(ConfigError, match="source must be a string"):
        parse_suite({"task": "relative", "datasets": [{"dataset": "nyu", "source": 3}]})


def test_delta_at_an_exact_ratio_tie_matches_the_references():
    """ZoeDepth/Marigold/DA-V2 count max(g/p, p/g) < 1.25 on the ratio itself: a ground truth of
    8.000 m against a prediction clamped at 10 m (ratio exactly 1.25) is outside delta1."""
    torch = pytest.importorskip("torch")
    from dabench.metrics import depth_metrics
    from dabench.metrics.depth import DepthMetricState

    g = np.array([[8.0, 37.5, 24.0, 9.0]])
    p = np.array([[10.0, 30.0, 30.0, 10.0]])
    ref = np.mean(np.maximum(g / p, p / g) < 1.25)
    assert ref == 0.25
    assert depth_metrics(p, g, np.ones_like(g, bool))["delta1"] == ref
    st = DepthMetricState()
    st.update_batch(torch.tensor(p)[None].float(), torch.tensor(g)[None].float(), None, compile=False)
    assert st.compute()["delta1"] == ref
