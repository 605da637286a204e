"""The named protocol presets run end to end on one-frame fixtures in the real on-disk formats, and
their numbers match the reference pipelines written out with numpy."""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import cv2
import numpy as np
import pytest
import yaml
from typer.testing import CliRunner

from dabench.cli import app
from reader_layouts import KITTI_GT, KITTI_IMG, png16, rgb

REPO = Path(__file__).resolve().parents[1]
CONFIGS = Path(__file__).resolve().parents[1] / "dabench" / "configs"
RNG = np.random.default_rng(0)


def _img(path, h, w):
    rgb(path, h, w, RNG)  # PNG: lossless (the .jpg frames are PNGs renamed, as in the tree below)


@pytest.fixture
def tree(tmp_path, monkeypatch):
    """A private repo copy (cards, splits, suites) and a data root with one frame per Marigold set."""
    root = tmp_path / "repo"
    shutil.copytree(CONFIGS / "datasets", root / "datasets")
    shutil.copytree(CONFIGS / "suites", root / "suites")
    monkeypatch.setenv("DABENCH_CONFIG_PATH", str(root))
    data = tmp_path / "data"

    def card(name, **changes):
        p = root / "datasets" / f"{name}.yaml"
        c = yaml.safe_load(p.read_text())
        c.update(changes)
        p.write_text(yaml.safe_dump(c))

    def split(name, row):
        (root / "datasets" / "splits" / f"{name}.txt").write_text(" ".join(row) + "\n")
        return f"splits/{name}.txt"

    # NYU extracted test frame (480x640, uint16 mm)
    _img(data / "nyu/official_splits/test/bathroom/rgb_00045.jpg".replace(".jpg", ".png"), 480, 640)
    shutil.copy(data / "nyu/official_splits/test/bathroom/rgb_00045.png", data / "nyu/official_splits/test/bathroom/rgb_00045.jpg")
    png16(data / "nyu/official_splits/test/bathroom/sync_depth_00045.png", RNG.integers(0, 10500, (480, 640)))
    card("nyu", split_file={"test": split("n", ["bathroom/rgb_00045.jpg", "bathroom/sync_depth_00045.png", "518.8579"])})
    # KITTI raw frame + annotated depth (uint16 / 256), 375x1242, 30 % LiDAR coverage
    _img(data / "kitti/raw" / KITTI_IMG, 375, 1242)
    gt = RNG.integers(256, 85 * 256, (375, 1242)) * (RNG.random((375, 1242)) < 0.3)
    png16(data / "kitti/gts" / KITTI_GT, gt)
    card("kitti", split_file={"test": split("k", [KITTI_IMG, KITTI_GT, "721.5377"])})
    # ETH3D: raw float32 depth (inf = none), image as a .JPG name
    rel_img, rel_d = "rgb/office/images/dslr_images/DSC_0219.JPG", \
        "depth/office_dslr_depth/office/ground_truth_depth/dslr_images/DSC_0219.JPG"
    _img(data / "eth3d" / "tmp.png", 42, 56)
    (data / "eth3d" / rel_img).parent.mkdir(parents=True)
    shutil.move(data / "eth3d" / "tmp.png", data / "eth3d" / rel_img)
    d = RNG.uniform(1, 70, (42, 56)).astype("<f4")
    d[:3] = np.inf
    (data / "eth3d" / rel_d).parent.mkdir(parents=True)
    d.tofile(data / "eth3d" / rel_d)
    card("eth3d", split_file={"test": split("e", [rel_img, rel_d])}, depth_size=[42, 56])
    # ScanNet (Marigold's sample): color jpg + uint16 mm depth
    sroot = data / "scannet/scannet_val_sampled_800_1"
    _img(sroot / "scene0406_02/color/tmp.png", 48, 64)
    shutil.move(sroot / "scene0406_02/color/tmp.png", sroot / "scene0406_02/color/000300.jpg")
    png16(sroot / "scene0406_02/depth/000300.png", RNG.integers(0, 9000, (48, 64)))
    card("scannet", split_file={"test": split("s", ["scene0406_02/color/000300.jpg", "scene0406_02/depth/000300.png"])})
    # DIODE: png + HxWx1 depth npy + mask npy
    rel = "outdoor/scene_00022/scan_00193/00022_00193_outdoor_000_010"
    _img(data / "diode/val" / f"{rel}.png", 42, 56)
    np.save(data / "diode/val" / f"{rel}_depth.npy", RNG.uniform(0.7, 300, (42, 56, 1)).astype(np.float32))
    np.save(data / "diode/val" / f"{rel}_depth_mask.npy", (RNG.random((42, 56)) > 0.1).astype(np.float32))
    card("diode", split_file={"test": split("d", [f"{rel}.png", f"{rel}_depth.npy", f"{rel}_depth_mask.npy"])})
    return data


