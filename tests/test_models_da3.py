"""Depth Anything 3: registry, weight layouts, the input processor, and numerical identity with the
official ``DepthAnything3Net`` (package ``depth-anything-3``; those tests skip, naming the install
command, when it is absent)."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

sys.path.insert(0, str(Path(__file__).parent))
from da3_official import (balance_fov, balance_sky, official_full, official_tiny, randomize,  # noqa: E402
                          require_official)

from dabench.errors import CheckpointError  # noqa: E402
from dabench.models import create_model, list_models, model_info  # noqa: E402
from dabench.models.checkpoint import load_state_dict_strict  # noqa: E402
from dabench.models.depth_anything_3 import _cfg  # noqa: E402

SIX = ["da3_vits14", "da3_vitb14", "da3_vitl14", "da3_vitg14", "da3mono_vitl14", "da3metric_vitl14"]
TINY = ["da3_test", "da3g_test", "da3mono_test", "da3metric_test", "da3nested_test"]
# Parameter counts of the official networks built from the package YAML (checked against official_full).
OFFICIAL_PARAMS = {"da3_vits14": 34_299_655}


def close(got: torch.Tensor, ref: torch.Tensor) -> None:
    """Equal within 1e-4 of the reference's largest magnitude (float32 sums in another order)."""
    torch.testing.assert_close(got, ref, atol=1e-4 * max(1.0, float(ref.abs().max())), rtol=0)


def _pair(arch: str, x: torch.Tensor, seed: int = 0):
    require_official()
    torch.manual_seed(seed)
    off = official_tiny(arch).eval()
    randomize(off, seed)
    balance_sky(off, x)
    ours = create_model(arch).eval()
    load_state_dict_strict(ours, off.state_dict(), "official", arch)
    return off, ours


def test_registered():
    names = set(list_models(include_test=False))
    assert set(SIX) | {"da3nested_vitg14_vitl14"} <= names
    assert set(TINY) <= set(list_models()) - names
    info = model_info("da3_vits14")
    assert info["params"] == OFFICIAL_PARAMS["da3_vits14"] and info["version"] == 3
    assert info["taps"] == [5, 7, 9, 11] and info["output_space"] == "depth" and not info["is_metric"]
    assert model_info("da3nested_vitg14_vitl14")["is_metric"]
    assert "300" in model_info("da3metric_vitl14")["output"] and model_info("da3metric_vitl14")["is_metric"]


@pytest.mark.parametrize("name", SIX + ["da3nested_vitg14_vitl14"])
def test_full_variants_shape_on_meta(name):
    with torch.device("meta"):
        y = create_model(name).forward_outputs(torch.empty(1, 3, 28, 42))
    assert y["depth"].shape == (1, 28, 42)


@pytest.mark.parametrize("arch", TINY)
def test_tiny_equals_official(arch):
    """Seeded random weights, non-square input (3×5 patches): depth, confidence, sky, intrinsics equal."""
    x = torch.randn(1, 3, 42, 70, generator=torch.Generator().manual_seed(1))
    off, ours = _pair(arch, x)
    with torch.no_grad():
        ref, got = off(x[:, None]), ours.forward_outputs(x)
    assert float(got["depth"].std()) > 1e-3  # not a constant map
    close(got["depth"], ref["depth"][:, 0])
    if "depth_conf" in ref:
        close(got["confidence"], ref["depth_conf"][:, 0])
    if "sky" in ref:
        sky = got["sky"] < 0.3
        assert 0.1 < float(sky.float().mean()) < 0.9  # the sky branch is exercised
        close(got["sky"], ref["sky"][:, 0])
    if "fov" in got:
        from dabench.models.da3_layers import intrinsics_from_fov

        close(intrinsics_from_fov(got["fov"][:, None], 42, 70), ref["intrinsics"])


def test_multi_view_tokens_equal_official():
    """(B, N views) input: global attention across views gives the official per-view depth."""
    x = torch.randn(1, 2, 3, 28, 42, generator=torch.Generator().manual_seed(2))
    off, ours = _pair("da3_test", x[:, 0])
    with torch.no_grad():
        close(ours.forward_views(x)["depth"], off(x)["depth"])


