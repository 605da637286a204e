"""Dataset cards, shipped split lists and every file reader on a tiny on-disk fixture tree."""
from __future__ import annotations

import shutil
import struct
from pathlib import Path

import cv2
import h5py
import numpy as np
import pytest

from dabench.data import build_dataset, dataset_available, list_datasets, load_card
from dabench.data.cards import REQUIRED, card_splits, read_split_file, split_file_path, validate_card
from dabench.errors import ConfigError, DataError, MissingFileError
from reader_layouts import Cards, kitti_tree, png16, rgb

REPO = Path(__file__).resolve().parents[1]
CONFIGS = Path(__file__).resolve().parents[1] / "dabench" / "configs"
H, W = 6, 8
RNG = np.random.default_rng(0)

EXPECTED_CARDS = {"kitti", "nyu", "sintel", "ddad", "eth3d", "diode", "diode-indoor", "diode-outdoor", "sunrgbd",
                  "ibims", "hypersim", "vkitti2", "synthetic-indoor", "synthetic-outdoor", "cityscapes", "ade20k"}


# ---------------------------------------------------------------- cards and shipped splits

def test_all_cards_present_and_valid():
    names = set(list_datasets())
    assert EXPECTED_CARDS <= names
    for n in names:
        card = load_card(n)
        for k in REQUIRED:
            assert k in card
        assert card["source"] and card["notes"]
        if card["task"] == "depth" and card["reader"] != "synthetic":
            assert card["fallback"] in ("synthetic-indoor", "synthetic-outdoor")
            assert card["protocol_source"]
    assert set(list_datasets(task="segmentation")) == {"cityscapes", "ade20k"}
    assert not list((CONFIGS / "datasets").rglob("*.py")), "datasets/ must never contain python"


def test_zero_shot_defaults_follow_the_authors():
    for n in ("kitti", "nyu", "sintel", "ddad", "eth3d", "diode"):
        card = load_card(n)
        assert card["alignment"] == "scale_shift_disparity" and card["score_space"] == "disparity"
    assert load_card("kitti")["depth_cap"] == 80 and load_card("nyu")["depth_cap"] == 10
    assert load_card("nyu")["eval_crop"] == "eigen" and load_card("kitti")["eval_crop"] == "garg"


def test_shipped_split_lists():
    kitti = read_split_file(split_file_path(load_card("kitti"), "test"))
    assert len(kitti) == 697 and sum(r[1] != "None" for r in kitti) == 652
    assert len(read_split_file(split_file_path(load_card("nyu"), "test"))) == 654
    assert len(read_split_file(split_file_path(load_card("nyu"), "train"))) == 24231
    assert len(read_split_file(split_file_path(load_card("kitti"), "train"))) == 23158
    assert len(read_split_file(split_file_path(load_card("eth3d"), "test"))) == 454
    full = read_split_file(split_file_path(load_card("diode"), "test"))
    ind = read_split_file(split_file_path(load_card("diode-indoor"), "test"))
    out = read_split_file(split_file_path(load_card("diode-outdoor"), "test"))
    assert (len(full), len(ind), len(out)) == (771, 325, 446)
    assert sorted(map(tuple, full)) == sorted(map(tuple, ind + out))
    assert all(len(r) == 3 and r[1].endswith("_depth.npy") for r in full)


def test_notes_carry_the_caveats():
    assert "652" in load_card("kitti")["notes"] and "697" in load_card("kitti")["notes"]
    assert "0.21" in load_card("diode")["notes"]
    assert "not public" in load_card("ddad")["notes"]


def test_validate_card_errors():
    card = load_card("nyu")
    bad = dict(card, eval_crop="centre")
    with pytest.raises(ConfigError, match="eval_crop 'centre'"):
        validate_card(bad, "x/nyu.yaml")
    with pytest.raises(ConfigError, match="lacks field"):
        validate_card({k: v for k, v in card.items() if k != "alignment"}, "x/nyu.yaml")
    with pytest.raises(ConfigError, match="min_depth"):
        validate_card(dict(card, min_depth=20.0), "x/nyu.yaml")
    with pytest.raises(ConfigError, match="file name"):
        validate_card(card, "x/other.yaml")


