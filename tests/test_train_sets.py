"""Readers of the paper's labelled training sets (dabench/data/train_sets.py), each on a fixture
written in its real on-disk format, checked against values computed here independently."""
from __future__ import annotations


import cv2
import numpy as np
import pytest
import torch

from dabench.data import build_dataset, load_card
from dabench.data.train_sets import read_exr, read_pfm
from dabench.errors import DataError
import reader_layouts
from reader_layouts import exr, pfm, rgb

H, W = 20, 28
RNG = np.random.default_rng(0)
TRAIN_SETS = ("blendedmvs", "diml-indoor", "diml-outdoor", "hrwsi", "irs", "megadepth", "tartanair")


def _image(path):
    return rgb(path, H, W)


def _depth():
    d = RNG.uniform(0.5, 9.0, (H, W)).astype(np.float32)
    d[0, :3] = 0  # invalid
    return d


def _check(name, root, depth, valid, sky=None):
    ds = build_dataset(name, data_root=root)
    assert len(ds) == 1
    s = ds[0]
    assert s["image"].shape == (H, W, 3) and s["image"].dtype == np.uint8
    np.testing.assert_array_equal(s["valid"], valid)
    np.testing.assert_allclose(s["depth"], np.where(valid, depth, 0), rtol=1e-6)
    if sky is not None:
        np.testing.assert_array_equal(s["sky"], sky)
    return s


def test_every_training_card_states_its_ground_truth():
    for n in (*TRAIN_SETS, "hypersim", "vkitti2"):
        card = load_card(n)
        assert card["ground_truth"] in ("metric_depth", "disparity", "up_to_scale_depth") and card["sky"]
    assert load_card("hrwsi")["ground_truth"] == "disparity"
    assert load_card("megadepth")["ground_truth"] == "up_to_scale_depth"


def test_blendedmvs_pfm_rows_are_flipped_to_top_first(tmp_path):
    f = reader_layouts.blendedmvs(tmp_path, None)  # also writes a *_masked.jpg, which is skipped
    d = f.depth
    _check("blendedmvs", tmp_path, d, d > 0)
    pfm(tmp_path / "big.pfm", d, little=False)
    np.testing.assert_array_equal(read_pfm(tmp_path / "big.pfm"), d)
    (tmp_path / "bad.pfm").write_bytes(b"Pf\n28 20\n-1.0\n" + bytes(10))
    with pytest.raises(DataError, match="truncated"):
        read_pfm(tmp_path / "bad.pfm")


@pytest.mark.parametrize("name", sorted(reader_layouts.DIML_LAYOUTS))
def test_diml_millimetre_pngs(tmp_path, name):
    f = reader_layouts.diml(name)(tmp_path, None)  # uint16 millimetres, one 0 (no depth) at (2, 2)
    assert not f.valid[2, 2]
    _check(name, tmp_path, f.depth, f.valid)


def test_hrwsi_disparity_becomes_inverse_depth_with_sky(tmp_path):
    root = tmp_path / "hrwsi" / "train"
    disp = RNG.integers(1, 255, (H, W)).astype(np.uint8)
    disp[:3] = 0  # sky rows: disparity 0 inside the valid mask
    mask = np.full((H, W), 255, np.uint8)
    mask[:, -2:] = 0
    _image(root / "imgs" / "x1.jpg")
    (root / "gts").mkdir(parents=True)
    (root / "valid_masks").mkdir(parents=True)
    cv2.imwrite(str(root / "gts" / "x1.png"), disp)
    cv2.imwrite(str(root / "valid_masks" / "x1.png"), mask)
    valid = (mask > 0) & (disp > 0)
    s = _check("hrwsi", tmp_path, np.where(valid, 1.0 / np.maximum(disp, 1), 0), valid,
               sky=(mask > 0) & (disp == 0))
    # what the loss sees: 1 / depth is the stored disparity
    from dabench.train.losses import depth_to_disparity

    target, m = depth_to_disparity(torch.from_numpy(s["depth"])[None], torch.from_numpy(s["valid"])[None],
                                   torch.from_numpy(s["sky"])[None])
    np.testing.assert_allclose(target[0][m[0]].numpy(), disp[m[0].numpy()].astype(np.float32), rtol=1e-5)


@pytest.mark.parametrize("compression", [0, 3])
def test_irs_exr_disparity_to_metric_depth(tmp_path, compression):
    disp = RNG.uniform(5, 90, (H, W)).astype(np.float32)
    disp[4, 4] = 0
    _image(tmp_path / "irs" / "Home" / "ArchVizInterior03Data" / "l_7.png")
    exr(tmp_path / "irs" / "Home" / "ArchVizInterior03Data" / "d_7.exr",
         {"R": disp, "G": disp * 0, "B": disp * 0 + 1}, compression)
    np.testing.assert_array_equal(read_exr(tmp_path / "irs" / "Home" / "ArchVizInterior03Data" / "d_7.exr"), disp)
    valid = disp > 0
    depth = np.where(valid, 480.0 * 0.1 / np.where(valid, disp, 1), 0)
    _check("irs", tmp_path, depth, valid & (depth >= 0.01) & (depth <= 100))
    (tmp_path / "piz.exr").write_bytes((tmp_path / "irs" / "Home" / "ArchVizInterior03Data" / "d_7.exr").read_bytes()
                                       .replace(b"compression\0compression\0\x01\0\0\0" + bytes([compression]),
                                                b"compression\0compression\0\x01\0\0\0\x04"))
    with pytest.raises(DataError, match="PIZ"):
        read_exr(tmp_path / "piz.exr")


