"""The model contract (dabench.models.contract), register_model, entry-point plug-ins and the one resolver."""
from __future__ import annotations

import json
import sys
import textwrap

import numpy as np
import pytest
import torch
from torch import nn
from typer.testing import CliRunner

from dabench.errors import ConfigError, DabenchError
from dabench.models import MODELS, DataConfig, create_model, list_models, model_info, refresh_plugins, register_model
from dabench.models.contract import data_config_of
from dabench.models.inference import predict_batch


@pytest.fixture
def registry_snapshot():
    """Names registered by a test are removed afterwards (the registry is process-wide)."""
    before = set(MODELS.names())
    yield
    for name in set(MODELS.names()) - before:
        MODELS.unregister(name)


class MeanColour(nn.Module):
    """Disparity = the mean of the normalised input's first channel: exposes the preprocessing exactly."""

    def __init__(self):
        super().__init__()
        self.seen = []
        self.w = nn.Parameter(torch.ones(1))

    def forward(self, x):
        self.seen.append(x.detach().clone())
        return x[:, 0] * self.w + 10.0


HALF = DataConfig(mean=(0.5, 0.5, 0.5), std=(0.25, 0.25, 0.25), input_size=16, resize="fixed", multiple_of=1,
                  interpolation="bilinear", output_interpolation="nearest")


def test_resize_rules_by_hand():
    cfg = DataConfig(mean=(0, 0, 0), std=(1, 1, 1), input_size=384, multiple_of=32, resize="upper_bound")
    # 375x500 -> scale min(384/375, 384/500) = 0.768 -> 288 x 384 (both multiples of 32)
    assert cfg.network_size(375, 500) == (288, 384)
    assert cfg.replace(resize="fixed").network_size(375, 500) == (384, 384)
    # lower bound: scale max(...) = 1.024 -> 384 x 512
    assert cfg.replace(resize="lower_bound").network_size(375, 500) == (384, 512)
    assert cfg.replace(resize="none").network_size(375, 500) == (384, 512)  # 375 -> nearest multiple 384
    assert DataConfig.from_dict(cfg.as_dict()) == cfg
    with pytest.raises(ConfigError, match="resize"):
        DataConfig(mean=(0, 0, 0), std=(1, 1, 1), resize="crop")
    with pytest.raises(ConfigError, match="unknown data_config key"):
        DataConfig.from_dict({"mean": [0, 0, 0], "std": [1, 1, 1], "size": 3})


def test_longest_and_shortest_side_rules_by_hand():
    """Depth Anything 3's processor: side to input_size (Python round), then the nearer multiple, ties up."""
    cfg = DataConfig(mean=(0, 0, 0), std=(1, 1, 1), input_size=504, multiple_of=14, resize="longest_side")
    assert cfg.network_size(300, 500) == (308, 504)  # 302.4 -> 302: 294 is 8 away, 308 is 6
    assert cfg.network_size(299, 500) == (308, 504)  # 301.39 -> 301: 7 either way -> up
    assert cfg.network_size(504, 378) == (504, 378)  # already there: untouched
    assert cfg.replace(resize="shortest_side").network_size(300, 500) == (504, 840)
    image = np.arange(300 * 500 * 3, dtype=np.uint32).reshape(300, 500, 3).astype(np.uint8)
    x = cfg.replace(interpolation="auto", resize_uint8=True).preprocess_numpy(image)
    import cv2

    step1 = cv2.resize(image, (504, 302), interpolation=cv2.INTER_CUBIC)  # enlarging: bicubic on uint8
    step2 = cv2.resize(step1, (504, 308), interpolation=cv2.INTER_CUBIC)
    np.testing.assert_array_equal(x, np.transpose(step2.astype(np.float32) / np.float32(255), (2, 0, 1)))


def test_depth_anything_declares_its_data_config():
    from timm.data import IMAGENET_DEFAULT_MEAN, IMAGENET_DEFAULT_STD

    cfg = data_config_of(create_model("da2_test"))
    assert cfg.mean == tuple(IMAGENET_DEFAULT_MEAN) and cfg.std == tuple(IMAGENET_DEFAULT_STD)
    assert (cfg.resize, cfg.multiple_of, cfg.input_size, cfg.interpolation) == ("lower_bound", 14, 518, "bicubic")
    info = model_info("da2_vits14")
    assert info["family"] == "depth_anything" and info["source"] == "dabench" and info["data_config"]["multiple_of"] == 14


