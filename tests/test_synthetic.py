"""The synthetic world: determinism, exact geometry against analytic references, class coverage."""
from __future__ import annotations

import math

import numpy as np
import pytest

from dabench.data import build_dataset, dataset_available
from dabench.data.synthetic import (CLASS_ID, FAMILIES, SEMANTIC_CLASSES, Camera, SyntheticWorld, make_scene,
                                    render_batch, split_seed)
from dabench.errors import ConfigError

SIZE = (42, 56)


def _backproject(depth, K, cam):
    """World points of every pixel from planar depth, intrinsics and the camera pose (independent of
    the renderer's ray set-up: K is inverted with numpy)."""
    h, w = depth.shape
    jj, ii = np.meshgrid(np.arange(w), np.arange(h))
    pix = np.stack([jj, ii, np.ones_like(jj)], -1).astype(np.float64)
    cam_pts = (pix @ np.linalg.inv(K).T) * depth[..., None]
    R = np.stack([cam.right, cam.down, cam.forward], 1)  # columns: camera axes in world frame
    return cam_pts @ R.T + cam.position


@pytest.mark.parametrize("family", ["indoor", "outdoor"])
def test_deterministic_and_seed_dependent(family):
    a = render_batch(family, [3, 4], SIZE)
    b = render_batch(family, [3, 4], SIZE)
    for k in a:
        np.testing.assert_array_equal(a[k], b[k])
    assert not np.array_equal(a["image"][0], a["image"][1])
    assert not np.array_equal(a["depth"][0], a["depth"][1])


@pytest.mark.parametrize("family", ["indoor", "outdoor"])
def test_batch_contract(family):
    b = render_batch(family, [0, 1, 2], SIZE)
    assert b["image"].shape == (3, *SIZE, 3) and b["image"].dtype == np.uint8
    assert b["depth"].shape == (3, *SIZE) and b["depth"].dtype == np.float32
    assert b["valid"].dtype == bool and b["sky"].dtype == bool and b["labels"].dtype == np.int64
    assert b["intrinsics"].shape == (3, 3, 3)
    spec = FAMILIES[family]
    d, v = b["depth"], b["valid"]
    assert np.isfinite(d).all()
    assert (d[v] >= spec.min_depth).all() and (d[v] <= spec.max_depth).all()
    assert (d[~v] == 0).all()
    assert b["labels"].min() >= 0 and b["labels"].max() < len(SEMANTIC_CLASSES)
    # sky has no depth and is labelled sky
    assert not (b["sky"] & v).any()
    np.testing.assert_array_equal(b["sky"], b["labels"] == CLASS_ID["sky"])


def test_floor_depth_is_analytic():
    """A level camera at height h: the floor at image row i (below the centre row) is at planar
    depth h * fy / (i - cy) — checked on a hand-built camera, not the renderer's own scene."""
    from dabench.data.synthetic import render_scene

    scene = make_scene("indoor", 7)
    scene.boxes, scene.spheres = [], []
    for plane in scene.planes:  # push the walls far away so many rows see the floor
        if plane["axis"] != 1:
            plane["offset"] = 1000.0 * np.sign(plane["offset"])
    h_cam = 1.3
    scene.camera = Camera.from_angles([0.0, h_cam, 0.0], yaw_deg=0.0, pitch_deg=0.0, roll_deg=0.0, hfov_deg=60.0)
    out = {k: v.numpy() for k, v in render_scene(scene, (48, 64)).items()}
    fy = 32 / math.tan(math.radians(30))
    cy = (48 - 1) / 2
    floor = (out["labels"] == CLASS_ID["floor"]) & out["valid"]
    rows = np.nonzero(floor.any(1))[0]
    assert len(rows) > 5 and rows.min() > cy
    for i in rows:
        expected = h_cam * fy / (i - cy)
        got = out["depth"][i][floor[i]]
        np.testing.assert_allclose(got, expected, rtol=1e-5)
    np.testing.assert_allclose(out["intrinsics"][1, 1], fy, rtol=1e-6)


@pytest.mark.parametrize("family", ["indoor", "outdoor"])
def test_depth_label_consistency(family):
    """Back-projected hits lie on the surface their label names: floor/road at y = 0, walls on the
    room planes, sphere pixels at radius distance from some sphere centre."""
    world = SyntheticWorld(family, SIZE)
    for seed in range(3):
        scene = world.scene(seed)
        s = world.sample(seed)
        K = scene.camera.intrinsics(SIZE)
        pts = _backproject(s["depth"].astype(np.float64), K, scene.camera)
        lab, v = s["labels"], s["valid"]
        ground = np.isin(lab, [CLASS_ID[c] for c in ("floor", "road", "sidewalk", "ground")]) & v
        assert ground.any()
        np.testing.assert_allclose(pts[ground][:, 1], 0.0, atol=2e-4 * scene.params.get("width", 80) * 10)
        if family == "indoor":
            wall = (lab == CLASS_ID["wall"]) & v
            hw = scene.params["width"] / 2
            on_plane = (np.isclose(np.abs(pts[wall][:, 0]), hw, atol=1e-3)
                        | np.isclose(pts[wall][:, 2], scene.params["depth_ahead"], atol=1e-3)
                        | np.isclose(pts[wall][:, 2], -scene.params["depth_behind"], atol=1e-3))
            assert on_plane.all()
            ceil = (lab == CLASS_ID["ceiling"]) & v
            np.testing.assert_allclose(pts[ceil][:, 1], scene.params["height"], atol=1e-3)
        sph = (lab == CLASS_ID["sphere"]) & v
        if sph.any() and scene.spheres:
            c = np.array([x["centre"] for x in scene.spheres])
            r = np.array([x["radius"] for x in scene.spheres])
            dist = np.abs(np.linalg.norm(pts[sph][:, None] - c[None], axis=-1) - r[None]).min(1)
            assert dist.max() < 1e-3


