"""`dabench data check`, `dabench data show`, `dabench ls datasets`."""
from __future__ import annotations

import os
import shutil
from pathlib import Path

import cv2
import numpy as np
import pytest
import yaml
from typer.testing import CliRunner

from dabench.cli import app
from dabench.data import build_dataset

REPO = Path(__file__).resolve().parents[1]
CONFIGS = Path(__file__).resolve().parents[1] / "dabench" / "configs"
runner = CliRunner()


def _run(*args):
    return runner.invoke(app, [str(a) for a in args], env={"COLUMNS": "160"})


def test_ls_datasets():
    r = _run("ls", "datasets")
    assert r.exit_code == 0, r.output
    for n in ("kitti", "nyu", "diode-indoor", "synthetic-outdoor", "cityscapes"):
        assert n in r.output
    r = _run("ls", "datasets", "--task", "segmentation")
    assert "ade20k" in r.output and "kitti" not in r.output


def test_check_synthetic_ok():
    r = _run("data", "check", "synthetic-indoor", "--limit", 2, "--size", "28x42", "--split", "val")
    assert r.exit_code == 0, r.output
    assert "28x42" in r.output and "ok" in r.output and "100.0%" in r.output


def test_show_synthetic(tmp_path):
    out = tmp_path / "s.png"
    r = _run("data", "show", "synthetic-outdoor", "--index", 1, "--out", out, "--size", "28x42")
    assert r.exit_code == 0, r.output
    assert "image | depth (near = warm, invalid black) | valid mask" in r.output and "semantic labels" in r.output
    img = cv2.imread(str(out))
    # four titled panels, each at least its real size (28x42 is enlarged by a whole factor, never shrunk)
    assert img.shape[0] > 28 * 5 and img.shape[1] > 4 * 42 * 5
    s = build_dataset("synthetic-outdoor", size=(28, 42))[1]
    from dabench.cli.data import depth_panel, label_panel_with_legend

    depth = depth_panel(s["depth"], s["valid"])
    assert (depth[~s["valid"]] == 0).all()  # invalid depth is black
    legend = label_panel_with_legend(s["labels"], "synthetic-outdoor")["legend"]
    from dabench.data.synthetic import SEMANTIC_CLASSES

    present = {SEMANTIC_CLASSES[k] for k in np.unique(s["labels"]) if k != 255}
    assert {name for name, _ in legend} - {"ignore"} == present


def test_show_bad_index_and_seg_set(tmp_path):
    r = _run("data", "show", "synthetic-indoor", "--index", 999, "--out", tmp_path / "x.png")
    assert r.exit_code == 2 and "out of range" in r.output
    r = _run("data", "show", "cityscapes", "--out", tmp_path / "x.png")
    assert r.exit_code == 2 and "finetune seg" in r.output


def test_check_needs_data_root():
    r = _run("data", "check", "kitti")
    assert r.exit_code == 2 and "--data-root" in r.output


@pytest.fixture
def kitti_tree(tmp_path, monkeypatch):
    root = tmp_path / "repo"
    shutil.copytree(CONFIGS / "datasets", root / "datasets")
    monkeypatch.setenv("DABENCH_CONFIG_PATH", str(root))
    data = tmp_path / "data"
    rows = []
    for k in range(3):
        img = f"2011_09_26/2011_09_26_drive_0002_sync/image_02/data/{k:010d}.png"
        gt = f"2011_09_26_drive_0002_sync/proj_depth/groundtruth/image_02/{k:010d}.png"
        rows.append(f"{img} {gt} 721.5377")
        (data / "kitti/raw" / img).parent.mkdir(parents=True, exist_ok=True)
        (data / "kitti/gts" / gt).parent.mkdir(parents=True, exist_ok=True)
        cv2.imwrite(str(data / "kitti/raw" / img), np.full((6, 8, 3), 100, np.uint8))
        cv2.imwrite(str(data / "kitti/gts" / gt), np.full((6, 8), 256 * (5 + k), np.uint16))
    rows.append("2011_09_26/x/image_02/data/0000000009.png None 721.5377")
    (root / "datasets/splits/k.txt").write_text("\n".join(rows) + "\n")
    card = yaml.safe_load((root / "datasets/kitti.yaml").read_text())
    card["split_file"] = {"test": "splits/k.txt"}
    (root / "datasets/kitti.yaml").write_text(yaml.safe_dump(card))
    return data


def test_check_real_layout(kitti_tree):
    r = _run("data", "check", "kitti", "--data-root", kitti_tree)
    assert r.exit_code == 0, r.output
    assert "no ground truth: 1" in r.output and "6x8" in r.output
    assert "5" in r.output and "7" in r.output  # depth min / max in metres


def test_check_reports_missing_and_corrupt(kitti_tree):
    gt = kitti_tree / "kitti/gts/2011_09_26_drive_0002_sync/proj_depth/groundtruth/image_02"
    (gt / "0000000001.png").unlink()
    (gt / "0000000002.png").write_bytes(b"garbage")
    r = _run("data", "check", "kitti", "--data-root", kitti_tree)
    assert r.exit_code == 1
    assert "0000000001.png" in r.output and "missing" in r.output
    assert "0000000002.png is corrupt" in r.output.replace("\n", "")


def test_check_lists_hostile_files_instead_of_crashing(kitti_tree):
    """A depth PNG whose header claims 100000x100000 and an image that is a dangling symlink are
    listed as problems (exit 1), not a traceback."""
    from cli_output import flat
    from test_safety import _png_claiming

    gt = kitti_tree / "kitti/gts/2011_09_26_drive_0002_sync/proj_depth/groundtruth/image_02"
    (gt / "0000000000.png").write_bytes(_png_claiming(100000, 100000))
    img = kitti_tree / "kitti/raw/2011_09_26/2011_09_26_drive_0002_sync/image_02/data/0000000001.png"
    img.unlink()
    img.symlink_to(kitti_tree / "nowhere.png")
    r = _run("data", "check", "kitti", "--data-root", kitti_tree)
    assert r.exit_code == 1, r.output
    text = flat(r.output)
    assert "0000000000.png is 100000x100000" in text and "megapixel cap" in text
    assert "0000000001.png" in text and "Traceback" not in r.output


def test_split_list_cannot_name_files_outside_the_dataset_folder(kitti_tree):
    from cli_output import flat

    outside = kitti_tree / "secret.png"
    cv2.imwrite(str(outside), np.full((6, 8, 3), 1, np.uint8))
    split = Path(os.environ["DABENCH_CONFIG_PATH"]) / "datasets/splits/k.txt"
    split.write_text("../../secret.png 2011_09_26_drive_0002_sync/proj_depth/groundtruth/image_02/0000000000.png "
                     "721.5377\n")
    r = _run("data", "check", "kitti", "--data-root", kitti_tree)
    assert r.exit_code == 2, r.output
    assert "outside the dataset folder" in flat(r.output) and "secret.png" in flat(r.output)