def test_bare_and_hub_layouts_load(tmp_path):
    from safetensors.torch import save_file

    x = torch.randn(1, 3, 28, 56)
    off, ours = _pair("da3g_test", x)
    sd = off.state_dict()
    torch.save(sd, tmp_path / "bare.pth")
    save_file({f"model.{k}": v.clone().contiguous() for k, v in sd.items()}, str(tmp_path / "model.safetensors"))
    with torch.no_grad():
        want = ours(x)
        for path in (tmp_path / "bare.pth", tmp_path / "model.safetensors", tmp_path):
            torch.testing.assert_close(create_model("da3g_test", checkpoint=path).eval()(x), want, atol=0, rtol=0)


def test_wrong_files_are_clear_errors(tmp_path):
    sd = create_model("da3_test").state_dict()
    torch.save({k: v for k, v in sd.items() if not k.startswith("cam_enc.")}, tmp_path / "partial.pth")
    with pytest.raises(CheckpointError, match=r"partial\.pth.*missing keys: cam_enc"):
        create_model("da3_test", checkpoint=tmp_path / "partial.pth")
    torch.save(create_model("da3mono_test").state_dict(), tmp_path / "mono.pth")
    with pytest.raises(CheckpointError, match="mono.pth"):
        create_model("da3_test", checkpoint=tmp_path / "mono.pth")
    torch.save(create_model("da2_test").state_dict(), tmp_path / "v2.pth")
    with pytest.raises(CheckpointError, match="v2.pth does not match da3_test"):
        create_model("da3_test", checkpoint=tmp_path / "v2.pth")


@pytest.mark.parametrize("hw", [(450, 600), (333, 517), (1000, 333), (150, 200), (97, 1200)])
def test_data_config_equals_input_processor(hw):
    require_official()
    pytest.importorskip("imageio", reason="the official InputProcessor imports imageio")
    from depth_anything_3.utils.io.input_processor import InputProcessor

    image = np.random.default_rng(0).integers(0, 256, (*hw, 3), dtype=np.uint8)
    ref, _, _ = InputProcessor()([image], None, None, 504, "upper_bound_resize", num_workers=1)
    got = _cfg().preprocess_numpy(image)
    assert _cfg().network_size(*hw) == tuple(ref.shape[-2:])
    np.testing.assert_array_equal(got, ref[0].numpy())


def test_predict_equals_official_pipeline(tmp_path):
    """``dabench predict`` vs the official InputProcessor → DepthAnything3Net → OutputProcessor (fp32; the
    official API adds fp16/bf16 autocast), on a non-square image; the official map is at the processed
    size, so it is brought to the image size with the documented bilinear resize."""
    import cv2
    import torch.nn.functional as F

    require_official()
    pytest.importorskip("imageio", reason="the official InputProcessor imports imageio")
    from depth_anything_3.utils.io.input_processor import InputProcessor
    from depth_anything_3.utils.io.output_processor import OutputProcessor

    image = np.random.default_rng(3).integers(0, 256, (150, 200, 3), dtype=np.uint8)
    image = cv2.GaussianBlur(image, (9, 9), 3)
    cv2.imwrite(str(tmp_path / "photo.png"), cv2.cvtColor(image, cv2.COLOR_RGB2BGR))
    off, _ = _pair("da3_test", torch.zeros(1, 3, 28, 28))
    torch.save(off.state_dict(), tmp_path / "w.pth")
    imgs, _, _ = InputProcessor()([image], None, None, 504, "upper_bound_resize", num_workers=1)
    with torch.no_grad():
        pred = OutputProcessor()(off(imgs[None].float()))
    ref = F.interpolate(torch.from_numpy(pred.depth)[:, None], (150, 200), mode="bilinear", align_corners=False)[0, 0]
    r = subprocess.run([sys.executable, "-m", "dabench", "predict", str(tmp_path / "photo.png"), "--model", "da3_test",
                        "-c", str(tmp_path / "w.pth"), "--out", str(tmp_path / "out"), "--device", "cpu"],
                       capture_output=True, text=True, env={**__import__("os").environ, "DABENCH_HOME": str(tmp_path)})
    assert r.returncode == 0, r.stderr
    got = np.load(tmp_path / "out" / "photo.npy")
    assert got.shape == (150, 200)
    close(torch.from_numpy(got), ref)


