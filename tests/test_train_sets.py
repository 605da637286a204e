"""Readers of the paper's labelled training sets (dabench/data/train_sets.py), each on a fixture
written in its real on-disk format, checked against values computed here independently."""
from __future__ import annotations

import struct
import zlib

import cv2
import numpy as np
import pytest
import torch

from dabench.data import build_dataset, load_card
from dabench.data.formats import write_png_uint16
from dabench.data.train_sets import read_exr, read_pfm
from dabench.errors import DataError

H, W = 20, 28
RNG = np.random.default_rng(0)
TRAIN_SETS = ("blendedmvs", "diml-indoor", "diml-outdoor", "hrwsi", "irs", "megadepth", "tartanair")


def _image(path, ext=".png"):
    path.parent.mkdir(parents=True, exist_ok=True)
    img = RNG.integers(0, 255, (H, W, 3), dtype=np.uint8)
    assert cv2.imwrite(str(path), img)
    return img


def _pfm(path, arr, little=True):
    path.parent.mkdir(parents=True, exist_ok=True)
    h, w = arr.shape
    rows = np.ascontiguousarray(arr[::-1]).astype("<f4" if little else ">f4")  # PFM rows are bottom-up
    path.write_bytes(f"Pf\n{w} {h}\n{-1.0 if little else 1.0}\n".encode() + rows.tobytes())


def _exr(path, channels: dict, compression=3):
    """A single-part scanline OpenEXR file (spec 2.0 layout) with FLOAT channels; compression 0 = NONE, 3 = ZIP."""
    names = sorted(channels)
    h, w = next(iter(channels.values())).shape

    def attr(name, typ, data):
        return name.encode() + b"\0" + typ.encode() + b"\0" + struct.pack("<i", len(data)) + data

    chlist = b"".join(n.encode() + b"\0" + struct.pack("<i", 2) + bytes(4) + struct.pack("<ii", 1, 1)
                      for n in names) + b"\0"
    header = (struct.pack("<iI", 20000630, 2) + attr("channels", "chlist", chlist)
              + attr("compression", "compression", bytes([compression]))
              + attr("dataWindow", "box2i", struct.pack("<4i", 0, 0, w - 1, h - 1))
              + attr("displayWindow", "box2i", struct.pack("<4i", 0, 0, w - 1, h - 1))
              + attr("lineOrder", "lineOrder", b"\0") + attr("pixelAspectRatio", "float", struct.pack("<f", 1))
              + attr("screenWindowCenter", "v2f", struct.pack("<ff", 0, 0))
              + attr("screenWindowWidth", "float", struct.pack("<f", 1)) + b"\0")
    lines = 16 if compression == 3 else 1
    chunks = []
    for y in range(0, h, lines):
        raw = b"".join(channels[n][r].astype("<f4").tobytes() for r in range(y, min(h, y + lines)) for n in names)
        if compression == 3:
            b = np.frombuffer(raw, dtype=np.uint8)
            t = np.concatenate([b[0::2], b[1::2]]).astype(np.int64)  # interleave, then the byte predictor
            d = t.copy()
            d[1:] = (t[1:] - t[:-1] + 128 + 256) % 256
            raw = zlib.compress(d.astype(np.uint8).tobytes())
        chunks.append(struct.pack("<ii", y, len(raw)) + raw)
    table_end = len(header) + 8 * len(chunks)
    offsets, pos = [], table_end
    for c in chunks:
        offsets.append(pos)
        pos += len(c)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(header + struct.pack(f"<{len(offsets)}Q", *offsets) + b"".join(chunks))


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
    root = tmp_path / "blendedmvs"
    d = _depth()
    _image(root / "5a3ca9cb" / "blended_images" / "00000003.jpg")
    _image(root / "5a3ca9cb" / "blended_images" / "00000003_masked.jpg")  # skipped
    _pfm(root / "5a3ca9cb" / "rendered_depth_maps" / "00000003.pfm", d)
    _check("blendedmvs", tmp_path, d, d > 0)
    _pfm(tmp_path / "big.pfm", d, little=False)
    np.testing.assert_array_equal(read_pfm(tmp_path / "big.pfm"), d)
    (tmp_path / "bad.pfm").write_bytes(b"Pf\n28 20\n-1.0\n" + bytes(10))
    with pytest.raises(DataError, match="truncated"):
        read_pfm(tmp_path / "bad.pfm")


@pytest.mark.parametrize("name,layout", [
    ("diml-indoor", ("diml_indoor/HR/office1/color/a_c.png", "diml_indoor/HR/office1/depth_filled/a_depth_filled.png")),
    ("diml-outdoor", ("diml_outdoor/street3/outleft/0001.png", "diml_outdoor/street3/depthmap/0001.png")),
])
def test_diml_millimetre_pngs(tmp_path, name, layout):
    mm = (RNG.uniform(0.5, 9.0, (H, W)) * 1000).astype(np.uint16)
    mm[2, 2] = 0
    _image(tmp_path / layout[0])
    write_png_uint16(tmp_path / layout[1], mm)
    _check(name, tmp_path, mm.astype(np.float32) / 1000.0, mm > 0)


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
    _exr(tmp_path / "irs" / "Home" / "ArchVizInterior03Data" / "d_7.exr",
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
    import h5py

    base = tmp_path / "megadepth" / "phoenix" / "S6" / "zl548" / "MegaDepth_v1" / "0001" / "dense0"
    d = _depth()
    _image(base / "imgs" / "3371.jpg")
    (base / "depths").mkdir(parents=True)
    with h5py.File(base / "depths" / "3371.h5", "w") as f:
        f["depth"] = d
    _check("megadepth", tmp_path, d, d > 0)


def test_tartanair_npy_with_sky(tmp_path):
    base = tmp_path / "tartanair" / "abandonedfactory" / "Easy" / "P001"
    d = _depth()
    d[-2:] = 1e4  # the renderer's sky
    _image(base / "image_left" / "000012_left.png")
    (base / "depth_left").mkdir(parents=True)
    np.save(base / "depth_left" / "000012_left_depth.npy", d)
    sky = d >= 1000
    _check("tartanair", tmp_path, d, (d > 0) & ~sky, sky=sky)


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
    assert [d["name"] for d in v1["data"]["labelled"]] == ["blendedmvs", "diml-indoor", "diml-outdoor", "hrwsi",
                                                           "irs", "megadepth", "tartanair"]
    v2 = load_config(preset="paper-v2")
    assert [d["name"] for d in v2["data"]["labelled"]] == ["blendedmvs", "hypersim", "irs", "tartanair", "vkitti2"]
    assert v1["data"]["crop_size"] == 518 and v1["student"]["unlabelled_ratio"] == 2
    # a user sets only --data-root and the unlabelled shards; missing data is one clear error (exit 2)
    r = CliRunner().invoke(app, ["train", "teacher", "--preset", "paper", "--data-root", str(tmp_path),
                                 "--unlabelled", "wds:/nowhere/shard-{0..1}.tar", "--out", str(tmp_path / "o"),
                                 "--no-progress"])
    assert r.exit_code == 2 and "blendedmvs" in r.output, r.output