def test_register_model_preprocesses_by_its_data_config(registry_snapshot):
    register_model("mean_colour", MeanColour, data_config=HALF, output_space="disparity")
    model = create_model("mean_colour")
    assert model.source == "plugin" and model.data_config == HALF and model.output_space == "disparity"
    img = np.random.default_rng(0).integers(0, 256, (20, 30, 3), dtype=np.uint8)
    pred = predict_batch(model, [img])[0]
    x = model.seen[0][0].numpy()
    import cv2

    ref = (cv2.resize(img / 255.0, (16, 16), interpolation=cv2.INTER_LINEAR) - 0.5) / 0.25  # independent numpy path
    np.testing.assert_allclose(x, ref.transpose(2, 0, 1), atol=1e-5)
    # output back to 20x30 with nearest neighbour (source index = floor(i * 16 / 20), floor(j * 16 / 30))
    rows, cols = (np.arange(20) * 16) // 20, (np.arange(30) * 16) // 30
    np.testing.assert_allclose(pred, ref[..., 0][np.ix_(rows, cols)] + 10.0, atol=1e-5)
    with pytest.raises(ConfigError, match="output_space"):
        register_model("bad_space", MeanColour, data_config=HALF, output_space="metres")
    with pytest.raises(DabenchError, match="already registered"):
        register_model("mean_colour", MeanColour, data_config=HALF, output_space="disparity")


def test_register_model_decorator_and_run_suite_by_name_and_object(registry_snapshot, tmp_path):
    from dabench.tasks import EvalRequest
    from dabench.eval.runner import run_suite

    @register_model(data_config=HALF, output_space="depth", is_metric=True)
    def mean_colour_metric(**kwargs):
        return MeanColour()

    assert "mean_colour_metric" in list_models() and model_info("mean_colour_metric")["is_metric"] is True
    out = tmp_path / "r"
    recs = run_suite("synthetic", EvalRequest(datasets="synthetic-indoor", limit=1, results_dir=out,
                     show_progress=False), models=["mean_colour_metric"])
    assert recs[0]["status"] == "ok" and recs[0]["model_source"] == "plugin"
    assert recs[0]["data_config"] == HALF.as_dict() and recs[0]["output_space"] == "depth"
    obj = MeanColour()
    obj.output_space, obj.data_config = "disparity", HALF
    recs = run_suite("synthetic", EvalRequest(datasets="synthetic-indoor", limit=1, results_dir=out,
                     show_progress=False), models=[obj])
    assert recs[0]["model"] == "MeanColour" and len(obj.seen) == 1


def test_model_without_data_config_is_a_clear_error():
    class NoConfig(nn.Module):
        output_space = "disparity"

        def forward(self, x):
            return x[:, 0]

    with pytest.raises(ConfigError, match="declares no data_config"):
        predict_batch(NoConfig(), [np.zeros((8, 8, 3), np.uint8)])


def test_own_predict_is_used_and_checked():
    class Pipeline(nn.Module):
        output_space = "depth"

        def predict(self, images):
            return [np.full(im.shape[:2], 2.0, np.float32) for im in images]

    imgs = [np.zeros((9, 7, 3), np.uint8), np.zeros((5, 6, 3), np.uint8)]
    assert [p.shape for p in predict_batch(Pipeline(), imgs, batch_size=1)] == [(9, 7), (5, 6)]

    class Wrong(Pipeline):
        def predict(self, images):
            return [np.zeros((3, 3), np.float32) for _ in images]

    with pytest.raises(ConfigError, match="one H×W map per image"):
        predict_batch(Wrong(), imgs)


PLUGIN = textwrap.dedent('''
    import torch
    from torch import nn
    from dabench.models import DataConfig

    class Flat(nn.Module):
        def __init__(self):
            super().__init__()
            self.bias = nn.Parameter(torch.ones(3))

        def forward(self, x):
            return x.mean(1) * 0 + self.bias.sum()

    def flatnet(**kwargs):
        """a flat plug-in model"""
        return Flat()

    flatnet.output_space = "disparity"
    flatnet.family = "flat"
    flatnet.data_config = DataConfig(mean=(0.5, 0.5, 0.5), std=(0.5, 0.5, 0.5), input_size=14, resize="fixed")
''')