def _official_prediction(off, image, K=None, process_res: int = 504):
    """The official pipeline (InputProcessor → network → OutputProcessor, fp32) on one image; with ``K``
    (pixels of the image) also the K the processor resizes to the network input."""
    from depth_anything_3.utils.io.input_processor import InputProcessor
    from depth_anything_3.utils.io.output_processor import OutputProcessor

    imgs, _, ks = InputProcessor()([image], None, None if K is None else K[None], process_res, "upper_bound_resize",
                                   num_workers=1)
    with torch.no_grad():
        raw = off(imgs[None].float())
    return raw, OutputProcessor()(raw), ks


def _blurred(h: int, w: int, seed: int) -> np.ndarray:
    import cv2

    return cv2.GaussianBlur(np.random.default_rng(seed).integers(0, 256, (h, w, 3), dtype=np.uint8), (9, 9), 3)


@pytest.mark.parametrize("arch", ["da3_test", "da3nested_test"])
def test_predict_geometry_equals_official(arch):
    """K from the camera decoder equals the official API's ``prediction.intrinsics`` (at the processed
    size) brought to the image size by the official InputProcessor's own K resize, on a non-square
    image; the points are the depth unprojected through it; the declaration matches the kind."""
    require_official()
    pytest.importorskip("imageio", reason="the official InputProcessor imports imageio")
    from depth_anything_3.utils.io.input_processor import InputProcessor

    from dabench.data.synthetic import point_map
    from dabench.models.outputs import declared_outputs

    # processing resolution 280: network input 224×280, so the sides scale differently (203/280, 161/224) and
    # the official quantiles see fewer than 100 000 pixels (above that they subsample at random)
    image, res = _blurred(161, 203, 3), 280
    off, ours = _pair(arch, torch.zeros(1, 3, 28, 28))
    imgs, _, _ = InputProcessor()([image], None, None, res, "upper_bound_resize", num_workers=1)
    if arch == "da3nested_test":  # the sky heads balanced on the processed image itself (both branches used)
        balance_sky(off, imgs.float())
    balance_fov(off, imgs.float())  # fields of view of ~1 rad, not ReLU's 0 (a clamped 1e8-px focal)
    load_state_dict_strict(ours, off.state_dict(), "official", arch)
    _, pred, _ = _official_prediction(off, image, process_res=res)
    h, w = pred.depth.shape[-2:]
    assert (h, w) == (224, 280)
    want = InputProcessor()._resize_ixt(pred.intrinsics[0].astype(np.float64), w, h, 203, 161)
    assert 50 < want[0, 0] < 1000 and 50 < want[1, 1] < 1000
    (got,) = ours.predict_geometry([image], input_size=res)
    assert got["intrinsics"].shape == (3, 3)
    np.testing.assert_allclose(got["intrinsics"], want, rtol=1e-4, atol=1e-6)  # each entry within 1e-4
    assert got["intrinsics"][0, 2] == 101.5 and got["intrinsics"][1, 2] == 80.5  # the official (W/2, H/2)
    ref = F_interp(pred.depth, (161, 203))
    close(torch.from_numpy(got["depth"]), ref)
    np.testing.assert_allclose(got["points"], point_map(got["depth"], got["intrinsics"].astype(np.float64)),
                               rtol=1e-5, atol=1e-6)
    want_decl = ({"depth": "metric", "points": "metric", "intrinsics": "metric"} if arch == "da3nested_test" else
                 {"depth": "scale_invariant", "points": "scale_invariant", "intrinsics": "metric"})
    assert declared_outputs(ours) == want_decl


