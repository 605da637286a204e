"""Every depth reader against a fixture written in the real on-disk format with known values."""
from __future__ import annotations

import struct

import cv2
import h5py
import numpy as np
import pytest

from dabench.data import formats as F
from dabench.data.crops import apply_eval_crop, crop_mask, kb_crop
from dabench.errors import ConfigError, DataError, MissingFileError


def _png16(path, arr):
    assert cv2.imwrite(str(path), np.asarray(arr, dtype=np.uint16))
    return path


def test_kitti_png_div_256(tmp_path):
    raw = np.array([[0, 256, 512], [65535, 1, 2560]], dtype=np.uint16)
    d, v = F.read_kitti_depth(_png16(tmp_path / "0000000069.png", raw))
    np.testing.assert_array_equal(v, [[False, True, True], [True, True, True]])
    np.testing.assert_allclose(d, [[0, 1.0, 2.0], [65535 / 256, 1 / 256, 10.0]], rtol=1e-6)
    assert d.dtype == np.float32 and v.dtype == bool


def test_nyu_png_millimetres(tmp_path):
    raw = np.array([[0, 1000, 2345]], dtype=np.uint16)
    d, v = F.read_nyu_depth(_png16(tmp_path / "sync_depth_00045.png", raw))
    np.testing.assert_allclose(d, [[0, 1.0, 2.345]], rtol=1e-6)
    np.testing.assert_array_equal(v, [[False, True, True]])


def test_nyu_labelled_mat_hdf5(tmp_path):
    """MATLAB v7.3 stores column-major: h5py sees depths N×W×H and images N×3×W×H."""
    h, w = 4, 6
    depth = np.arange(2 * h * w, dtype=np.float32).reshape(2, h, w) / 10 + 0.5
    depth[1, 0, 0] = np.nan
    image = np.random.default_rng(0).integers(0, 256, (2, h, w, 3), dtype=np.uint8)
    path = tmp_path / "nyu_depth_v2_labeled.mat"
    with h5py.File(path, "w") as f:
        f["rawDepths"] = depth.transpose(0, 2, 1)
        f["depths"] = depth.transpose(0, 2, 1) + 1.0
        f["images"] = image.transpose(0, 3, 2, 1)
    _, d_inpainted, _ = F.read_nyu_mat(path, 1, key="depths")
    np.testing.assert_allclose(d_inpainted, depth[0] + 1.0)
    img, d, v = F.read_nyu_mat(path, 2)
    np.testing.assert_array_equal(img, image[1])
    assert not v[0, 0] and d[0, 0] == 0
    np.testing.assert_allclose(d[v], depth[1][v])
    with pytest.raises(DataError, match="out of range"):
        F.read_nyu_mat(path, 3)
    bad = tmp_path / "bad.mat"
    bad.write_bytes(b"MATLAB 5.0 MAT-file, not hdf5")
    with pytest.raises(DataError, match="bad.mat"):
        F.read_nyu_mat(bad, 1)


def _dpt(path, arr, tag=202021.25, truncate=0):
    h, w = arr.shape
    data = struct.pack("<fii", tag, w, h) + np.asarray(arr, "<f4").tobytes()
    path.write_bytes(data[: len(data) - truncate])
    return path


def test_sintel_dpt(tmp_path):
    arr = np.array([[1.5, 2.0, np.inf], [-1.0, 0.0, 100.25]], dtype=np.float32)
    d, v = F.read_sintel_depth(_dpt(tmp_path / "frame_0001.dpt", arr))
    assert d.shape == (2, 3)
    np.testing.assert_array_equal(v, [[True, True, False], [False, False, True]])
    np.testing.assert_allclose(d, [[1.5, 2.0, 0], [0, 0, 100.25]])
    assert np.isfinite(d).all()


def test_sintel_dpt_errors(tmp_path):
    arr = np.ones((3, 4), np.float32)
    with pytest.raises(DataError, match=r"tag .*202021.25"):
        F.read_sintel_depth(_dpt(tmp_path / "wrongtag.dpt", arr, tag=1.0))
    with pytest.raises(DataError, match=r"short.dpt is truncated: 56 bytes, expected 60"):
        F.read_sintel_depth(_dpt(tmp_path / "short.dpt", arr, truncate=4))
    (tmp_path / "tiny.dpt").write_bytes(b"\x00\x01")
    with pytest.raises(DataError, match="truncated"):
        F.read_sintel_depth(tmp_path / "tiny.dpt")
    with pytest.raises(MissingFileError, match="nothere.dpt"):
        F.read_sintel_depth(tmp_path / "nothere.dpt")


