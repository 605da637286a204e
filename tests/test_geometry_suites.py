"""The moge and boundary suites on the built-in synthetic world: the synthetic ground truth (exact K,
point maps, instances), the outputs contract, and records holding every level a model admits."""
from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from dabench.data.synthetic import SyntheticWorld, point_map
from dabench.errors import ConfigError
from dabench.eval.geometry import boundary_depth, sample_ground_truth
from dabench.eval.suites import Protocol
from dabench.metrics import geometry as geo
from dabench.models.outputs import declared_outputs, moge_prediction, normalized_intrinsics


@pytest.fixture(scope="module")
def sample():
    return SyntheticWorld("indoor", (40, 52), cache_dir=False).sample(3)


def test_synthetic_world_writes_exact_geometry(sample):
    K = sample["intrinsics"].astype(np.float64)
    assert sample["sharp_boundary"] is True
    # the point map is the renderer's ray scaled by the planar depth: projecting it back gives the pixel
    v = sample["valid"]
    p = sample["points"][v].astype(np.float64)
    ii, jj = np.nonzero(v)
    assert np.allclose(K[0, 0] * p[:, 0] / p[:, 2] + K[0, 2], jj, atol=1e-3)
    assert np.allclose(K[1, 1] * p[:, 1] / p[:, 2] + K[1, 2], ii, atol=1e-3)
    assert np.array_equal(p[:, 2], sample["depth"][v].astype(np.float64))
    inst, n_planes = sample["instances"], int(sample["n_planes"])
    assert inst.shape == sample["depth"].shape and (inst[~sample["sky"]] >= 0).all()
    assert (inst >= n_planes).any()  # some box or ball in view


def test_ground_truth_and_prediction_keys(sample):
    proto = Protocol(min_depth=0.5, max_depth=10.0)
    gt = sample_ground_truth(sample, {"metric_depth": True}, proto)
    h, w = sample["depth"].shape
    K = sample["intrinsics"].astype(np.float64)
    assert gt["has_sharp_boundary"] and gt["is_metric"]
    assert np.allclose(gt["intrinsics"], [[K[0, 0] / w, 0, (K[0, 2] + 0.5) / w], [0, K[1, 1] / h, (K[1, 2] + 0.5) / h],
                                          [0, 0, 1]])
    assert gt["intrinsics"][0, 2] == pytest.approx(0.5)  # centred principal point
    assert set(gt["segmentation_labels"].values()) == set(np.unique(sample["instances"][gt["depth_mask"]]).tolist())
    # a disparity-only model: one depth level, nothing else
    pred = moge_prediction({"disparity": np.ones((h, w))}, {"disparity": "affine_invariant"}, (h, w))
    assert set(pred) == {"disparity_affine_invariant"}
    # metric depth + its K (Depth Pro): metric points from the depth unprojected through the predicted K
    pred = moge_prediction({"depth": sample["depth"], "intrinsics": K}, {"depth": "metric", "intrinsics": "metric"},
                           (h, w))
    assert set(pred) == {"depth_metric", "points_metric", "intrinsics"}
    assert np.allclose(pred["points_metric"], point_map(sample["depth"], K))
    assert np.allclose(pred["intrinsics"], normalized_intrinsics(K, (h, w)))
    out = geo.compute_levels({k: torch.from_numpy(np.asarray(v)) for k, v in pred.items()},
                             {k: (torch.from_numpy(v) if isinstance(v, np.ndarray) else v) for k, v in gt.items()})
    assert out["depth_metric"]["rel"] == pytest.approx(0, abs=1e-6) and out["points_metric"]["delta1"] == 1.0
    assert out["fov_x"]["mae"] == pytest.approx(0, abs=1e-4)
    assert out["local_points"]["rel"] == pytest.approx(0, abs=1e-5)
    assert out["boundary"]["radius1_f1"] == pytest.approx(1.0)


def test_declared_outputs_contract():
    class M(torch.nn.Module):
        output_space = "disparity"

    assert declared_outputs(M()) == {"disparity": "affine_invariant"}
    m = M()
    m.output_space, m.is_metric = "depth", True
    assert declared_outputs(m) == {"depth": "metric"}
    m.geometry_outputs = {"points": "affine_invariant", "intrinsics": "metric"}
    assert declared_outputs(m) == {"points": "affine_invariant", "intrinsics": "metric"}
    for bad in ({"depth": "relative"}, {"normals": "metric"}, {"intrinsics": "metric"},
                {"depth": "metric", "intrinsics": "scale_invariant"}):
        m.geometry_outputs = bad
        with pytest.raises(ConfigError):
            declared_outputs(m)


