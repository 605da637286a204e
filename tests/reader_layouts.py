"""One tiny frame per registered dataset reader, written in that dataset's real on-disk layout.

``LAYOUTS`` maps a reader name (``dabench.data.datasets.READERS``) to a writer
``writer(data_root, cards) -> Frame``: it writes the files under ``data_root`` (pointing the card's
split list at them through ``cards`` where the dataset has one) and returns what the reader must
give back. tests/test_readers.py runs every registered reader on its writer's frame, so a reader
registered without a writer here fails there. The reader-specific tests (test_data_datasets,
test_train_sets, test_da2k, test_presets) build their trees with the helpers of this module.
"""
from __future__ import annotations

import json
import shutil
import struct
import zlib
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import h5py
import numpy as np
import yaml

from real_layouts import write_nyu

REPO = Path(__file__).resolve().parents[1]
CONFIGS = Path(__file__).resolve().parents[1] / "dabench" / "configs"
H, W = 20, 28  # frame size of the writers below (pixels)
RNG = np.random.default_rng(0)


@dataclass
class Frame:
    """What a reader must return for the frame a writer put on disk."""

    dataset: str                        # the card to build (its ``reader`` is the writer's reader)
    depth: np.ndarray | None = None     # metres where ``valid`` (None: not checked against a value)
    valid: np.ndarray | None = None     # pixels the files give a depth for, before the card's range
    sky: np.ndarray | None = None       # the sample's ``sky`` mask, for readers that give one
    intrinsics: np.ndarray | None = None
    options: dict = field(default_factory=dict)  # build_dataset keyword options
    pairs: dict | None = None           # DA-2K: image name -> (pairs N x 4, closer N)


class Cards:
    """A private copy of the repository's dataset cards (``DABENCH_CONFIG_PATH``), so a test can point a
    card's split list at its tiny fixture and change card fields."""

    def __init__(self, root: Path):
        self.root = Path(root)

    @classmethod
    def copy(cls, dest: Path, monkeypatch) -> "Cards":
        shutil.copytree(CONFIGS / "datasets", Path(dest) / "datasets")
        monkeypatch.setenv("DABENCH_CONFIG_PATH", str(dest))
        return cls(dest)

    def set(self, name: str, **changes) -> None:
        """Change top-level fields of card ``name``."""
        p = self.root / "datasets" / f"{name}.yaml"
        card = yaml.safe_load(p.read_text())
        card.update(changes)
        p.write_text(yaml.safe_dump(card))

    def split(self, name: str, rows) -> str:
        """Write split list ``splits/<name>.txt`` (one row of fields per line); returns its card path."""
        p = self.root / "datasets" / "splits" / f"{name}.txt"
        p.write_text("\n".join(" ".join(r) for r in rows) + "\n")
        return f"splits/{name}.txt"


# ---------------------------------------------------------------- file formats

def rgb(path: Path, h: int = H, w: int = W, rng=RNG) -> np.ndarray:
    """Write an RGB image (format from the suffix) and return it as RGB uint8. JPEG is lossy, so a
    ``.jpg`` gets a smooth image whose round trip stays close."""
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.suffix.lower() in (".jpg", ".jpeg"):
        yy, xx = np.mgrid[0:h, 0:w]
        img = np.stack([20 * yy + 40, 15 * xx + 60, np.full_like(xx, 128)], -1).clip(0, 255).astype(np.uint8)
    else:
        img = rng.integers(0, 256, (h, w, 3), dtype=np.uint8)
    assert cv2.imwrite(str(path), img[..., ::-1]), path
    return img


def png16(path: Path, arr) -> None:
    """A 16-bit greyscale PNG."""
    path.parent.mkdir(parents=True, exist_ok=True)
    assert cv2.imwrite(str(path), np.asarray(arr, np.uint16)), path


def pfm(path: Path, arr: np.ndarray, little: bool = True) -> None:
    """A greyscale PFM (``Pf``), rows bottom-up as the format stores them."""
    path.parent.mkdir(parents=True, exist_ok=True)
    h, w = arr.shape
    rows = np.ascontiguousarray(arr[::-1]).astype("<f4" if little else ">f4")
    path.write_bytes(f"Pf\n{w} {h}\n{-1.0 if little else 1.0}\n".encode() + rows.tobytes())