def _metrics(p, g):
    """ZoeDepth compute_errors / Marigold src/util/metric.py on valid vectors."""
    thresh = np.maximum(g / p, p / g)
    err = np.log(p) - np.log(g)
    return {"abs_rel": np.mean(np.abs(g - p) / g), "rmse": np.sqrt(np.mean((g - p) ** 2)),
            "delta1": np.mean(thresh < 1.25), "log10": np.mean(np.abs(np.log10(g) - np.log10(p))),
            "silog": 100 * np.sqrt(np.mean(err ** 2) - np.mean(err) ** 2)}


def test_marigold_preset_runs_and_matches_its_pipeline(tree, tmp_path):
    from dabench.eval.loop import predict_images
    from dabench.eval.suites import Protocol
    from dabench.models import create_model

    out = tmp_path / "res"
    res = CliRunner().invoke(app, ["run", "--suite", "marigold", "--model", "horizon_prior", "--data-root",
                                   str(tree), "--input-size", "28", "--results", str(out)], env={"COLUMNS": "200"})
    assert res.exit_code == 0, res.output
    recs = {p.stem: json.loads(p.read_text()) for p in (out / "marigold" / "horizon_prior").glob("*.json")}
    assert sorted(recs) == ["diode", "eth3d", "kitti", "nyu", "scannet"]
    assert all(r["status"] == "ok" and r["samples"]["used"] == 1 for r in recs.values())
    assert recs["eth3d"]["protocol"]["alignment_max_res"] == 1024 and recs["kitti"]["protocol"]["crop"] == "kb+kitti_eigen"

    # KITTI, independently: KB window (kitti_dataset.py:95-108), depth = 1/disparity, valid 1e-5 < gt < 80
    # and the KITTI Eigen box of the window (:111-131), lstsq on [pred, 1] (alignment.py:65-72), clip.
    image = cv2.imread(str(tree / "kitti/raw" / KITTI_IMG))[..., ::-1]
    gt = cv2.imread(str(tree / "kitti/gts" / KITTI_GT), cv2.IMREAD_UNCHANGED).astype(np.float64) / 256.0
    t, l = 375 - 352, int((1242 - 1216) / 2)
    image, gt = np.ascontiguousarray(image[t:t + 352, l:l + 1216]), gt[t:t + 352, l:l + 1216]
    disp = predict_images(create_model("horizon_prior").eval(), [image], Protocol(input_size=28), "cpu")[0]
    pred = 1.0 / np.maximum(disp.astype(np.float64), 1e-8)
    valid = (gt > 1e-5) & (gt < 80)
    box = np.zeros_like(valid)
    box[int(0.3324324 * 352):int(0.91351351 * 352), int(0.0359477 * 1216):int(0.96405229 * 1216)] = True
    valid &= box
    s, sh = np.linalg.lstsq(np.stack([pred[valid], np.ones(valid.sum())], 1), gt[valid], rcond=None)[0]
    aligned = np.clip(pred * s + sh, 1e-5, 80)
    ref = _metrics(aligned[valid], gt[valid])
    for k, v in ref.items():
        assert recs["kitti"]["metrics"][k] == pytest.approx(v, rel=1e-6), k


def _da2_eval_depth(pred, target):
    """Depth-Anything-V2 metric_depth/util/metric.py eval_depth, written out with numpy."""
    thresh = np.maximum(target / pred, pred / target)
    diff, diff_log = pred - target, np.log(pred) - np.log(target)
    return {"da2_d1": np.mean(thresh < 1.25), "da2_d2": np.mean(thresh < 1.25 ** 2), "da2_d3": np.mean(thresh < 1.25 ** 3),
            "da2_abs_rel": np.mean(np.abs(diff) / target), "da2_sq_rel": np.mean(diff ** 2 / target),
            "da2_rmse": np.sqrt(np.mean(diff ** 2)), "da2_rmse_log": np.sqrt(np.mean(diff_log ** 2)),
            "da2_log10": np.mean(np.abs(np.log10(pred) - np.log10(target))),
            "da2_silog": np.sqrt(np.mean(diff_log ** 2) - 0.5 * np.mean(diff_log) ** 2)}


