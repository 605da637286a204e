"""Issue 16 item 5: predict takes folders and registered names, the seg held-out split names its synthetic
families, one flag name per idea (data show --skip-missing: tests/test_data_datasets.py)."""
from __future__ import annotations

import numpy as np
import pytest
from typer.testing import CliRunner

from dabench.cli import app

runner = CliRunner()
WIDE = {"COLUMNS": "400"}


def _png(path, seed=0):
    import cv2

    path.parent.mkdir(parents=True, exist_ok=True)
    img = np.random.default_rng(seed).integers(0, 255, size=(28, 42, 3), dtype=np.uint8)
    assert cv2.imwrite(str(path), img)


def test_predict_takes_a_folder_recursively_and_a_registered_name(tmp_path):
    import torch

    from dabench.models import create_model, save_checkpoint
    from dabench.provenance import checkpoints_dir

    photos = tmp_path / "photos"
    _png(photos / "a.png")
    _png(photos / "sub" / "b.jpg", 1)
    _png(photos / ".hidden" / "c.png", 2)  # hidden folders are not searched
    (photos / "notes.txt").write_text("not an image")
    torch.manual_seed(0)
    save_checkpoint(create_model("da2_test"), checkpoints_dir() / "my_student.safetensors", "da2_test")
    res = runner.invoke(app, ["predict", str(photos), "--model", "my_student", "--out", str(tmp_path / "out"),
                              "--input-size", "28"], env=WIDE)
    assert res.exit_code == 0, res.output
    assert sorted(p.name for p in (tmp_path / "out").glob("*.npy")) == ["a.npy", "b.npy"]
    empty = tmp_path / "empty"
    empty.mkdir()
    res = runner.invoke(app, ["predict", str(empty), "--model", "my_student", "--out", str(tmp_path / "o2")],
                        env=WIDE)
    assert res.exit_code == 2 and "no image files" in res.output


def test_seg_held_out_split_names_its_synthetic_families():
    from dabench.finetune.seg.config import heads_dir, load_config
    from dabench.finetune.seg.train import held_out_split

    cfg = load_config(heads_dir() / "upernet_da2-test_1xb8-600_synthetic-70x70.py")
    info = held_out_split(cfg)
    assert info["families"] and "synthetic families scored: " + ", ".join(info["families"]) in info["note"]


@pytest.mark.parametrize("command", [["finetune", "metric"], ["finetune", "seg"], ["bench"], ["predict"],
                                     ["table"], ["regress"], ["compare"], ["paper"], ["results", "export"]])
def test_out_is_dash_o_everywhere(command):
    """-o always means --out (finetune metric's -o used to mean --results)."""
    import typer.main

    cmd = typer.main.get_command(app)
    for part in command:
        cmd = cmd.commands[part]
    options = [p for p in cmd.params if p.param_type_name == "option"]  # typer may vendor its own click
    outs = [p for p in options if "--out" in p.opts]
    assert outs and "-o" in outs[0].opts
    assert not any("-o" in p.opts for p in options if "--out" not in p.opts)


def test_run_and_predict_share_the_precision_flag():
    import typer.main

    cmd = typer.main.get_command(app)
    for name in ("run", "predict"):
        assert any("--precision" in p.opts for p in cmd.commands[name].params if p.param_type_name == "option")