def exr(path: Path, channels: dict, compression: int = 3) -> None:
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


def metric_depth(h: int = H, w: int = W, lo: float = 0.5, hi: float = 9.0, rng=RNG) -> np.ndarray:
    """float32 metres in [lo, hi) with three invalid (0) pixels in the top-left corner."""
    d = rng.uniform(lo, hi, (h, w)).astype(np.float32)
    d[0, :3] = 0
    return d


# ---------------------------------------------------------------- layouts of the evaluation sets

KITTI_IMG = "2011_09_26/2011_09_26_drive_0002_sync/image_02/data/0000000069.png"
KITTI_GT = "2011_09_26_drive_0002_sync/proj_depth/groundtruth/image_02/0000000069.png"
KITTI_K = np.array([[721.5377, 0, 609.5593], [0, 721.5377, 172.854], [0, 0, 1]])


def kitti_tree(data: Path, h: int = H, w: int = W):
    """KITTI raw frame + annotated depth (uint16 / 256, 0 = none) + calib; returns (image, raw depth,
    split rows) with a second row that has no ground truth (``None``)."""
    img = rgb(data / "kitti/raw" / KITTI_IMG, h, w)
    raw = RNG.integers(0, 80 * 256, (h, w)).astype(np.uint16)
    raw[0, 0] = 0
    png16(data / "kitti/gts" / KITTI_GT, raw)
    (data / "kitti/raw/2011_09_26/calib_cam_to_cam.txt").write_text(
        "calib_time: x\nP_rect_02: 721.5377 0 609.5593 44.85728 0 721.5377 172.854 0.2163791 0 0 1 0.002745884\n")
    rows = [[KITTI_IMG, KITTI_GT, "721.5377"], ["2011_09_26/x/image_02/data/1.png", "None", "721.5377"]]
    return img, raw, rows


def kitti(data: Path, cards: Cards) -> Frame:
    _, raw, rows = kitti_tree(data)
    cards.set("kitti", split_file={"test": cards.split("k", rows)})
    return Frame("kitti", raw / 256.0, raw > 0, intrinsics=KITTI_K)


def nyu(data: Path, cards: Cards) -> Frame:
    _, test_rows = write_nyu(data, train=0, test=1, hw=(H, W))
    cards.set("nyu", split_file={"test": cards.split("n", test_rows)})
    mm = cv2.imread(str(data / "nyu/official_splits/test" / test_rows[0][1]), cv2.IMREAD_UNCHANGED)
    return Frame("nyu", mm / 1000.0, mm > 0)


def sintel(data: Path, cards: Cards) -> Frame:
    """MPI Sintel: ``.dpt`` depth (tag, width, height, float32) and ``.cam`` (tag, K 3x3, extrinsics 3x4)."""
    rgb(data / "sintel/training/final/alley_1/frame_0001.png")
    depth = RNG.uniform(1, 50, (H, W)).astype(np.float32)
    depth[1, 1] = 1e10  # beyond the card's max_depth
    (data / "sintel/training/depth/alley_1").mkdir(parents=True)
    (data / "sintel/training/depth/alley_1/frame_0001.dpt").write_bytes(
        struct.pack("<fii", 202021.25, W, H) + depth.astype("<f4").tobytes())
    K = np.array([[100.0, 0, 3.5], [0, 100.0, 2.5], [0, 0, 1]])
    (data / "sintel/training/camdata_left/alley_1").mkdir(parents=True)
    (data / "sintel/training/camdata_left/alley_1/frame_0001.cam").write_bytes(
        struct.pack("<f", 202021.25) + K.astype("<f8").tobytes() + np.zeros(12).astype("<f8").tobytes())
    return Frame("sintel", depth, np.ones((H, W), bool), intrinsics=K)


def eth3d(data: Path, cards: Cards) -> Frame:
    """ETH3D: a ``.JPG`` image and raw little-endian float32 depth of the card's ``depth_size`` (inf = none)."""
    rows = [["rgb/office/images/dslr_images/DSC_0219.JPG",
             "depth/office_dslr_depth/office/ground_truth_depth/dslr_images/DSC_0219.JPG"]]
    rgb(data / "eth3d" / rows[0][0])
    depth = RNG.uniform(1, 20, (H, W)).astype(np.float32)
    depth[0, :] = np.inf
    p = data / "eth3d" / rows[0][1]
    p.parent.mkdir(parents=True)
    depth.astype("<f4").tofile(p)
    cards.set("eth3d", split_file={"test": cards.split("e", rows)}, depth_size=[H, W])
    return Frame("eth3d", depth, np.isfinite(depth))