def test_boundary_depth_fits_affine_disparity(sample):
    gt = sample_ground_truth(sample, {}, Protocol(min_depth=0.5, max_depth=10.0))
    disp = np.where(gt["depth_mask"], 1.0 / np.maximum(gt["depth"], 1e-6), 0.0) * 4.0 + 0.3
    d = boundary_depth({"disparity_affine_invariant": disp.astype(np.float64)},
                       {**gt, "depth": gt["depth"].astype(np.float64)})
    m = gt["depth_mask"]
    assert np.allclose(d[m], gt["depth"][m], rtol=1e-6)
    assert geo.si_boundary_f1(d, gt["depth"], mask=m) == pytest.approx(
        geo.si_boundary_f1(gt["depth"], gt["depth"], mask=m))


def test_mask_keeps_reference_on_dense_ground_truth():
    rng = np.random.default_rng(0)
    g = rng.uniform(1, 5, (12, 16))
    p = g * np.exp(rng.normal(0, 0.2, g.shape))
    assert geo.si_boundary_f1(p, g, mask=np.ones(g.shape, bool)) == geo.si_boundary_f1(p, g)
    m = np.ones(g.shape, bool)
    m[:, 8:] = False  # the right half invalid: only pairs inside the left half count
    assert geo.si_boundary_f1(p, g, mask=m) == pytest.approx(geo.si_boundary_f1(p[:, :8], g[:, :8]))


@pytest.mark.parametrize("suite,model,want", [
    ("moge", "horizon_prior", {"disparity_affine_invariant_rel", "disparity_affine_invariant_delta1",
                               "boundary_radius1_f1", "boundary_radius2_f1", "boundary_radius3_f1"}),
    ("boundary", "constant", {"si_boundary_f1", "si_boundary_recall"}),
])
def test_suite_runs_on_the_synthetic_world(tmp_path, monkeypatch, suite, model, want):
    from dabench.eval.runner import run_suite
    from dabench.tasks import EvalRequest

    monkeypatch.setenv("DABENCH_HOME", str(tmp_path))
    monkeypatch.delenv("DABENCH_DATA", raising=False)
    request = EvalRequest(datasets=["synthetic-indoor"], limit=2, results_dir=tmp_path / "r", show_progress=False,
                          bootstrap=0)
    records = run_suite(suite, request, models=[model])
    (rec,) = records
    assert rec["status"] == "ok" and rec["samples"]["used"] == 2
    assert set(rec["metrics"]) == want  # only the levels a disparity model admits; none filled with 0
    stored = json.loads(rec.path.read_text())
    assert stored["metrics"] == rec["metrics"]
    if suite == "moge":
        assert stored["levels"]["disparity_affine_invariant"]["rel"] == rec["metrics"]["disparity_affine_invariant_rel"]
        assert stored["geometry_outputs"] == {"disparity": "affine_invariant"}
        assert "points_affine_invariant" not in stored["levels"]
    if model == "constant":  # a flat prediction has no edge at all
        assert rec["metrics"]["si_boundary_f1"] == 0.0 and rec["metrics"]["si_boundary_recall"] == 0.0


def test_colmap_intrinsics_hand_written(tmp_path):
    from dabench.data.cameras import read_colmap_intrinsics
    from dabench.errors import DataError

    (tmp_path / "cameras.txt").write_text("# Camera list\n0 PINHOLE 6048 4032 3410.34 3409.98 3043.68 2014.39\n"
                                          "1 SIMPLE_RADIAL 640 480 500.0 320.0 240.0 0.01\n")
    (tmp_path / "images.txt").write_text("# Image list\n5 1 0 0 0 0 0 0 0 dslr_images/DSC_0286.JPG\n1.0 2.0 -1\n"
                                         "6 1 0 0 0 0 0 0 1 dslr_images/DSC_0287.JPG\n\n")
    K = read_colmap_intrinsics(tmp_path / "cameras.txt", tmp_path / "images.txt")
    # COLMAP puts the first pixel's centre at 0.5: dabench's K at 0
    assert np.allclose(K["dslr_images/DSC_0286.JPG"], [[3410.34, 0, 3043.18], [0, 3409.98, 2013.89], [0, 0, 1]])
    assert np.allclose(K["dslr_images/DSC_0287.JPG"], [[500, 0, 319.5], [0, 500, 239.5], [0, 0, 1]])
    (tmp_path / "images.txt").write_text("5 1 0 0 0 0 0 0 9 dslr_images/x.JPG\n\n")
    with pytest.raises(DataError, match="camera 9"):
        read_colmap_intrinsics(tmp_path / "cameras.txt", tmp_path / "images.txt")
