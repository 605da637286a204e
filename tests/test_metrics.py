"""Metric registry and streaming states against independent numpy references."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from dabench.errors import DataError
from dabench.metrics import (DEPTH_METRICS, METRICS, SEG_METRICS, DepthMetricState, SegMetricState,
                             depth_metrics, get_metric, list_metrics)
from dabench.registry import RegistryError


def ref_depth(pred, gt):
    """Plain numpy reference written from the ZoeDepth formulas (1-D arrays of valid pixels)."""
    thresh = np.maximum(gt / pred, pred / gt)
    err = np.log(pred) - np.log(gt)
    return {
        "abs_rel": np.mean(np.abs(gt - pred) / gt),
        "sq_rel": np.mean((gt - pred) ** 2 / gt),
        "rmse": np.sqrt(np.mean((gt - pred) ** 2)),
        "rmse_log": np.sqrt(np.mean((np.log(gt) - np.log(pred)) ** 2)),
        "log10": np.mean(np.abs(np.log10(gt) - np.log10(pred))),
        "silog": np.sqrt(np.mean(err ** 2) - np.mean(err) ** 2) * 100,
        "delta1": np.mean(thresh < 1.25),
        "delta2": np.mean(thresh < 1.25 ** 2),
        "delta3": np.mean(thresh < 1.25 ** 3),
    }


def _case(rng, h=12, w=9):
    gt = rng.uniform(0.5, 20, (h, w))
    pred = gt * np.exp(rng.normal(0, 0.3, (h, w)))
    valid = rng.random((h, w)) > 0.3
    return pred, gt, valid


def test_registry_entries_complete():
    from dabench.metrics.registry import AVERAGING

    assert list_metrics("ordinal") == ["pair_accuracy"] and get_metric("pair_accuracy").averaging == "pair"
    assert list_metrics("depth") == list(DEPTH_METRICS)
    assert list_metrics("segmentation") == list(SEG_METRICS)
    for name in METRICS.names():
        spec = get_metric(name)
        assert spec.name == name and spec.averaging in AVERAGING
        assert isinstance(spec.higher_is_better, bool) and spec.display and spec.fmt
    assert get_metric("delta1").higher_is_better and not get_metric("abs_rel").higher_is_better
    with pytest.raises(RegistryError, match="abs_rel"):
        get_metric("absrel")


def test_depth_metrics_random_vs_numpy():
    rng = np.random.default_rng(0)
    for _ in range(5):
        pred, gt, valid = _case(rng)
        got = depth_metrics(pred, gt, valid)
        ref = ref_depth(pred[valid], gt[valid])
        for k in DEPTH_METRICS:
            assert got[k] == pytest.approx(ref[k], rel=1e-10, abs=1e-12), k


def test_depth_metrics_hand_built():
    gt = np.array([[1.0, 2.0], [4.0, 8.0]])
    ones = np.ones_like(gt, bool)
    m = depth_metrics(gt.copy(), gt, ones)
    assert m["abs_rel"] == 0 and m["rmse"] == 0 and m["silog"] == 0 and m["delta1"] == 1
    m = depth_metrics(2 * gt, gt, ones)
    assert m["abs_rel"] == pytest.approx(1.0) and m["delta1"] == 0 and m["delta2"] == 0 and m["delta3"] == 0
    assert m["silog"] == pytest.approx(0.0, abs=1e-6)  # a global scale is invisible to SILog
    assert m["log10"] == pytest.approx(np.log10(2))
    assert m["rmse"] == pytest.approx(np.sqrt(np.mean(gt ** 2)))
    pred = gt * np.array([[1.2, 1.0], [1.5, 1.0]])  # ratios 1.2 (<1.25) and 1.5 (<1.5625)
    m = depth_metrics(pred, gt, ones)
    assert m["delta1"] == 0.75 and m["delta2"] == 1.0


def test_depth_metrics_torch_inputs_match_numpy():
    rng = np.random.default_rng(1)
    pred, gt, valid = _case(rng)
    a = depth_metrics(pred, gt, valid)
    b = depth_metrics(torch.from_numpy(pred), torch.from_numpy(gt), torch.from_numpy(valid))
    assert a == pytest.approx(b, rel=1e-12)


def test_state_per_image_vs_pixel_pooled_and_merge():
    rng = np.random.default_rng(2)
    cases = [_case(rng, h=5 + i, w=7 + 2 * i) for i in range(6)]  # different pixel counts per image
    state = DepthMetricState()
    for i, (p, g, v) in enumerate(cases):
        state.update(p, g, v, name=f"img{i}")
    per_image = [ref_depth(p[v], g[v]) for p, g, v in cases]
    pooled = ref_depth(np.concatenate([p[v] for p, g, v in cases]), np.concatenate([g[v] for p, g, v in cases]))
    img_avg = state.compute()
    pix = state.compute("pixel")
    for k in DEPTH_METRICS:
        assert img_avg[k] == pytest.approx(np.mean([r[k] for r in per_image]), rel=1e-10), k
        assert pix[k] == pytest.approx(pooled[k], rel=1e-10), k
    assert img_avg["abs_rel"] != pytest.approx(pix["abs_rel"], rel=1e-6)  # the two rules really differ
    # streaming in two halves then merging is exact
    a, b = DepthMetricState(), DepthMetricState()
    for i, (p, g, v) in enumerate(cases):
        (a if i % 2 else b).update(p, g, v)
    a.merge(b)
    np.testing.assert_allclose(a.to_vector(), state.to_vector(), rtol=1e-12)
    c = DepthMetricState()
    c.load_state_dict(state.state_dict())
    assert c.compute() == pytest.approx(img_avg)


def test_zero_valid_sample_skipped_not_nan():
    rng = np.random.default_rng(3)
    p, g, v = _case(rng)
    state = DepthMetricState()
    state.update(p, g, v)
    assert state.update(p, g, np.zeros_like(v)) is None
    assert state.skipped_no_valid == 1 and state.n_images == 1
    assert state.compute() == pytest.approx(ref_depth(p[v], g[v]))
    assert all(np.isnan(x) for x in DepthMetricState().compute().values())
    with pytest.raises(DataError, match="no valid"):
        depth_metrics(p, g, np.zeros_like(v))


def test_bad_predictions_are_errors_naming_the_sample():
    rng = np.random.default_rng(4)
    p, g, v = _case(rng)
    p[v.nonzero()[0][0], v.nonzero()[1][0]] = np.nan
    with pytest.raises(DataError, match="kitchen_0042.*NaN"):
        DepthMetricState().update(p, g, v, name="kitchen_0042")
    with pytest.raises(DataError, match="<= 0"):
        depth_metrics(-np.ones_like(g), g, v)
    with pytest.raises(DataError, match="shape"):
        depth_metrics(p[:-1], g, v)


def ref_seg(preds, labels, c, ignore=255):
    cm = np.zeros((c, c))
    for p, l in zip(preds, labels):
        k = l != ignore
        np.add.at(cm, (l[k], p[k]), 1)
    tp = np.diag(cm)
    with np.errstate(invalid="ignore", divide="ignore"):
        iou = tp / (cm.sum(0) + cm.sum(1) - tp)
        acc = tp / cm.sum(1)
    return {"miou": np.nanmean(iou) * 100, "macc": np.nanmean(acc) * 100, "aacc": tp.sum() / cm.sum() * 100}, iou


def test_seg_metrics_vs_confusion_matrix():
    rng = np.random.default_rng(5)
    c = 5
    labels = [rng.integers(0, c - 1, (9, 11)) for _ in range(4)]  # class 4 never in labels
    for l in labels:
        l[rng.random(l.shape) < 0.1] = 255
    preds = [np.where(rng.random(l.shape) < 0.7, np.where(l == 255, 0, l), rng.integers(0, c - 1, l.shape)) for l in labels]
    state = SegMetricState(c, class_names=list("abcde"))
    halves = [SegMetricState(c), SegMetricState(c)]
    for i, (p, l) in enumerate(zip(preds, labels)):
        state.update(p, l)
        halves[i % 2].update(p, l)
    ref, iou = ref_seg(preds, labels, c)
    assert state.compute() == pytest.approx(ref, rel=1e-12)
    assert halves[0].merge(halves[1]).compute() == pytest.approx(ref, rel=1e-12)
    per = state.per_class_iou()
    assert per["e"] is None and per["a"] == pytest.approx(iou[0] * 100)
    with pytest.raises(DataError, match="label values"):
        state.update(preds[0], np.full_like(labels[0], 7))


def test_seg_matches_mmseg_iou_metric():
    mmseg_metric = pytest.importorskip("mmseg.evaluation.metrics.iou_metric")
    rng = np.random.default_rng(6)
    c = 4
    state = SegMetricState(c)
    results = []
    for _ in range(3):
        l = rng.integers(0, c, (8, 8))
        l[0, :3] = 255
        p = rng.integers(0, c, (8, 8))
        state.update(p, l)
        results.append(mmseg_metric.IoUMetric.intersect_and_union(torch.from_numpy(p), torch.from_numpy(l), c, 255))
    totals = [sum(r[i] for r in results) for i in range(4)]
    ref = mmseg_metric.IoUMetric.total_area_to_metrics(*totals, ["mIoU"])
    ours = state.compute()
    assert ours["aacc"] == pytest.approx(float(ref["aAcc"]) * 100)
    assert ours["miou"] == pytest.approx(float(np.nanmean(ref["IoU"])) * 100)
    other = SegMetricState(c)
    for r in results:
        other.update_areas(*r)
    assert other.compute() == pytest.approx(ours)


# ---------------------------------------------------------------- a metric spec owns its math
@pytest.fixture
def registered():
    """Register metrics for one test and remove them afterwards."""
    from dabench.metrics import register_metric, unregister_metric

    names = []

    def add(spec):
        register_metric(spec)
        names.append(spec.name)
        return spec

    yield add
    for n in names:
        unregister_metric(n)


def _mae_spec(**over):
    from dabench.metrics import MetricSpec

    kw = dict(name="mae", display="MAE", higher_is_better=False, fmt=".4f", unit="score-space unit",
              averaging="image", task="depth", description="mean |p - g|",
              sums={"abs_err": lambda x: abs(x.d)}, finalize=lambda s: s["abs_err"] / s["n"])
    kw.update(over)
    return MetricSpec(**kw)


def test_registered_metric_runs_in_both_engines(registered):
    registered(_mae_spec())
    rng = np.random.default_rng(7)
    pred, gt, valid = _case(rng)
    got = depth_metrics(pred, gt, valid)
    assert got["mae"] == pytest.approx(np.mean(np.abs(pred[valid] - gt[valid])), rel=1e-12)
    assert got["abs_rel"] == pytest.approx(ref_depth(pred[valid], gt[valid])["abs_rel"], rel=1e-10)
    fast = DepthMetricState()
    fast.update_batch(torch.from_numpy(pred[None]).float(), torch.from_numpy(gt[None]).float(),
                      torch.from_numpy(valid))
    assert fast.compute()["mae"] == pytest.approx(got["mae"], rel=1e-5)


def test_per_image_median_and_percentile_aggregation(registered):
    from dabench.metrics import register_metric

    registered(_mae_spec(name="abs_rel_median", sums={"abs_rel": get_metric("abs_rel").sums["abs_rel"]},
                         finalize=get_metric("abs_rel").finalize, image_aggregation="median"))
    registered(_mae_spec(name="abs_rel_p90", sums={"abs_rel": get_metric("abs_rel").sums["abs_rel"]},
                         finalize=get_metric("abs_rel").finalize, image_aggregation="p90"))
    rng = np.random.default_rng(8)
    cases = [_case(rng, h=6 + i, w=5) for i in range(7)]
    per_image = [ref_depth(p[v], g[v])["abs_rel"] for p, g, v in cases]
    state, a, b = DepthMetricState(), DepthMetricState(), DepthMetricState()
    for i, (p, g, v) in enumerate(cases):
        state.update(p, g, v)
        (a if i % 2 else b).update(p, g, v)
    out = state.compute()
    assert out["abs_rel_median"] == pytest.approx(np.median(per_image), rel=1e-10)
    assert out["abs_rel_p90"] == pytest.approx(np.percentile(per_image, 90), rel=1e-10)
    assert out["abs_rel"] == pytest.approx(np.mean(per_image), rel=1e-10)
    assert a.merge(b).compute()["abs_rel_median"] == pytest.approx(np.median(per_image), rel=1e-10)
    c = DepthMetricState()
    c.load_state_dict(state.state_dict())
    assert c.compute() == pytest.approx(out)
    with pytest.raises(ValueError, match="image_aggregation"):
        register_metric(_mae_spec(name="bad_agg", image_aggregation="mode"))
    with pytest.raises(ValueError, match="already defined"):  # one definition per sum term name
        register_metric(_mae_spec(name="bad_term", sums={"abs_rel": lambda x: x.d}))


def test_registered_metric_reaches_a_suites_record_and_table(registered, tmp_path):
    """Adding a depth metric is one entry: the runner's record, per-sample CSV and table show it."""
    import csv
    import json

    import yaml
    from rich.console import Console

    from dabench.tasks import EvalRequest
    from dabench.eval.runner import run_suite

    registered(_mae_spec())
    suite = tmp_path / "tiny.yaml"
    suite.write_text(yaml.safe_dump({
        "name": "tiny", "task": "relative", "description": "runtime metric", "source": "tests",
        "defaults": {"alignment": "scale_shift_disparity", "score_space": "disparity", "input_size": 56},
        "datasets": ["synthetic-outdoor"], "metrics": ["abs_rel", "mae"], "primary_metrics": ["mae"]}))
    console = Console(record=True, width=200)
    recs = run_suite(suite, EvalRequest(limit=2, results_dir=tmp_path / "r", show_progress=False, print_table=True),
                     models=["horizon_prior"], console=console)
    folder = tmp_path / "r" / "tiny" / "horizon_prior"  # --limit runs write "<dataset>.partial.json"
    rec = json.loads(next(folder.glob("synthetic-outdoor*.json")).read_text())
    assert recs[0]["metrics"]["mae"] == rec["metrics"]["mae"] and rec["metrics"]["mae"] > 0
    assert rec["higher_is_better"]["mae"] is False
    rows = list(csv.DictReader(next(folder.glob("synthetic-outdoor*.samples.csv")).open()))
    assert np.mean([float(r["mae"]) for r in rows]) == pytest.approx(rec["metrics"]["mae"], rel=1e-12)
    text = console.export_text()
    assert "MAE↓" in text and format(rec["metrics"]["mae"], ".4f") in text
