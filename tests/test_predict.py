"""`dabench predict` and `dabench ls models` through typer's CliRunner."""
from __future__ import annotations

import json

import cv2
import numpy as np
import pytest
import torch
from typer.testing import CliRunner

import dabench.cli.models  # noqa: F401  (registers the commands)
from dabench.cli._app import app
from dabench.models import create_model, save_checkpoint
from dabench.models.inference import predict_image
from cli_output import flat  # tests/ is on sys.path under pytest
from test_models import tiny_model

runner = CliRunner()


@pytest.fixture()
def images(tmp_path):
    rng = np.random.default_rng(0)
    paths = []
    for name, shape in [("a.png", (30, 44, 3)), ("b.jpg", (28, 28, 3))]:
        p = tmp_path / "in" / name
        p.parent.mkdir(exist_ok=True)
        cv2.imwrite(str(p), rng.integers(0, 256, shape, dtype=np.uint8))
        paths.append(p)
    return paths


def test_predict_with_checkpoint_writes_npy_and_png(tmp_path, images):
    model = tiny_model("da2_test")
    ckpt = save_checkpoint(model, tmp_path / "m.safetensors", "da2_test")
    out = tmp_path / "out"
    r = runner.invoke(app, ["predict", *map(str, images), "--model", "da2_test", "--checkpoint", str(ckpt),
                            "--out", str(out), "--input-size", "28", "--device", "cpu"])
    assert r.exit_code == 0, r.output
    for p in images:
        pred = np.load(out / f"{p.stem}.npy")
        rgb = cv2.cvtColor(cv2.imread(str(p)), cv2.COLOR_BGR2RGB)
        assert pred.dtype == np.float32 and pred.shape == rgb.shape[:2] and pred.std() > 0
        np.testing.assert_allclose(pred, predict_image(model, rgb, input_size=28), rtol=1e-5, atol=1e-6)
        png = cv2.imread(str(out / f"{p.stem}.png"))
        assert png.shape == (*rgb.shape[:2], 3) and png.std() > 0
    # without --model, the dabench checkpoint names its arch
    r = runner.invoke(app, ["predict", str(images[1]), "--checkpoint", str(ckpt), "--out", str(tmp_path / "o2"),
                            "--input-size", "28"])
    assert r.exit_code == 0, r.output
    assert (tmp_path / "o2" / "b.npy").is_file()


def test_predict_refuses_without_checkpoint(tmp_path, images):
    r = runner.invoke(app, ["predict", str(images[0]), "--model", "da1_test", "--out", str(tmp_path / "o")])
    assert r.exit_code == 2
    assert "no --checkpoint given for da1_test" in r.output.replace("\n", " ") and "--random-init" in r.output
    assert not (tmp_path / "o").exists()


def test_predict_random_init_warns(tmp_path, images):
    r = runner.invoke(app, ["predict", str(images[0]), "--model", "da1_test", "--random-init",
                            "--out", str(tmp_path / "o"), "--input-size", "28"])
    assert r.exit_code == 0, r.output
    assert "meaningless" in r.output
    assert (tmp_path / "o" / "a.npy").is_file() and (tmp_path / "o" / "a.png").is_file()


def test_predict_bad_images_are_named_and_others_written(tmp_path, images):
    corrupt = tmp_path / "in" / "corrupt.png"
    corrupt.write_bytes(b"\x89PNG\r\n\x1a\n not really")
    missing = tmp_path / "in" / "missing.jpg"
    out = tmp_path / "o"
    r = runner.invoke(app, ["predict", str(images[0]), str(corrupt), str(missing), str(images[1]),
                            "--model", "horizon_prior", "--out", str(out), "--input-size", "28",
                            "--batch-size", "2"])
    assert r.exit_code != 0
    assert "corrupt.png" in r.output and "missing.jpg" in r.output and "2 of 4" in r.output
    assert sorted(p.name for p in out.iterdir()) == ["a.npy", "a.png", "b.npy", "b.png"]
    hp = np.load(out / "a.npy")
    assert hp[-1].mean() > hp[0].mean()  # the baseline ran: disparity grows toward the bottom


def test_predict_unknown_model_and_colormap(tmp_path, images):
    r = runner.invoke(app, ["predict", str(images[0]), "--model", "nope", "--out", str(tmp_path / "o")])
    assert r.exit_code == 2 and "da2_vits14" in r.output
    r = runner.invoke(app, ["predict", str(images[0]), "--model", "constant", "--out", str(tmp_path / "o"),
                            "--cmap", "not_a_cmap"])
    assert r.exit_code == 2 and "not_a_cmap" in r.output


def test_ls_models():
    r = runner.invoke(app, ["ls", "models", "--json", "--all"])
    assert r.exit_code == 0, r.output
    infos = {i["name"]: i for i in json.loads(r.output)}
    assert infos["da2_vits14"]["params"] == sum(p.numel() for p in create_model("da2_vits14").parameters())
    assert infos["constant"]["params"] == 0 and "da1_test" in infos
    r = runner.invoke(app, ["ls", "models"])
    assert r.exit_code == 0 and "da2_vitg14" in r.output and "24.8M" in r.output and "da1_test" not in r.output


def test_predict_pth_needs_model(tmp_path, images):
    p = tmp_path / "official.pth"
    torch.save({"x": torch.zeros(1)}, p)
    r = runner.invoke(app, ["predict", str(images[0]), "--checkpoint", str(p), "--out", str(tmp_path / "o")])
    assert r.exit_code == 2 and "pass --model" in flat(r.output)


def test_predict_png_near_is_warm_and_colorbar_file(tmp_path, images):
    r = runner.invoke(app, ["predict", str(images[0]), "--model", "horizon_prior", "--out", str(tmp_path / "o"),
                            "--colorbar"])
    assert r.exit_code == 0, r.output
    png = cv2.imread(str(tmp_path / "o" / "a.png"))[..., ::-1].astype(int)
    # horizon_prior: disparity grows towards the bottom row (near) -> red there, blue at the top (far)
    assert png[-1, 0, 0] > png[-1, 0, 2] and png[0, 0, 2] > png[0, 0, 0]
    bar = cv2.imread(str(tmp_path / "o" / "a.colorbar.png"))
    assert bar is not None and bar.shape[1] > 2 * 44  # image + prediction + colorbar


def test_colorize_inverts_metric_depth():
    from dabench.cli.models import colorize

    depth = np.array([[1.0, 10.0]])
    np.testing.assert_array_equal(colorize(depth, space="depth"), colorize(1.0 / depth))
    assert colorize(depth, space="depth")[0, 0, 0] > colorize(depth, space="depth")[0, 0, 2]  # 1 m is warm