def diode(data: Path, cards: Cards) -> Frame:
    """DIODE: ``<stem>.png``, ``<stem>_depth.npy`` (H x W x 1) and ``<stem>_depth_mask.npy``."""
    rel = "indoors/scene_00021/scan_00189/00021_00189_indoors_200_010"
    rgb(data / "diode/val" / f"{rel}.png")
    depth = RNG.uniform(0.7, 9, (H, W, 1)).astype(np.float32)
    mask = np.ones((H, W), np.float32)
    mask[2, 2] = 0
    np.save(data / "diode/val" / f"{rel}_depth.npy", depth)
    np.save(data / "diode/val" / f"{rel}_depth_mask.npy", mask)
    cards.set("diode-indoor", split_file={"test": cards.split("d", [[f"{rel}.png", f"{rel}_depth.npy",
                                                                      f"{rel}_depth_mask.npy"]])})
    return Frame("diode-indoor", depth[..., 0], mask > 0)


def ddad(data: Path, cards: Cards) -> Frame:
    """DDAD (as distributed for zero-shot evaluation): ``ddad_val/<id>_rgb.png`` + ``<id>_depth.npy``."""
    rgb(data / "ddad/ddad_val/000150_rgb.png")
    d = metric_depth(lo=1.0, hi=70.0)
    np.save(data / "ddad/ddad_val/000150_depth.npy", d)
    return Frame("ddad", d, d > 0)


def sunrgbd(data: Path, cards: Cards) -> Frame:
    """SUN RGB-D: ``rgb/img-<6 digits>.jpg`` + ``depth/<n>.png`` (uint16, metres x 10000)."""
    rgb(data / "sunrgbd/rgb/img-000001.jpg")
    raw = RNG.integers(0, 70000, (H, W)).clip(0, 65535).astype(np.uint16)
    png16(data / "sunrgbd/depth/1.png", raw)
    return Frame("sunrgbd", raw / 10000.0, raw > 0)


def ibims(data: Path, cards: Cards) -> Frame:
    """iBims-1 core: imagelist, ``rgb``/``depth`` PNGs (uint16, 50 m full scale) and two masks."""
    root = data / "ibims/ibims1_core_raw"
    root.mkdir(parents=True)
    (root / "imagelist.txt").write_text("corridor_01\n")
    rgb(root / "rgb/corridor_01.png")
    raw = RNG.integers(1, 13000, (H, W)).astype(np.uint16)
    png16(root / "depth/corridor_01.png", raw)
    invalid, transp = np.ones((H, W), np.uint8), np.ones((H, W), np.uint8)
    invalid[0, 0] = 0
    transp[1, 1] = 0
    for d, m in (("mask_invalid", invalid), ("mask_transp", transp)):
        (root / d).mkdir()
        assert cv2.imwrite(str(root / d / "corridor_01.png"), m)
    return Frame("ibims", raw.astype(np.float64) * 50 / 65535, (invalid > 0) & (transp > 0))


def vkitti2(data: Path, cards: Cards) -> Frame:
    """Virtual KITTI 2: ``rgb_<n>.jpg`` + ``depth_<n>.png`` (uint16 centimetres, 65535 = sky)."""
    base = data / "vkitti2/Scene01/clone/frames"
    rgb(base / "rgb/Camera_0/rgb_00000.jpg")
    dep = RNG.integers(100, 9000, (H, W)).astype(np.uint16)
    dep[0] = 65535
    png16(base / "depth/Camera_0/depth_00000.png", dep)
    return Frame("vkitti2", dep / 100.0, dep < 65535)