def test_dataset_available(tmp_path):
    assert dataset_available("synthetic-indoor")
    assert not dataset_available("kitti")
    assert not dataset_available("kitti", tmp_path)
    (tmp_path / "kitti").mkdir()
    assert dataset_available("kitti", tmp_path)
    assert dataset_available("sintel", tmp_path) is False
    (tmp_path / "sintel").mkdir()
    assert dataset_available("sintel", tmp_path)


def test_segmentation_cards_point_to_finetune_seg():
    with pytest.raises(ConfigError, match="dabench finetune seg"):
        build_dataset("ade20k")


# ---------------------------------------------------------------- fixture trees

def _rgb(path, h=H, w=W):
    return rgb(path, h, w)


@pytest.fixture
def repo(tmp_path, monkeypatch):
    """A private copy of the cards (DABENCH_CONFIG_PATH) so tests can point split files at tiny lists."""
    cards = Cards.copy(tmp_path / "repo", monkeypatch)
    data = tmp_path / "data"
    data.mkdir()
    return cards.root, data, cards.set, cards.split


def _kitti_tree(data, split):
    return kitti_tree(data, H, W)


def test_kitti_reader(repo):
    _, data, set_card, split = repo
    img, raw, rows = _kitti_tree(data, split)
    set_card("kitti", split_file={"test": split("k", rows)})
    ds = build_dataset("kitti", data_root=data)
    assert len(ds) == 1 and ds.counts == {"no_ground_truth": 1} and ds.skipped_missing == 0
    s = ds[0]
    np.testing.assert_array_equal(s["image"], img)
    assert not s["valid"][0, 0]
    np.testing.assert_allclose(s["depth"][s["valid"]], raw[s["valid"]] / 256.0, rtol=1e-6)
    np.testing.assert_allclose(s["intrinsics"], [[721.5377, 0, 609.5593], [0, 721.5377, 172.854], [0, 0, 1]], rtol=1e-6)
    assert s["name"].endswith("0000000069.png")
    assert ds.card["name"] == "kitti"


def test_missing_entry_raises_or_is_skipped(repo):
    _, data, set_card, split = repo
    img, raw, rows = _kitti_tree(data, split)
    rows.append(["2011_09_26/2011_09_26_drive_0002_sync/image_02/data/0000000070.png",
                 "2011_09_26_drive_0002_sync/proj_depth/groundtruth/image_02/0000000070.png", "721.5377"])
    set_card("kitti", split_file={"test": split("k", rows)})
    with pytest.raises(MissingFileError, match=r"0000000070.png"):
        build_dataset("kitti", data_root=data)
    ds = build_dataset("kitti", data_root=data, skip_missing=True)
    assert len(ds) == 1 and ds.skipped_missing == 1
    assert len(build_dataset("kitti", data_root=data, skip_missing=True, limit=1)) == 1


def test_size_mismatch_and_corrupt_image(repo):
    _, data, set_card, split = repo
    img, raw, rows = _kitti_tree(data, split)
    set_card("kitti", split_file={"test": split("k", rows)})
    png16(data / "kitti/gts" / rows[0][1], np.ones((H + 1, W), np.uint16))
    with pytest.raises(DataError, match=rf"is {H}x{W} but depth .* is {H + 1}x{W}"):
        build_dataset("kitti", data_root=data)[0]
    (data / "kitti/raw" / rows[0][0]).write_bytes(b"not a png")
    with pytest.raises(DataError, match="0000000069.png is corrupt"):
        build_dataset("kitti", data_root=data)[0]


