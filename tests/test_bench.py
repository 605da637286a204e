"""`dabench bench`: runs end to end at tiny sizes and writes the documented JSON; the compared outputs
agree. No timing is asserted (the numbers are machine- and load-dependent)."""
from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from dabench.cli import app

SECTIONS = {  # section -> the two raw figures its ratio is made of
    "metric_engine": ("baseline_seconds", "dabench_seconds"),
    "inference": ("per_image_seconds", "batched_seconds"),
    "student_step": ("student_step_seconds", "teacher_step_seconds"),
    "synthetic_data": ("generated_images_per_second", "trained_images_per_second"),
    "memory": ("peak_rss_10n_mib", "peak_rss_n_mib"),
}


def test_bench_quick_cli_writes_json(tmp_path):
    out = tmp_path / "bench.json"
    res = CliRunner().invoke(app, ["bench", "--quick", "--threads", "1", "--out", str(out)])
    assert res.exit_code == 0, res.output
    data = json.loads(out.read_text())
    for name, (a, b) in SECTIONS.items():
        e = data[name]
        assert {"ratio", "goal", "goal_op", "met", a, b} <= set(e), name
        assert e[a] > 0 and e[b] > 0, name
        assert math.isclose(e["ratio"], e[a] / e[b], rel_tol=1e-9) or name in ("inference", "student_step"), name
        assert isinstance(e["met"], bool)
    assert data["metric_engine"]["values_agree"] is True
    assert data["metric_engine"]["images_scored"] == data["metric_engine"]["maps"]
    assert data["inference"]["outputs_equal"] is True and data["inference"]["output_max"] > 0
    assert data["memory"]["samples_scored"] == [data["memory"]["n"], data["memory"]["n"] * data["memory"]["factor"]]
    gpu = data["gpu_vitl_bf16"]
    if not torch.cuda.is_available():
        assert gpu["status"] == "not measured: no CUDA device"
    assert "git_commit" in data and data["environment"]["torch_threads"] == 1
    assert "metric engine" in res.output and "inference" in res.output


def test_bench_rejects_unknown_section():
    res = CliRunner().invoke(app, ["bench", "--quick", "--only", "metric_engine,warp_drive"])
    assert res.exit_code == 2
    assert "warp_drive" in res.output


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the message shown without CUDA")
def test_bench_cuda_device_without_cuda_is_a_clear_error():
    res = CliRunner().invoke(app, ["bench", "--quick", "--device", "cuda"])
    assert res.exit_code == 2 and "no CUDA device" in res.output


def _maps(b=3, h=24, w=32, seed=0):
    rng = np.random.default_rng(seed)
    gt = rng.uniform(0.5, 12.0, (b, h, w)).astype(np.float32)
    gt[:, :2] = 0.0  # holes
    pred = (gt.clip(0.5) * np.exp(rng.normal(0, 0.2, gt.shape))).astype(np.float32)
    return gt, pred


def test_zoedepth_baseline_matches_dabench_metrics():
    from dabench.bench.metric_engine import ZOE_KEYS, zoedepth_compute_metrics
    from dabench.metrics import depth_metrics

    gt, pred = _maps(1, 48, 64)
    box = (4, 47, 4, 60)  # a small Eigen-like window (the NYU crop itself needs 480x640 frames)
    theirs = zoedepth_compute_metrics(gt[0], pred[0], eigen_box=box)
    crop = np.zeros((48, 64), bool)
    crop[4:47, 4:60] = True
    valid = (gt[0] > 1e-3) & (gt[0] < 10) & crop
    ours = depth_metrics(np.clip(pred[0], 1e-3, 10), gt[0], valid)
    for k, zk in ZOE_KEYS.items():
        assert ours[k] == pytest.approx(float(theirs[zk]), rel=1e-5), k


@pytest.mark.parametrize("shared_mask", [True, False])
def test_update_batch_equals_per_image_updates(shared_mask):
    from dabench.metrics import DepthMetricState

    gt, pred = _maps()
    rng = np.random.default_rng(1)
    valid = rng.random(gt.shape[1:] if shared_mask else gt.shape) > 0.3
    ref, fast = DepthMetricState(), DepthMetricState()
    for i in range(gt.shape[0]):
        v = (valid if shared_mask else valid[i]) & (gt[i] > 1e-3) & (gt[i] < 10)
        ref.update(pred[i], gt[i], v)
    per_image = fast.update_batch(torch.from_numpy(pred), torch.from_numpy(gt), torch.from_numpy(valid),
                                  min_depth=1e-3, max_depth=10.0)
    assert len(per_image) == gt.shape[0]
    a, b = ref.compute(), fast.compute()
    for k in a:
        assert b[k] == pytest.approx(a[k], rel=1e-5, abs=1e-9), k
    assert fast.n_images == ref.n_images