def test_da2_metric_preset_scores_as_depth_anything_v2(tree):
    import torch

    from dabench.data import build_dataset, load_card
    from dabench.eval.loop import evaluate_dataset
    from dabench.eval.scoring import score_sample
    from dabench.eval.suites import load_suite, resolve_protocol

    suite = load_suite("da2-metric")
    proto = resolve_protocol(suite, "kitti", load_card("kitti"))
    assert (proto.range_inclusive, proto.clamp_pred, proto.min_valid_pixels, proto.metric_family, proto.crop) == \
        (True, False, 10, "depth_da2", "none")

    # by hand: gt exactly at max_depth counts (inclusive), a prediction above max_depth is not clamped
    gt = np.array([[80.0, 40.0] * 5], np.float32)
    pred = np.array([[100.0, 40.0] * 5], np.float32)
    status, m, _ = score_sample(pred, {"depth": gt, "valid": gt > 0}, proto, "depth")
    assert status == "ok" and m["da2_abs_rel"] == pytest.approx(0.25 / 2) and "abs_rel" not in m
    assert score_sample(pred[:, :8], {"depth": gt[:, :8], "valid": gt[:, :8] > 0}, proto, "depth")[0] == "skipped_no_valid"

    class Flat(torch.nn.Module):  # a metric model predicting 30.3 m everywhere (no exact delta ties with the 1/256 m ground truth)
        output_space = "depth"

        def predict(self, images):
            return [np.full(im.shape[:2], 30.3, np.float32) for im in images]

    ds = build_dataset("kitti", split="test", data_root=tree, depth_range=(proto.min_depth, proto.max_depth))
    metrics, counts = evaluate_dataset(Flat(), ds, dict(proto.as_dict(), input_size=28))
    g = cv2.imread(str(tree / "kitti/gts" / KITTI_GT), cv2.IMREAD_UNCHANGED).astype(np.float64) / 256.0
    g = g[(g >= 0.001) & (g <= 80)]
    ref = _da2_eval_depth(np.full_like(g, np.float32(30.3), dtype=np.float64), g)
    assert counts["used"] == 1 and sorted(metrics) == sorted(ref)
    for k, v in ref.items():
        assert metrics[k] == pytest.approx(v, rel=1e-6), k


class _Flat:
    """A metric-depth 'model' predicting ``value`` metres everywhere (its own predict, no network)."""

    output_space = "depth"

    def __init__(self, value):
        self.value = value

    def predict(self, images):
        return [np.full(im.shape[:2], self.value, np.float32) for im in images]

    def eval(self):
        return self


def _zoedepth_errors(gt, pred, lo, hi, box):
    """ZoeDepth compute_metrics (zoedepth/utils/misc.py:202-245) with numpy: clamp, range, crop box."""
    pred = np.clip(pred, lo, hi)
    valid = (gt > lo) & (gt < hi)  # on float32 ground truth, as ZoeDepth's numpy compares it
    m = np.zeros_like(valid)
    m[box[0]:box[1], box[2]:box[3]] = True
    g, p = gt[valid & m].astype(np.float64), pred[valid & m]
    thresh = np.maximum(g / p, p / g)
    return {"delta1": np.mean(thresh < 1.25), "delta2": np.mean(thresh < 1.25 ** 2), "abs_rel": np.mean(np.abs(g - p) / g),
            "rmse": np.sqrt(np.mean((g - p) ** 2)), "log10": np.mean(np.abs(np.log10(g) - np.log10(p)))}


@pytest.mark.parametrize("suite,dataset", [("metric-nyu", "nyu"), ("metric-kitti", "kitti")])
def test_metric_presets_match_zoedepth(tree, suite, dataset):
    import torch

    from dabench.data import build_dataset, load_card
    from dabench.eval.loop import evaluate_dataset
    from dabench.eval.suites import load_suite, resolve_protocol

    class Flat(torch.nn.Module, _Flat):
        def __init__(self):
            torch.nn.Module.__init__(self)
            _Flat.__init__(self, 10.0)  # NYU: at max_depth, exactly 1.25x a ground truth of 8.000 m

    proto = resolve_protocol(load_suite(suite), dataset, load_card(dataset))
    ds = build_dataset(dataset, split="test", data_root=tree, depth_range=(proto.min_depth, proto.max_depth))
    metrics, counts = evaluate_dataset(Flat(), ds, proto)
    if dataset == "nyu":
        # decoded as ZoeDepth does (data_mono.py:396-399: float32, then / 1000); arithmetic in float64
        # (ZoeDepth's is float32: at float32-rounding ties the two may differ, dabench keeps float64)
        raw = cv2.imread(str(tree / "nyu/official_splits/test/bathroom/sync_depth_00045.png"), cv2.IMREAD_UNCHANGED)
        gt = raw.astype(np.float32) / np.float32(1000.0)
        box = (45, 471, 41, 601)
        assert (raw == 8000).any()  # the tie case (8.000 m against 10 m) is in the fixture
    else:  # ZoeDepth: gt cut to the KB window first, Garg box of the window
        gt = cv2.imread(str(tree / "kitti/gts" / KITTI_GT), cv2.IMREAD_UNCHANGED)[23:, 13:13 + 1216].astype(np.float32) / 256
        box = (int(0.40810811 * 352), int(0.99189189 * 352), int(0.03594771 * 1216), int(0.96405229 * 1216))
    ref = _zoedepth_errors(gt, np.full(gt.shape, 10.0), proto.min_depth, proto.max_depth, box)
    assert counts["used"] == 1
    for k, v in ref.items():
        assert metrics[k] == pytest.approx(v, rel=1e-9), k