def test_class_coverage():
    seen_in, seen_out = set(), set()
    seen_in |= set(np.unique(render_batch("indoor", range(6), SIZE)["labels"]).tolist())
    seen_out |= set(np.unique(render_batch("outdoor", range(6), SIZE)["labels"]).tolist())
    assert {CLASS_ID[c] for c in ("floor", "wall", "box")} <= seen_in
    assert {CLASS_ID[c] for c in ("road", "sidewalk", "building", "sky", "vegetation")} <= seen_out
    assert len(seen_in | seen_out) >= 9


def test_outdoor_sparse_lidar_subset():
    dense = render_batch("outdoor", [5], (96, 128))
    sparse = render_batch("outdoor", [5], (96, 128), sparse=True)
    assert sparse["valid"].sum() < dense["valid"].sum()
    assert not (sparse["valid"] & ~dense["valid"]).any()
    np.testing.assert_array_equal(sparse["depth"][sparse["valid"]], dense["depth"][sparse["valid"]])
    np.testing.assert_array_equal(sparse["image"], dense["image"])


def test_registered_splits_disjoint_and_override():
    seeds = {sp: {split_seed(sp, 0, i) for i in range(50)} for sp in ("train", "val", "test")}
    assert not (seeds["train"] & seeds["val"]) and not (seeds["val"] & seeds["test"])
    tr = build_dataset("synthetic-indoor", "train", num_samples=2, size=SIZE)
    te = build_dataset("synthetic-indoor", "test", num_samples=2, size=SIZE)
    assert len(tr) == 2 and tr.skipped_missing == 0 and tr.card["name"] == "synthetic-indoor"
    assert not np.array_equal(tr[0]["image"], te[0]["image"])
    assert tr[0]["name"] != te[0]["name"]
    other = build_dataset("synthetic-indoor", "train", num_samples=2, size=SIZE, seed=1)
    assert not np.array_equal(tr[0]["image"], other[0]["image"])
    assert len(build_dataset("synthetic-outdoor", limit=3, size=SIZE)) == 3
    assert dataset_available("synthetic-outdoor")
    s = build_dataset("synthetic-outdoor", "val", num_samples=1, size=SIZE)[0]
    assert s["sky"].any() and s["image"].shape == (*SIZE, 3)


def test_bad_arguments():
    with pytest.raises(ConfigError, match="family"):
        render_batch("underwater", [0], SIZE)
    with pytest.raises(ConfigError, match="size"):
        render_batch("indoor", [0], (2, 2))
    with pytest.raises(ConfigError, match="split"):
        build_dataset("synthetic-indoor", "holdout")
    with pytest.raises(ConfigError, match="unknown option"):
        build_dataset("synthetic-indoor", colour="red")


def test_vectorised_and_culled_paths_agree(monkeypatch):
    """All-objects-at-once and per-object (projected-rectangle culled) intersection give identical
    images, depth and labels, shadows included."""
    import dabench.data.synthetic as S

    monkeypatch.setitem(S.VECTORISE_LIMIT, "cpu", 10 ** 12)
    a = render_batch("outdoor", [11], SIZE)
    b_in = render_batch("indoor", [11], SIZE)
    monkeypatch.setitem(S.VECTORISE_LIMIT, "cpu", 0)
    b = render_batch("outdoor", [11], SIZE)
    a_in = render_batch("indoor", [11], SIZE)
    for k in ("image", "depth", "valid", "labels"):
        np.testing.assert_array_equal(a[k], b[k])
        np.testing.assert_array_equal(a_in[k], b_in[k])


def test_render_cache_is_bit_identical_and_used_through_the_env(tmp_path, monkeypatch):
    from dabench.data.synthetic import CACHE_ENV, RenderCache, SyntheticDataset, render_batch

    seeds = [3, 11]
    plain = render_batch("outdoor", seeds, (24, 32), cache_dir=False)
    first = render_batch("outdoor", seeds, (24, 32), cache_dir=tmp_path)  # renders and stores
    cache = RenderCache(tmp_path)
    for s in seeds:
        assert cache.path("outdoor", s, (24, 32), False).is_file()
    again = render_batch("outdoor", seeds, (24, 32), cache_dir=tmp_path)  # read back
    for k in plain:
        assert np.array_equal(plain[k], first[k]) and np.array_equal(plain[k], again[k]), k
        assert plain[k].dtype == again[k].dtype, k
    # a damaged entry is rendered again, not trusted
    cache.path("outdoor", 3, (24, 32), False).write_bytes(b"not a zip")
    healed = render_batch("outdoor", seeds, (24, 32), cache_dir=tmp_path)
    assert np.array_equal(healed["image"], plain["image"])
    # the dataset path (what training reads) picks the cache up from the environment
    monkeypatch.setenv(CACHE_ENV, str(tmp_path / "env"))
    ds = SyntheticDataset("indoor", 2, (24, 32), split="train")
    a = ds[1]
    assert RenderCache(tmp_path / "env").path("indoor", ds.scene_seed(1), (24, 32), False).is_file()
    b = ds[1]
    monkeypatch.delenv(CACHE_ENV)
    c = SyntheticDataset("indoor", 2, (24, 32), split="train")[1]
    for k in ("image", "depth", "valid", "labels", "sky", "intrinsics"):
        assert np.array_equal(a[k], b[k]) and np.array_equal(a[k], c[k]), k