def test_update_batch_counts_empty_maps_and_rejects_bad_predictions():
    from dabench.errors import DataError
    from dabench.metrics import DepthMetricState

    gt, pred = _maps(2)
    gt[1] = 0.0  # no valid pixel
    st = DepthMetricState()
    out = st.update_batch(pred, gt)
    assert out[1] is None and st.skipped_no_valid == 1 and st.n_images == 1
    pred[0, 5, 5] = -1.0
    with pytest.raises(DataError, match="valid pixels"):
        DepthMetricState().update_batch(pred, gt, names=["a", "b"])


def test_bf16_peak_lookup():
    from dabench.bench.gpu import bf16_peak_tflops

    assert bf16_peak_tflops("NVIDIA H100 80GB HBM3") == pytest.approx(989.4)
    assert bf16_peak_tflops("NVIDIA H100 PCIe") == pytest.approx(756.5)
    assert bf16_peak_tflops("Some Future GPU") is None


def test_render_cache_is_bit_identical_and_used_through_the_env(tmp_path, monkeypatch):
    from dabench.data.synthetic import CACHE_ENV, RenderCache, SyntheticDataset, render_batch

    seeds = [3, 11]
    plain = render_batch("outdoor", seeds, (24, 32), cache_dir=False)
    first = render_batch("outdoor", seeds, (24, 32), cache_dir=tmp_path)  # renders and stores
    cache = RenderCache(tmp_path)
    for s in seeds:
        assert cache.path("outdoor", s, (24, 32), False).is_file()
    again = render_batch("outdoor", seeds, (24, 32), cache_dir=tmp_path)  # read back
    for k in plain:
        assert np.array_equal(plain[k], first[k]) and np.array_equal(plain[k], again[k]), k
        assert plain[k].dtype == again[k].dtype, k
    # a damaged entry is rendered again, not trusted
    cache.path("outdoor", 3, (24, 32), False).write_bytes(b"not a zip")
    healed = render_batch("outdoor", seeds, (24, 32), cache_dir=tmp_path)
    assert np.array_equal(healed["image"], plain["image"])
    # the dataset path (what training reads) picks the cache up from the environment
    monkeypatch.setenv(CACHE_ENV, str(tmp_path / "env"))
    ds = SyntheticDataset("indoor", 2, (24, 32), split="train")
    a = ds[1]
    assert RenderCache(tmp_path / "env").path("indoor", ds.scene_seed(1), (24, 32), False).is_file()
    b = ds[1]
    monkeypatch.delenv(CACHE_ENV)
    c = SyntheticDataset("indoor", 2, (24, 32), split="train")[1]
    for k in ("image", "depth", "valid", "labels", "sky", "intrinsics"):
        assert np.array_equal(a[k], b[k]) and np.array_equal(a[k], c[k]), k


def test_official_attention_switches_only_inside_the_block():
    from dabench.bench.inference import make_images, nondegenerate_head, official_attention, official_infer_image
    from dabench.models import create_model
    from dabench.models.inference import predict_batch
    from timm.models.vision_transformer import Attention

    torch.manual_seed(0)
    model = create_model("da2_test").eval()
    nondegenerate_head(model)
    attn = [m for m in model.modules() if isinstance(m, Attention)]
    assert attn and all(m.fused_attn for m in attn)
    ims = make_images(2, (40, 56))
    with official_attention(model) as n:
        assert n == len(attn) and not any(m.fused_attn for m in attn)
        ref = [official_infer_image(model, np.ascontiguousarray(im[..., ::-1]), 42, "cpu") for im in ims]
    assert all(m.fused_attn for m in attn)
    fast = predict_batch(model, ims, 42, "cpu", batch_size=2)
    scale = max(float(np.abs(r).max()) for r in ref)
    assert scale > 0
    assert max(float(np.abs(r - f).max()) for r, f in zip(ref, fast)) < 1e-4 * scale