def test_sintel_cam(tmp_path):
    K = np.array([[1120.0, 0, 511.5], [0, 1120.0, 217.5], [0, 0, 1]])
    Rt = np.arange(12, dtype=np.float64).reshape(3, 4)
    p = tmp_path / "frame_0001.cam"
    p.write_bytes(struct.pack("<f", 202021.25) + K.astype("<f8").tobytes() + Rt.astype("<f8").tobytes())
    from dabench.data.cameras import read_sintel_cam

    K2, Rt2 = read_sintel_cam(p)
    np.testing.assert_array_equal(K2, K)
    np.testing.assert_array_equal(Rt2, Rt)


def test_eth3d_raw_float32(tmp_path):
    h, w = 5, 7
    arr = np.linspace(0.5, 30, h * w, dtype=np.float32).reshape(h, w)
    arr[2, 3] = np.inf
    p = tmp_path / "DSC_0219.JPG"
    arr.astype("<f4").tofile(p)
    d, v = F.read_eth3d_depth(p, height=h, width=w)
    assert not v[2, 3] and v.sum() == h * w - 1
    np.testing.assert_array_equal(d[v], arr[v])
    with pytest.raises(DataError, match=r"DSC_0219.JPG has 140 bytes, expected 160"):
        F.read_eth3d_depth(p, height=4, width=10)
    with pytest.raises(DataError, match="expected"):
        F.read_eth3d_depth(p)  # default 6048x4032


def test_diode_npy_and_mask(tmp_path):
    depth = np.array([[[1.0], [2.0]], [[np.nan], [4.0]]], dtype=np.float32)  # H×W×1
    mask = np.array([[1.0, 0.0], [1.0, 1.0]], dtype=np.float32)
    np.save(tmp_path / "x_depth.npy", depth)
    np.save(tmp_path / "x_depth_mask.npy", mask)
    d, v = F.read_diode_depth(tmp_path / "x_depth.npy", tmp_path / "x_depth_mask.npy")
    np.testing.assert_array_equal(v, [[True, False], [False, True]])
    np.testing.assert_allclose(d, [[1.0, 0], [0, 4.0]])
    np.save(tmp_path / "y_depth_mask.npy", np.ones((3, 2)))
    with pytest.raises(DataError, match=r"y_depth_mask.npy is \(3, 2\) but depth"):
        F.read_diode_depth(tmp_path / "x_depth.npy", tmp_path / "y_depth_mask.npy")
    (tmp_path / "corrupt_depth.npy").write_bytes(b"\x93NUMPY garbage")
    with pytest.raises(DataError, match="corrupt_depth.npy"):
        F.read_diode_depth(tmp_path / "corrupt_depth.npy", tmp_path / "x_depth_mask.npy")


def test_ddad_npy(tmp_path):
    arr = np.array([[0.0, 12.5], [-3.0, 79.0]], dtype=np.float32)
    np.save(tmp_path / "000_depth.npy", arr)
    d, v = F.read_ddad_depth(tmp_path / "000_depth.npy")
    np.testing.assert_array_equal(v, [[False, True], [False, True]])
    np.testing.assert_allclose(d, [[0, 12.5], [0, 79.0]])


def test_sunrgbd_png_div_10000(tmp_path):
    d, v = F.read_sunrgbd_depth(_png16(tmp_path / "1.png", [[0, 10000, 25000]]))
    np.testing.assert_allclose(d, [[0, 1.0, 2.5]])
    np.testing.assert_array_equal(v, [[False, True, True]])


def test_ibims_png_and_masks(tmp_path):
    raw = np.array([[65535, 13107, 0], [6553, 100, 200]], dtype=np.uint16)
    _png16(tmp_path / "d.png", raw)
    cv2.imwrite(str(tmp_path / "inv.png"), np.array([[1, 1, 1], [0, 1, 1]], np.uint8))
    cv2.imwrite(str(tmp_path / "tr.png"), np.array([[1, 1, 1], [1, 1, 0]], np.uint8))
    d, v = F.read_ibims_depth(tmp_path / "d.png", tmp_path / "inv.png", tmp_path / "tr.png")
    np.testing.assert_array_equal(v, [[True, True, False], [False, True, False]])
    np.testing.assert_allclose(d[0, :2], [50.0, 13107 * 50 / 65535], rtol=1e-6)
    np.testing.assert_allclose(d[1, 1], 100 * 50 / 65535, rtol=1e-6)