def F_interp(depth: np.ndarray, size) -> torch.Tensor:
    """The official map (N×h×w at the processed size) brought to the image size (dabench's bilinear rule)."""
    import torch.nn.functional as F

    return F.interpolate(torch.from_numpy(depth)[:, None], size, mode="bilinear", align_corners=False)[0, 0]


def test_metric_model_in_metres_with_the_sample_intrinsics():
    """da3metric: the depth loop with the sample's K equals the official ``apply_metric_scaling`` of the
    network output with K as the official InputProcessor resizes it (the nested model's recipe), on a
    non-square image; without K it is refused where metres are scored and kept raw where a per-image
    scale is fitted; the geometry path gives the same metres."""
    require_official()
    pytest.importorskip("imageio", reason="the official InputProcessor imports imageio")
    from depth_anything_3.utils.alignment import apply_metric_scaling

    from dabench.errors import DataError
    from dabench.eval.loop import evaluate_dataset, predict_images
    from dabench.eval.suites import Protocol
    from dabench.models.outputs import declared_outputs, predict_outputs, with_intrinsics

    image, res = _blurred(161, 203, 4), 280  # network input 224×280: sides scaled by 280/203 and 224/161
    K = np.array([[180.0, 0, 97.0], [0, 171.0, 77.5], [0, 0, 1]], dtype=np.float32)
    off, ours = _pair("da3metric_test", torch.zeros(1, 3, 28, 28))
    raw, _, k_net = _official_prediction(off, image, K, process_res=res)
    assert k_net[0, 0, 0] == pytest.approx(180.0 * 280 / 203) and k_net[0, 1, 1] == pytest.approx(171.0 * 224 / 161)
    metres = apply_metric_scaling(raw["depth"], k_net[None])  # 1×1×h×w
    ref = F_interp(metres[0].numpy(), (161, 203)).numpy()
    assert ours.is_metric and ours.needs_intrinsics and declared_outputs(ours) == {"depth": "metric"}

    proto = Protocol(alignment="none", min_depth=1e-3, max_depth=1e6, crop="none", flip_tta=False, input_size=res)
    (p,) = predict_images(ours, [image], proto, "cpu")
    got = with_intrinsics(ours, p, {"intrinsics": K, "name": "x"}, proto)
    close(torch.from_numpy(got), torch.from_numpy(ref))
    # scored in metres against the official metres: no error at all (the loop calls the same hook)
    sample = {"image": image, "depth": ref.astype(np.float32), "valid": np.ones(ref.shape, bool), "intrinsics": K,
              "name": "x"}
    metrics, counts = evaluate_dataset(ours, [sample], proto, batch_size=1)
    assert counts["used"] == 1 and metrics["abs_rel"] < 1e-4
    with pytest.raises(DataError, match=r"x: da3metric_test gives metric depth only with the camera's focal"):
        evaluate_dataset(ours, [{**sample, "intrinsics": None}], proto, batch_size=1)
    median = Protocol(alignment="median", min_depth=1e-3, max_depth=1e6, crop="none", flip_tta=False)
    assert with_intrinsics(ours, p, {"name": "x"}, median) is p  # a fitted scale cancels any global scale
    (geo,) = predict_outputs(ours, [image], None, intrinsics=[K], names=["x"], input_size=res)
    close(torch.from_numpy(geo["depth"]), torch.from_numpy(ref))
    with pytest.raises(DataError, match="x: da3metric_test"):
        predict_outputs(ours, [image], None, intrinsics=[None], names=["x"])