def test_entry_point_plugin_appears_in_ls_models(registry_snapshot, tmp_path, monkeypatch):
    """A package declaring the dabench.models entry-point group, found by importlib.metadata on sys.path."""
    site = tmp_path / "site"
    (site / "dabench_flat_plugin").mkdir(parents=True)
    (site / "dabench_flat_plugin" / "__init__.py").write_text(PLUGIN)
    info = site / "dabench_flat_plugin-0.1.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: dabench-flat-plugin\nVersion: 0.1\n")
    (info / "entry_points.txt").write_text("[dabench.models]\nflatnet = dabench_flat_plugin:flatnet\n")
    monkeypatch.syspath_prepend(str(site))
    refresh_plugins()
    try:
        assert "flatnet" in list_models()
        info = model_info("flatnet")
        assert (info["source"], info["family"], info["output_space"], info["params"]) == ("plugin", "flat",
                                                                                           "disparity", 3)
        from dabench.cli import app

        res = CliRunner().invoke(app, ["ls", "models", "--json"])
        assert res.exit_code == 0
        assert {i["name"]: i["source"] for i in json.loads(res.output)}["flatnet"] == "plugin"
        pred = predict_batch(create_model("flatnet"), [np.zeros((5, 8, 3), np.uint8)])[0]
        np.testing.assert_allclose(pred, np.full((5, 8), 3.0))
    finally:
        sys.modules.pop("dabench_flat_plugin", None)


def test_resolver_sources_and_errors(tmp_path):
    from dabench.models.resolve import parse_model_options, resolve_models

    runs = resolve_models(["constant,hf:" + str(tmp_path / "dpt"), "diffusers:prs-eth/marigold-depth-v1-1"],
                          options={"ensemble_size": 2})
    assert [(r.label, r.source) for r in runs] == [("constant", "dabench"), ("hf:dpt", "hf"),
                                                   ("diffusers:prs-eth/marigold-depth-v1-1", "diffusers")]
    assert runs[2].options == {"ensemble_size": 2} and runs[0].options == {}
    assert parse_model_options(["ensemble_size=10", "half=true", "name=x"]) == {"ensemble_size": 10, "half": True,
                                                                               "name": "x"}
    with pytest.raises(ConfigError, match="KEY=VALUE"):
        parse_model_options(["oops"])
    with pytest.raises(ConfigError, match="model-option"):
        resolve_models(["constant"], options={"a": 1})
    with pytest.raises(ConfigError, match="share the label"):
        resolve_models(["hf:" + str(tmp_path / "a" / "m"), "hf:" + str(tmp_path / "b" / "m")])
    with pytest.raises(ConfigError, match="one dabench network"):
        resolve_models(["da2_test", "da1_test"], checkpoint=tmp_path / "x.pth")


def test_broken_and_clashing_plugins_warn_and_ls_models_works(registry_snapshot, tmp_path, monkeypatch):
    """Plug-ins raising (or calling sys.exit) on import, and one named like a built-in model: a warning
    each, `dabench ls models` still lists the built-ins, the built-in is not replaced."""
    site = tmp_path / "site"
    for mod, body in (("dabench_raise_plugin", "raise RuntimeError('boom')\n"),
                      ("dabench_exit_plugin", "import sys\nsys.exit(3)\n"),
                      ("dabench_clash_plugin", PLUGIN)):
        (site / mod).mkdir(parents=True)
        (site / mod / "__init__.py").write_text(body)
    info = site / "dabench_bad_plugins-0.1.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: dabench-bad-plugins\nVersion: 0.1\n")
    (info / "entry_points.txt").write_text("[dabench.models]\nraisenet = dabench_raise_plugin:x\n"
                                           "exitnet = dabench_exit_plugin:x\nda2_vits14 = dabench_clash_plugin:flatnet\n")
    monkeypatch.syspath_prepend(str(site))
    try:
        with pytest.warns(UserWarning) as caught:
            refresh_plugins()
        text = " ".join(str(w.message) for w in caught)
        assert "raisenet" in text and "exitnet" in text and "already has a model named 'da2_vits14'" in text
        assert model_info("da2_vits14")["source"] == "dabench"
        from dabench.cli import app

        res = CliRunner().invoke(app, ["ls", "models", "--json"])
        assert res.exit_code == 0 and "da2_vits14" in {i["name"] for i in json.loads(res.output)}
    finally:
        for mod in ("dabench_raise_plugin", "dabench_exit_plugin", "dabench_clash_plugin"):
            sys.modules.pop(mod, None)