def test_nyu_extracted_and_mat(repo):
    _, data, set_card, split = repo
    base = data / "nyu/official_splits/test/bathroom"
    img = _rgb(base / "rgb_00002.jpg", 8, 8)
    png16(base / "sync_depth_00002.png", np.full((8, 8), 2500))
    set_card("nyu", split_file={"test": split("n", [["bathroom/rgb_00002.jpg", "bathroom/sync_depth_00002.png", "518.8579"]])})
    s = build_dataset("nyu", data_root=data)[0]
    assert s["image"].shape == (8, 8, 3) and np.abs(s["image"].astype(int) - img).mean() < 6  # JPEG
    np.testing.assert_allclose(s["depth"], 2.5)
    np.testing.assert_allclose(s["intrinsics"][0, 0], 518.8579)
    # the .mat route: no extracted folder; rgb_00002 is 0-based frame 2 = MATLAB index 3, read from
    # rawDepths truncated to mm, with the 7-pixel black border of the extraction script
    shutil.rmtree(data / "nyu/official_splits")
    depths = RNG.uniform(0.5, 9.0, (3, 480, 640)).astype(np.float32)
    depths[2, 100, 100] = 0.0
    images = RNG.integers(1, 256, (3, 480, 640, 3), dtype=np.uint8)
    with h5py.File(data / "nyu/nyu_depth_v2_labeled.mat", "w") as f:
        f["rawDepths"] = depths.transpose(0, 2, 1)
        f["images"] = images.transpose(0, 3, 2, 1)
    s = build_dataset("nyu", data_root=data)[0]
    np.testing.assert_array_equal(s["image"][7:474, 7:632], images[2][7:474, 7:632])
    assert not s["image"][:7].any() and not s["image"][:, 632:].any()
    assert not s["valid"][100, 100] and s["valid"].sum() == 480 * 640 - 1
    np.testing.assert_allclose(s["depth"][s["valid"]], np.floor(depths[2] * 1000)[s["valid"]] / 1000, rtol=1e-6)
    # the train split reads the BTS sync folder (leading '/' in the list, as shipped)
    _rgb(data / "nyu/sync/kitchen_0028b/rgb_00045.jpg", 8, 8)
    png16(data / "nyu/sync/kitchen_0028b/sync_depth_00045.png", np.full((8, 8), 1200))
    set_card("nyu", split_file={"train": split("nt", [["/kitchen_0028b/rgb_00045.jpg",
                                                       "/kitchen_0028b/sync_depth_00045.png", "518.8579"]]),
                                "test": "splits/nyu_test.txt"})
    s = build_dataset("nyu", "train", data_root=data)[0]
    np.testing.assert_allclose(s["depth"], 1.2, rtol=1e-6)


def test_sintel_scan_with_cam(repo):
    _, data, set_card, split = repo
    img = _rgb(data / "sintel/training/final/alley_1/frame_0001.png")
    depth = RNG.uniform(1, 50, (H, W)).astype(np.float32)
    depth[1, 1] = 1e10  # beyond max_depth
    (data / "sintel/training/depth/alley_1").mkdir(parents=True)
    (data / "sintel/training/depth/alley_1/frame_0001.dpt").write_bytes(
        struct.pack("<fii", 202021.25, W, H) + depth.astype("<f4").tobytes())
    K = np.array([[100.0, 0, 3.5], [0, 100.0, 2.5], [0, 0, 1]])
    (data / "sintel/training/camdata_left/alley_1").mkdir(parents=True)
    (data / "sintel/training/camdata_left/alley_1/frame_0001.cam").write_bytes(
        struct.pack("<f", 202021.25) + K.astype("<f8").tobytes() + np.zeros(12).astype("<f8").tobytes())
    ds = build_dataset("sintel", data_root=data)
    s = ds[0]
    assert len(ds) == 1 and s["name"] == "alley_1/frame_0001.png"
    np.testing.assert_array_equal(s["image"], img)
    assert not s["valid"][1, 1] and s["valid"].sum() == H * W - 1
    np.testing.assert_allclose(s["depth"][s["valid"]], depth[s["valid"]])
    np.testing.assert_allclose(s["intrinsics"], K)
    assert len(build_dataset("sintel", data_root=data, depth_range=None)[0]["depth"].nonzero()[0]) == H * W