def test_moge_suite_records_da3_levels(tmp_path, monkeypatch):
    """``dabench run --suite moge --model da3_test --random-init --limit 2``: the record holds the depth and
    point levels up to scale and the field of view, and no metric level."""
    from dabench.eval.runner import run_suite
    from dabench.tasks import EvalRequest

    monkeypatch.setenv("DABENCH_HOME", str(tmp_path))
    monkeypatch.delenv("DABENCH_DATA", raising=False)
    request = EvalRequest(random_init=True, datasets=["synthetic-indoor"], limit=2, results_dir=tmp_path / "r",
                          show_progress=False, bootstrap=0)
    (rec,) = run_suite("moge", request, models=["da3_test"])
    assert rec["status"] == "ok" and rec["samples"]["used"] == 2
    assert rec["geometry_outputs"] == {"depth": "scale_invariant", "points": "scale_invariant", "intrinsics": "metric"}
    for level in ("depth_scale_invariant", "depth_affine_invariant", "points_scale_invariant",
                  "points_affine_invariant"):
        assert set(rec["levels"][level]) == {"rel", "delta1"}
    assert {"fov_x_mae", "fov_x_deviation", "local_points_rel"} <= set(rec["metrics"])
    assert not any(k.startswith(("depth_metric", "points_metric")) for k in rec["metrics"])
    stored = json.loads(rec.path.read_text())
    assert stored["levels"] == rec["levels"] and stored["images_per_metric"]["fov_x_mae"] == 2


def test_metric_suite_scores_da3metric_only_with_intrinsics(tmp_path, monkeypatch):
    """A metric suite scores da3metric in metres on a set whose card gives K (the synthetic world's exact
    K) and skips, saying why, a set whose card gives none."""
    import dabench.data
    from dabench.eval.runner import run_suite
    from dabench.tasks import EvalRequest

    monkeypatch.setenv("DABENCH_HOME", str(tmp_path))
    monkeypatch.delenv("DABENCH_DATA", raising=False)

    def run(results: str) -> dict:
        request = EvalRequest(random_init=True, limit=2, show_progress=False, bootstrap=0, allow_fallback=True,
                              results_dir=tmp_path / results)  # no NYUv2 on disk: the synthetic world stands in
        (rec,) = [r for r in run_suite("metric-nyu", request, models=["da3metric_test"]) if r["dataset"] != "nyu"]
        return rec

    rec = run("a")
    assert rec["dataset"] == "synthetic-indoor" and rec["protocol"]["alignment"] == "none"
    assert rec["status"] == "ok" and rec["samples"]["used"] == 2 and rec["is_metric"]
    load_card = dabench.data.load_card
    monkeypatch.setattr(dabench.data, "load_card", lambda name, *a, **k: {
        key: v for key, v in load_card(name, *a, **k).items() if key != "intrinsics_source"})
    rec = run("b")
    assert rec["status"] == "skipped" and "focal length" in rec["skip_reason"]
    assert "synthetic-indoor card gives no intrinsics" in rec["skip_reason"]


def test_ls_models_states_output(tmp_path):
    r = subprocess.run([sys.executable, "-m", "dabench", "ls", "models", "--all", "--json"], capture_output=True,
                       text=True, env={**__import__("os").environ, "DABENCH_HOME": str(tmp_path)})
    infos = {i["name"]: i for i in json.loads(r.stdout)}
    assert {"da3_vits14", "da3metric_vitl14", "da3_test"} <= set(infos)
    assert "metres" in infos["da3nested_vitg14_vitl14"]["description"]
    assert infos["da3metric_vitl14"]["is_metric"] and "intrinsics" in infos["da3metric_vitl14"]["description"]


@pytest.mark.slow
@pytest.mark.parametrize("arch", SIX)
def test_full_size_equals_official_yaml(arch):
    """Full-size networks from the package YAML, seeded random weights, a non-square 70×98 input."""
    require_official()
    torch.manual_seed(0)
    off = official_full(arch).eval()
    randomize(off)
    x = torch.randn(1, 3, 70, 98, generator=torch.Generator().manual_seed(1))
    balance_sky(off, x)
    ours = create_model(arch).eval()
    load_state_dict_strict(ours, off.state_dict(), "official", arch)
    with torch.no_grad():
        ref, got = off(x[:, None]), ours.forward_outputs(x)
    close(got["depth"], ref["depth"][:, 0])
