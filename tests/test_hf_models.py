"""hf: models equal transformers' depth-estimation pipeline (tiny random snapshots, offline)."""
from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("transformers")

import hf_tiny  # noqa: E402  (tests/ is on sys.path under pytest)

from dabench.errors import ConfigError, MissingFileError  # noqa: E402
from dabench.models.inference import predict_batch  # noqa: E402
from dabench.models.resolve import build_model, resolve_models  # noqa: E402

EXPECTED = {"dpt": ("disparity", False), "depth_anything": ("disparity", False),
            "depth_anything_metric": ("depth", True), "zoedepth": ("depth", True),
            "depth_pro": ("depth", True), "glpn": ("depth", True)}


@pytest.fixture(scope="module")
def snapshots(tmp_path_factory):
    root = tmp_path_factory.mktemp("hf")
    return {k: hf_tiny.save(k, root / k) for k in hf_tiny.KINDS}


@pytest.fixture(scope="module")
def image():
    return np.random.default_rng(0).integers(0, 256, (375, 500, 3), dtype=np.uint8)


@pytest.mark.parametrize("kind", hf_tiny.KINDS)
def test_hf_prediction_equals_the_transformers_pipeline(kind, snapshots, image, monkeypatch):
    import PIL.Image
    from transformers import pipeline

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    run = resolve_models([f"hf:{snapshots[kind]}"])[0]
    model = build_model(run)
    assert (model.output_space, model.is_metric) == EXPECTED[kind]
    assert model.revision.startswith("sha256:") and model.processor_config["image_processor_type"]
    ours = predict_batch(model, [image])[0]
    ref = pipeline("depth-estimation", model=str(snapshots[kind]))(PIL.Image.fromarray(image))["predicted_depth"]
    ref = ref.float().numpy()
    assert ours.shape == ref.shape == image.shape[:2]
    scale = np.abs(ref).max()
    assert np.ptp(ref) > 1e-2 * scale > 0  # not a constant map: the check below can fail
    assert np.abs(ours - ref).max() <= 1e-4 * scale