def hypersim(data: Path, cards: Cards) -> Frame:
    """HyperSim: tonemapped JPEG + HDF5 ray distance; the reader returns planar depth (focal from the
    card): a fronto-parallel wall at 4 m reads 4 m everywhere."""
    f = 10.0
    cards.set("hypersim", focal=f)
    sc = data / "hypersim/ai_001_001/images"
    rgb(sc / "scene_cam_00_final_preview/frame.0000.tonemap.jpg")
    u = np.arange(W) + 0.5 - W / 2
    v = np.arange(H) + 0.5 - H / 2
    dist = 4.0 * np.sqrt(f ** 2 + u[None] ** 2 + v[:, None] ** 2) / f
    (sc / "scene_cam_00_geometry_hdf5").mkdir(parents=True)
    with h5py.File(sc / "scene_cam_00_geometry_hdf5/frame.0000.depth_meters.hdf5", "w") as fh:
        fh["dataset"] = dist.astype(np.float32)
    return Frame("hypersim", np.full((H, W), 4.0), np.ones((H, W), bool))


def scannet(data: Path, cards: Cards) -> Frame:
    """ScanNet (Marigold's val sample): ``<scene>/color/<n>.jpg`` + ``<scene>/depth/<n>.png`` (uint16 mm)."""
    root = data / "scannet/scannet_val_sampled_800_1"
    rgb(root / "scene0406_02/color/000300.jpg")
    mm = RNG.integers(0, 9000, (H, W)).astype(np.uint16)
    png16(root / "scene0406_02/depth/000300.png", mm)
    cards.set("scannet", split_file={"test": cards.split("s", [["scene0406_02/color/000300.jpg",
                                                               "scene0406_02/depth/000300.png"]])})
    return Frame("scannet", mm / 1000.0, mm > 0)


def da2k_tree(data: Path, h: int = 28, w: int = 42) -> dict:
    """DA-2K: ``<data>/da2k/annotations.json`` (points ``[h, w]``, 0-based) + ``<scene>/<image>`` of
    ``h`` x ``w`` pixels (at least 28 x 42: the points are fixed); returns the annotations written."""
    d = data / "da2k"
    for scene, name in (("indoor", "a.png"), ("outdoor", "b.jpg")):
        (d / scene).mkdir(parents=True)
        img = np.random.default_rng(0).integers(0, 255, (h, w, 3), dtype=np.uint8)
        assert cv2.imwrite(str(d / scene / name), img)
    ann = {
        "indoor/a.png": [
            {"point1": [25, 5], "point2": [16, 30], "closer_point": "point1"},
            {"point1": [16, 5], "point2": [25, 5], "closer_point": "point1"},
            {"point1": [3, 5], "point2": [3, 30], "closer_point": "point1"},
        ],
        "outdoor/b.jpg": [
            {"point1": [27, 0], "point2": [0, 41], "closer_point": "point1"},
            {"point1": [20, 3], "point2": [26, 3], "closer_point": "point2"},
        ],
    }
    (d / "annotations.json").write_text(json.dumps(ann))
    return ann


def da2k(data: Path, cards: Cards) -> Frame:
    ann = da2k_tree(data)
    pairs = {name: (np.array([a["point1"] + a["point2"] for a in rows], np.int64),
                    np.array([0 if a["closer_point"] == "point1" else 1 for a in rows], np.int64))
             for name, rows in ann.items()}
    return Frame("da2k", pairs=pairs)


def synthetic(data: Path, cards: Cards) -> Frame:
    """The procedural world needs no files: a small render."""
    return Frame("synthetic-outdoor", options={"size": (24, 32)})


# ---------------------------------------------------------------- layouts of the labelled training sets

def blendedmvs(data: Path, cards: Cards) -> Frame:
    """BlendedMVS: ``<scan>/blended_images/<n>.jpg`` (``*_masked.jpg`` skipped) + ``rendered_depth_maps/<n>.pfm``."""
    root = data / "blendedmvs"
    d = metric_depth()
    rgb(root / "5a3ca9cb" / "blended_images" / "00000003.jpg")
    rgb(root / "5a3ca9cb" / "blended_images" / "00000003_masked.jpg")
    pfm(root / "5a3ca9cb" / "rendered_depth_maps" / "00000003.pfm", d)
    return Frame("blendedmvs", d, d > 0)


DIML_LAYOUTS = {
    "diml-indoor": ("diml_indoor/HR/office1/color/a_c.png", "diml_indoor/HR/office1/depth_filled/a_depth_filled.png"),
    "diml-outdoor": ("diml_outdoor/street3/outleft/0001.png", "diml_outdoor/street3/depthmap/0001.png"),
}