def test_hypersim_distance_to_planar(tmp_path):
    """A fronto-parallel wall at z = 3 m: HyperSim stores r = z·sqrt(f² + u² + v²)/f; reading must
    give back exactly 3 m everywhere (u, v from the image centre to each pixel centre)."""
    h, w, f = 6, 8, 5.0
    u = np.arange(w) + 0.5 - w / 2
    v = np.arange(h) + 0.5 - h / 2
    dist = 3.0 * np.sqrt(f ** 2 + u[None] ** 2 + v[:, None] ** 2) / f
    dist[0, 0] = np.nan
    p = tmp_path / "frame.0000.depth_meters.hdf5"
    with h5py.File(p, "w") as fh:
        fh.create_dataset("dataset", data=dist.astype(np.float32))
    d, valid = F.read_hypersim_depth(p, focal=f)
    assert not valid[0, 0] and valid.sum() == h * w - 1
    np.testing.assert_allclose(d[valid], 3.0, rtol=1e-6)
    with h5py.File(tmp_path / "wrong.hdf5", "w") as fh:
        fh["depth"] = np.ones((2, 2))
    with pytest.raises(DataError, match="lacks the HDF5 dataset 'dataset'"):
        F.read_hypersim_depth(tmp_path / "wrong.hdf5")


def test_vkitti2_centimetres_and_sky(tmp_path):
    d, v = F.read_vkitti2_depth(_png16(tmp_path / "depth_00000.png", [[100, 8000, 65535]]))
    np.testing.assert_allclose(d, [[1.0, 80.0, 0.0]])
    np.testing.assert_array_equal(v, [[True, True, False]])


def test_png_errors(tmp_path):
    (tmp_path / "corrupt.png").write_bytes(b"\x89PNG\r\n\x1a\nnot really")
    with pytest.raises(DataError, match="corrupt.png"):
        F.read_kitti_depth(tmp_path / "corrupt.png")
    cv2.imwrite(str(tmp_path / "eight.png"), np.zeros((2, 2), np.uint8))
    with pytest.raises(DataError, match="16-bit"):
        F.read_nyu_depth(tmp_path / "eight.png")
    with pytest.raises(MissingFileError, match="missing.png"):
        F.read_kitti_depth(tmp_path / "missing.png")


def test_crops_match_documented_boxes():
    m = crop_mask((480, 640), "eigen")
    assert m.sum() == (471 - 45) * (601 - 41) and m[45, 41] and not m[44, 41] and not m[471, 600]
    h, w = 375, 1242
    g = crop_mask((h, w), "garg")
    t, b, l, r = int(0.40810811 * h), int(0.99189189 * h), int(0.03594771 * w), int(0.96405229 * w)
    assert (t, b, l, r) == (153, 371, 44, 1197)
    assert g.sum() == (b - t) * (r - l) and g[t, l] and not g[t - 1, l]
    kb = crop_mask((h, w), "kb")
    assert kb.sum() == 352 * 1216 and kb[h - 352, 13] and not kb[h - 353, 13] and not kb[h - 1, 12]
    bts = crop_mask((h, w), "kb+garg_bts")  # BTS: the full frame's Garg box, inside the window
    np.testing.assert_array_equal(bts, kb & g)
    valid = np.ones((h, w), bool)
    valid[200, 100] = False
    out = apply_eval_crop(valid, "garg")
    assert not out[200, 100] and out.sum() == g.sum() - 1
    arr = np.arange(h * w).reshape(h, w)
    c = kb_crop(arr)
    assert c.shape == (352, 1216) and c[0, 0] == arr[23, 13]
    assert kb_crop(np.zeros((h, w, 3))).shape == (352, 1216, 3)
    with pytest.raises(DataError, match="352x1216"):
        kb_crop(np.zeros((100, 100)))
    with pytest.raises(ConfigError, match="crop"):
        crop_mask((10, 10), "center")


def test_crop_on_torch_batch():
    torch = pytest.importorskip("torch")
    v = torch.ones(2, 480, 640, dtype=torch.bool)
    out = apply_eval_crop(v, "eigen")
    assert isinstance(out, torch.Tensor) and int(out[0].sum()) == (471 - 45) * (601 - 41)