def test_eth3d_reader(repo):
    _, data, set_card, split = repo
    rows = [["rgb/office/images/dslr_images/DSC_0219.JPG",
             "depth/office_dslr_depth/office/ground_truth_depth/dslr_images/DSC_0219.JPG"]]
    img = _rgb(data / "eth3d" / "rgb/office/images/dslr_images/DSC_0219.png")
    (data / "eth3d" / rows[0][0]).write_bytes((data / "eth3d/rgb/office/images/dslr_images/DSC_0219.png").read_bytes())
    depth = RNG.uniform(1, 20, (H, W)).astype(np.float32)
    depth[0, :] = np.inf
    p = data / "eth3d" / rows[0][1]
    p.parent.mkdir(parents=True)
    depth.astype("<f4").tofile(p)
    set_card("eth3d", split_file={"test": split("e", rows)}, depth_size=[H, W])
    s = build_dataset("eth3d", data_root=data)[0]
    np.testing.assert_array_equal(s["image"], img)
    assert not s["valid"][0].any() and s["valid"][1:].all()
    np.testing.assert_allclose(s["depth"][1:], depth[1:])


def test_diode_reader(repo):
    _, data, set_card, split = repo
    rel = "indoors/scene_00021/scan_00189/00021_00189_indoors_200_010"
    img = _rgb(data / "diode/val" / f"{rel}.png")
    depth = RNG.uniform(0.7, 9, (H, W, 1)).astype(np.float32)
    mask = np.ones((H, W), np.float32)
    mask[2, 2] = 0
    np.save(data / "diode/val" / f"{rel}_depth.npy", depth)
    np.save(data / "diode/val" / f"{rel}_depth_mask.npy", mask)
    set_card("diode-indoor", split_file={"test": split("d", [[f"{rel}.png", f"{rel}_depth.npy", f"{rel}_depth_mask.npy"]])})
    s = build_dataset("diode-indoor", data_root=data)[0]
    np.testing.assert_array_equal(s["image"], img)
    assert not s["valid"][2, 2] and s["valid"].sum() == H * W - 1
    np.testing.assert_allclose(s["depth"][s["valid"]], depth[..., 0][s["valid"]])


def test_ddad_sunrgbd_ibims_vkitti2_hypersim(repo):
    _, data, set_card, split = repo
    # DDAD: *_rgb.png + *_depth.npy
    img = _rgb(data / "ddad/ddad_val/000150_rgb.png")
    np.save(data / "ddad/ddad_val/000150_depth.npy", np.full((H, W), 42.0, np.float32))
    s = build_dataset("ddad", data_root=data)[0]
    np.testing.assert_array_equal(s["image"], img)
    np.testing.assert_allclose(s["depth"], 42.0)
    # SUN RGB-D: rgb/img-000001.jpg + depth/1.png (/10000)
    _rgb(data / "sunrgbd/rgb/img-000001.jpg")
    png16(data / "sunrgbd/depth/1.png", np.full((H, W), 31000))
    s = build_dataset("sunrgbd", data_root=data)[0]
    np.testing.assert_allclose(s["depth"], 3.1, rtol=1e-6)
    # iBims-1: imagelist + masks
    root = data / "ibims/ibims1_core_raw"
    root.mkdir(parents=True)
    (root / "imagelist.txt").write_text("corridor_01\n")
    _rgb(root / "rgb/corridor_01.png")
    png16(root / "depth/corridor_01.png", np.full((H, W), 6553))
    m = np.ones((H, W), np.uint8)
    m[0, 0] = 0
    for d in ("mask_invalid", "mask_transp"):
        (root / d).mkdir()
        cv2.imwrite(str(root / d / "corridor_01.png"), m)
    s = build_dataset("ibims", data_root=data)[0]
    assert not s["valid"][0, 0]
    np.testing.assert_allclose(s["depth"][s["valid"]], 6553 * 50 / 65535, rtol=1e-6)
    # vKITTI2: cm, 65535 sky
    base = data / "vkitti2/Scene01/clone/frames"
    _rgb(base / "rgb/Camera_0/rgb_00000.jpg")
    dep = np.full((H, W), 1234, np.uint16)
    dep[0] = 65535
    png16(base / "depth/Camera_0/depth_00000.png", dep)
    s = build_dataset("vkitti2", data_root=data)[0]
    assert not s["valid"][0].any()
    np.testing.assert_allclose(s["depth"][1:], 12.34, rtol=1e-6)
    np.testing.assert_allclose(s["intrinsics"][0, 0], 725.0087)
    # HyperSim: ray distance of a fronto-parallel wall at 4 m -> planar 4 m (focal from the card)
    f = 10.0
    set_card("hypersim", focal=f)
    sc = data / "hypersim/ai_001_001/images"
    _rgb(sc / "scene_cam_00_final_preview/frame.0000.tonemap.jpg")
    u = np.arange(W) + 0.5 - W / 2
    v = np.arange(H) + 0.5 - H / 2
    dist = 4.0 * np.sqrt(f ** 2 + u[None] ** 2 + v[:, None] ** 2) / f
    (sc / "scene_cam_00_geometry_hdf5").mkdir(parents=True)
    with h5py.File(sc / "scene_cam_00_geometry_hdf5/frame.0000.depth_meters.hdf5", "w") as fh:
        fh["dataset"] = dist.astype(np.float32)
    s = build_dataset("hypersim", data_root=data)[0]
    np.testing.assert_allclose(s["depth"], 4.0, rtol=1e-5)