def test_hf_errors_name_the_layout(tmp_path, snapshots, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(MissingFileError, match="config.json"):
        build_model(resolve_models([f"hf:{tmp_path}"])[0])
    with pytest.raises(MissingFileError, match="folder not found"):
        build_model(resolve_models([f"hf:{tmp_path / 'absent'}"])[0])
    with pytest.raises(MissingFileError, match="HF_HUB_OFFLINE"):
        build_model(resolve_models(["hf:nobody/no-such-depth-model"])[0])
    with pytest.raises(ConfigError, match="unknown --model-option"):
        build_model(resolve_models([f"hf:{snapshots['dpt']}"], options={"ensemble_size": 3})[0])


def test_one_run_one_table_dabench_dpt_and_zoedepth(snapshots, tmp_path, monkeypatch):
    """One `dabench run` on the synthetic fallback with a dabench network, an hf: DPT
    folder and an hf: ZoeDepth folder writes records for all three and prints one table with three rows."""
    import json

    import yaml
    from typer.testing import CliRunner

    from dabench.cli import app
    from dabench.eval.suites import load_suite

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("COLUMNS", "250")  # rich: no wrapping of the table in the captured output
    data = yaml.safe_load(open(load_suite("zero-shot").path).read())
    data["defaults"]["input_size"] = 56  # the same suite, CPU-sized
    suite = tmp_path / "zero-shot.yaml"
    suite.write_text(yaml.safe_dump(data))
    out = tmp_path / "results"
    res = CliRunner().invoke(app, ["run", "--suite", str(suite), "--model", "da2_test", "--random-init",
                                   "--model", f"hf:{snapshots['dpt']},hf:{snapshots['zoedepth']}",
                                   "--datasets", "nyu,kitti", "--limit", "1", "--device", "cpu", "--no-cache",
                                   "--results", str(out)])
    assert res.exit_code == 0, res.output
    labels = {"da2_test": "dabench", "hf:dpt": "hf", "hf:zoedepth": "hf"}
    for label, source in labels.items():
        folder = out / "zero-shot" / label.replace(":", "_")
        recs = {p.name.split(".")[0]: json.loads(p.read_text()) for p in folder.glob("*.json")}  # latest view
        assert recs["nyu"]["status"] == "skipped" and recs["kitti"]["status"] == "skipped"
        for ds in ("synthetic-indoor", "synthetic-outdoor"):
            r = recs[ds]
            assert r["status"] == "ok" and r["model_source"] == source and r["metrics"]["abs_rel"] is not None
            if source == "hf":
                assert r["model_revision"].startswith("sha256:") and r["data_config"]["image_processor_type"]
            else:
                assert r["data_config"]["multiple_of"] == 14 and r["protocol"]["input_size"] == 56
    assert recs["synthetic-indoor"]["output_space"] == "depth" and recs["synthetic-indoor"]["is_metric"] is True
    assert res.output.count("suite zero-shot") == 1  # one table...
    rows = [line for line in res.output.splitlines() if line.startswith("│")]
    assert [sum(label in line for line in rows) for label in labels] == [1, 1, 1]  # ...with one row per model


def test_predict_cli_with_an_hf_model(snapshots, image, tmp_path, monkeypatch):
    import cv2
    from typer.testing import CliRunner

    from dabench.cli import app

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    small = np.ascontiguousarray(image[:60, :80])
    cv2.imwrite(str(tmp_path / "a.png"), cv2.cvtColor(small, cv2.COLOR_RGB2BGR))
    res = CliRunner().invoke(app, ["predict", str(tmp_path / "a.png"), "--model", f"hf:{snapshots['glpn']}",
                                   "--out", str(tmp_path / "o"), "--device", "cpu"])
    assert res.exit_code == 0, res.output
    expected = predict_batch(build_model(resolve_models([f"hf:{snapshots['glpn']}"])[0]), [small])[0]
    np.testing.assert_allclose(np.load(tmp_path / "o" / "a.npy"), expected, rtol=1e-6)
    res = CliRunner().invoke(app, ["predict", str(tmp_path / "a.png"), "--model", f"hf:{snapshots['glpn']}",
                                   "--checkpoint", str(tmp_path / "a.png"), "--out", str(tmp_path / "o2")])
    assert res.exit_code == 2 and "dabench network" in res.output


def _hostile_copy(src, dst, config=None, processor=None, weights=None):
    import json
    import shutil

    shutil.copytree(src, dst)
    if config is not None:
        (dst / "config.json").write_text(config if isinstance(config, str) else
                                         json.dumps({**json.loads((src / "config.json").read_text()), **config}))
    if processor is not None:
        p = json.loads((src / "preprocessor_config.json").read_text())
        (dst / "preprocessor_config.json").write_text(json.dumps({**p, **processor}))
    if weights is not None:
        (dst / "model.safetensors").write_bytes(weights)
    return dst


@pytest.mark.parametrize("case,phrase", [
    ({"config": "[" * 100000 + "]" * 100000}, "nested too deeply"),
    ({"config": "null"}, "expected a JSON object"),
    ({"config": {"hidden_size": 10 ** 9, "intermediate_size": 10 ** 9}}, "weights hold"),
    ({"config": {"num_hidden_layers": 10 ** 7}}, "num_hidden_layers"),
    ({"processor": {"size": {"height": 100000, "width": 100000}}}, "pixel cap"),
    ({"weights": b"\xff" * 8 + b"garbage"}, "not a readable safetensors"),
])
def test_hostile_hf_snapshots_are_one_clear_error_before_building(case, phrase, snapshots, tmp_path, monkeypatch):
    """A stranger's snapshot folder: deep/non-object JSON, sizes the weights do not back (terabytes to
    initialise), 10**7 layers, a 10-gigapixel processor size, a damaged safetensors header."""
    from dabench.errors import DataError

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    folder = _hostile_copy(snapshots["dpt"], tmp_path / "hostile", **case)
    with pytest.raises(DataError, match=phrase) as err:
        build_model(resolve_models([f"hf:{folder}"])[0])
    assert str(folder) in str(err.value)


def test_hf_snapshot_with_an_empty_weights_file_is_refused_before_allocating(snapshots, tmp_path, monkeypatch):
    from safetensors.torch import save_file
    import torch

    from dabench.errors import DataError

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    folder = _hostile_copy(snapshots["dpt"], tmp_path / "empty", config={"hidden_size": 10 ** 9})
    save_file({"x": torch.zeros(1)}, str(folder / "model.safetensors"))
    with pytest.raises(DataError, match="weights hold 1;"):
        build_model(resolve_models([f"hf:{folder}"])[0])


def test_depth_pro_declares_intrinsics_from_its_focal_length(snapshots, image, monkeypatch):
    """hf: Depth Pro gives K: the focal length transformers' post-processing derives from the predicted field
    of view, f = W / 2 / tan(fov / 2), at the image's size; other hf models declare depth / disparity only."""
    import torch
    import transformers as T

    from dabench.models.hf import load_hf_model
    from dabench.models.outputs import declared_outputs, moge_prediction

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    m = load_hf_model(str(snapshots["depth_pro"]))
    assert declared_outputs(m) == {"depth": "metric", "intrinsics": "metric"}
    (out,) = m.predict_geometry([image])
    ref = T.DepthProForDepthEstimation.from_pretrained(snapshots["depth_pro"]).eval()
    proc = T.DepthProImageProcessor.from_pretrained(snapshots["depth_pro"])
    with torch.inference_mode():
        fov = float(ref(**proc(images=image, return_tensors="pt")).field_of_view[0])
    h, w = image.shape[:2]
    f = 0.5 * w / np.tan(0.5 * np.deg2rad(fov))
    assert out["intrinsics"][0, 0] == pytest.approx(f, rel=1e-5) and out["intrinsics"][1, 1] == out["intrinsics"][0, 0]
    with torch.inference_mode():
        assert np.allclose(out["depth"], m.predict([image])[0])
    pred = moge_prediction(out, declared_outputs(m), (h, w))
    assert set(pred) == {"depth_metric", "points_metric", "intrinsics"}
    assert 2 * np.degrees(np.arctan(0.5 / pred["intrinsics"][0, 0])) == pytest.approx(fov, rel=1e-4)
    assert declared_outputs(load_hf_model(str(snapshots["dpt"]))) == {"disparity": "affine_invariant"}