def test_megadepth_h5(tmp_path):
    f = reader_layouts.megadepth(tmp_path, None)
    _check("megadepth", tmp_path, f.depth, f.depth > 0)


def test_tartanair_npy_with_sky(tmp_path):
    f = reader_layouts.tartanair(tmp_path, None)  # the renderer's sky: depth 1e4 in the last two rows
    sky = f.depth >= 1000
    _check("tartanair", tmp_path, f.depth, (f.depth > 0) & ~sky, sky=sky)


def test_training_sets_feed_the_teacher(tmp_path):
    """A labelled spec naming a training set trains through the normal stage (sky joins the mask)."""
    from dabench.train import run_stage
    from dabench.train.config import load_config

    base = tmp_path / "tartanair" / "env" / "Hard" / "P000"
    d = _depth()
    d[:4] = 1e4
    for k in range(2):
        _image(base / "image_left" / f"00000{k}_left.png")
        (base / "depth_left").mkdir(parents=True, exist_ok=True)
        np.save(base / "depth_left" / f"00000{k}_left_depth.npy", d)
    cfg = load_config(preset="smoke", overrides={"data.labelled": [{"name": "tartanair"}], "data.data_root": str(tmp_path),
                                                 "data.crop_size": 14, "teacher.steps": 2, "data.num_workers": 0})
    res = run_stage("teacher", cfg, tmp_path / "t")
    assert res.final.is_file()


def test_paper_presets_name_the_papers_labelled_sets(tmp_path):
    from typer.testing import CliRunner

    from dabench.cli import app
    from dabench.train.config import load_config

    v1 = load_config(preset="paper")
    assert [d.name for d in v1.data.labelled] == ["blendedmvs", "diml-indoor", "diml-outdoor", "hrwsi",
                                                           "irs", "megadepth", "tartanair"]
    v2 = load_config(preset="paper-v2")
    assert [d.name for d in v2.data.labelled] == ["blendedmvs", "hypersim", "irs", "tartanair", "vkitti2"]
    assert v1.data.crop_size == 518 and v1.student.unlabelled_ratio == 2
    # a user sets only --data-root and the unlabelled shards; missing data is one clear error (exit 2)
    r = CliRunner().invoke(app, ["train", "teacher", "--preset", "paper", "--data-root", str(tmp_path),
                                 "--unlabelled", "wds:/nowhere/shard-{0..1}.tar", "--out", str(tmp_path / "o"),
                                 "--no-progress"])
    assert r.exit_code == 2 and "blendedmvs" in r.output, r.output


def test_hostile_exr_sizes_and_chunk_lines(tmp_path, monkeypatch):
    """The data window is checked against the pixel cap before the H×W output is allocated (ZIP chunks
    inflate ~1000×, so a small file could fill memory); a chunk naming a line outside the window is refused."""
    import struct

    disp = RNG.uniform(5, 90, (20, 20)).astype(np.float32)
    exr(tmp_path / "a.exr", {"R": disp}, 0)
    monkeypatch.setenv("DABENCH_MAX_PIXELS", "100")
    with pytest.raises(DataError, match="a.exr"):
        read_exr(tmp_path / "a.exr")
    monkeypatch.delenv("DABENCH_MAX_PIXELS")
    data = bytearray((tmp_path / "a.exr").read_bytes())
    first_chunk = struct.unpack_from("<Q", data, len(data) - 20 * (8 + 20 * 4) - 8 * 20)[0]
    struct.pack_into("<i", data, first_chunk, 10 ** 6)
    (tmp_path / "b.exr").write_bytes(bytes(data))
    with pytest.raises(DataError, match="outside its data window"):
        read_exr(tmp_path / "b.exr")


def test_hostile_megadepth_h5_and_pfm_sizes(tmp_path, monkeypatch):
    """A 3-D 'depth' dataset is refused from its header (it was read whole, then refused); a group or
    strings named 'depth' are one error; a PFM above the pixel cap is refused."""
    import h5py

    with h5py.File(tmp_path / "cube.h5", "w") as f:
        f.create_dataset("depth", shape=(4, 4, 3), dtype="f4")
    with h5py.File(tmp_path / "group.h5", "w") as f:
        f.create_group("depth")
    with h5py.File(tmp_path / "text.h5", "w") as f:
        f.create_dataset("depth", data=np.array([[b"a", b"b"]]))
    from dabench.data.train_sets import read_megadepth_depth

    for name, phrase in (("cube", "HxW dataset"), ("group", "HxW dataset"), ("text", "expected numbers")):
        with pytest.raises(DataError, match=phrase):
            read_megadepth_depth(tmp_path / f"{name}.h5")
    pfm(tmp_path / "a.pfm", RNG.uniform(1, 2, (20, 20)).astype(np.float32))
    monkeypatch.setenv("DABENCH_MAX_PIXELS", "100")
    with pytest.raises(DataError, match="a.pfm"):
        read_pfm(tmp_path / "a.pfm")