def test_empty_scan_names_the_folder(repo):
    _, data, _, _ = repo
    (data / "vkitti2").mkdir()
    with pytest.raises(MissingFileError, match="Scene"):
        build_dataset("vkitti2", data_root=data)


def test_card_splits_and_unknown_option(repo):
    assert card_splits(load_card("synthetic-indoor")) == ["train", "val", "test"]
    _, data, _, _ = repo
    (data / "ddad/ddad_val").mkdir(parents=True)
    with pytest.raises(ConfigError, match="unknown option"):
        build_dataset("ddad", data_root=data, colour=1)


def test_runner_missing_entry_errors_or_counts_with_skip_missing(repo, tmp_path):
    """`dabench run` stops on a missing split entry (naming it) unless --skip-missing, which counts it in the record."""
    from dabench.tasks import EvalRequest
    from dabench.eval.runner import run_suite

    _, data, set_card, split = repo
    _, _, rows = _kitti_tree(data, split)
    rows.append(["2011_09_26/2011_09_26_drive_0002_sync/image_02/data/0000000070.png",
                 "2011_09_26_drive_0002_sync/proj_depth/groundtruth/image_02/0000000070.png", "721.5377"])
    set_card("kitti", split_file={"test": split("k", rows)})
    kw = dict(data_root=data, datasets=["kitti"], results_dir=tmp_path / "res", show_progress=False, use_cache=False)
    with pytest.raises(MissingFileError, match=r"0000000070.png"):
        run_suite(CONFIGS / "suites/zero-shot.yaml", EvalRequest(**kw), models=["horizon_prior"])
    assert not (tmp_path / "res" / "zero-shot" / "horizon_prior" / "kitti.json").exists()
    (rec,) = run_suite(CONFIGS / "suites/zero-shot.yaml", EvalRequest(skip_missing=True, **kw),
                       models=["horizon_prior"])
    assert rec["dataset"] == "kitti" and rec["status"] == "ok"
    assert rec["samples"]["skipped_missing"] == 1 and rec["samples"]["used"] == 1
    assert rec["config"]["skip_missing"] is True


def test_data_show_skip_missing(repo, tmp_path):
    """`dabench data show` stops on a missing split entry unless --skip-missing (then --index counts the
    entries present)."""
    from typer.testing import CliRunner

    from dabench.cli import app

    _, data, set_card, split = repo
    _, _, rows = _kitti_tree(data, split)
    rows.insert(0, ["2011_09_26/2011_09_26_drive_0002_sync/image_02/data/0000000070.png",
                    "2011_09_26_drive_0002_sync/proj_depth/groundtruth/image_02/0000000070.png", "721.5377"])
    set_card("kitti", split_file={"test": split("k", rows)})
    args = ["data", "show", "kitti", "--data-root", str(data), "--index", "0", "--out", str(tmp_path / "k.png")]
    res = CliRunner().invoke(app, args, env={"COLUMNS": "400"})
    assert res.exit_code == 2 and "0000000070.png" in res.output
    res = CliRunner().invoke(app, [*args, "--skip-missing"], env={"COLUMNS": "400"})
    assert res.exit_code == 0, res.output
    assert (tmp_path / "k.png").is_file()