def diml(name: str):
    """DIML indoor/outdoor: colour PNG + uint16 millimetre depth PNG (0 = none)."""
    def write(data: Path, cards: Cards) -> Frame:
        mm = (RNG.uniform(0.5, 9.0, (H, W)) * 1000).astype(np.uint16)
        mm[2, 2] = 0
        rgb(data / DIML_LAYOUTS[name][0])
        png16(data / DIML_LAYOUTS[name][1], mm)
        return Frame(name, mm / 1000.0, mm > 0)
    return write


def hrwsi(data: Path, cards: Cards) -> Frame:
    """HRWSI: ``imgs/<n>.jpg``, ``gts/<n>.png`` (uint8 disparity, 0 in the valid mask = sky) and
    ``valid_masks/<n>.png``; the reader returns inverse disparity as depth."""
    root = data / "hrwsi" / "train"
    disp = RNG.integers(1, 255, (H, W)).astype(np.uint8)
    disp[:3] = 0
    mask = np.full((H, W), 255, np.uint8)
    mask[:, -2:] = 0
    rgb(root / "imgs" / "x1.jpg")
    (root / "gts").mkdir(parents=True)
    (root / "valid_masks").mkdir(parents=True)
    assert cv2.imwrite(str(root / "gts" / "x1.png"), disp)
    assert cv2.imwrite(str(root / "valid_masks" / "x1.png"), mask)
    valid = (mask > 0) & (disp > 0)
    return Frame("hrwsi", 1.0 / np.maximum(disp, 1), valid, sky=(mask > 0) & (disp == 0))


def irs(data: Path, cards: Cards) -> Frame:
    """IRS: ``l_<n>.png`` + ``d_<n>.exr`` disparity (depth = focal x 0.1 m baseline / disparity)."""
    disp = RNG.uniform(5, 90, (H, W)).astype(np.float32)
    disp[4, 4] = 0
    base = data / "irs" / "Home" / "ArchVizInterior03Data"
    rgb(base / "l_7.png")
    exr(base / "d_7.exr", {"R": disp, "G": disp * 0, "B": disp * 0 + 1})
    valid = disp > 0
    return Frame("irs", 480.0 * 0.1 / np.where(valid, disp, 1), valid)


def megadepth(data: Path, cards: Cards) -> Frame:
    """MegaDepth v1: ``<scene>/dense0/imgs/<n>.jpg`` + ``depths/<n>.h5`` (dataset ``depth``)."""
    base = data / "megadepth" / "phoenix" / "S6" / "zl548" / "MegaDepth_v1" / "0001" / "dense0"
    d = metric_depth()
    rgb(base / "imgs" / "3371.jpg")
    (base / "depths").mkdir(parents=True)
    with h5py.File(base / "depths" / "3371.h5", "w") as f:
        f["depth"] = d
    return Frame("megadepth", d, d > 0)


def tartanair(data: Path, cards: Cards) -> Frame:
    """TartanAir: ``image_left/<n>_left.png`` + ``depth_left/<n>_left_depth.npy`` (sky rendered far away)."""
    base = data / "tartanair" / "abandonedfactory" / "Easy" / "P001"
    d = metric_depth()
    d[-2:] = 1e4
    rgb(base / "image_left" / "000012_left.png")
    (base / "depth_left").mkdir(parents=True)
    np.save(base / "depth_left" / "000012_left_depth.npy", d)
    sky = d >= 1000
    return Frame("tartanair", d, (d > 0) & ~sky, sky=sky)


LAYOUTS = {
    "blendedmvs": blendedmvs, "da2k": da2k, "ddad": ddad, "diml-indoor": diml("diml-indoor"),
    "diml-outdoor": diml("diml-outdoor"), "diode": diode, "eth3d": eth3d, "hrwsi": hrwsi, "hypersim": hypersim,
    "ibims": ibims, "irs": irs, "kitti": kitti, "megadepth": megadepth, "nyu": nyu, "scannet": scannet,
    "sintel": sintel, "sunrgbd": sunrgbd, "synthetic": synthetic, "tartanair": tartanair, "vkitti2": vkitti2,
}
