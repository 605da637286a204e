"""DA-2K: the reader of annotations.json (hostile input), pair_accuracy against hand-computed cases,
the da2k suite on a tiny fixture in the real layout, the synthetic fallback, the published table."""
from __future__ import annotations

import json
import os

import numpy as np
import pytest
from typer.testing import CliRunner

from dabench.cli import app
from dabench.data.da2k import Da2kDataset, SyntheticPairs, read_annotations
from dabench.errors import DataError
from dabench.metrics.ordinal import pairs_correct
from reader_layouts import da2k_tree

H, W = 28, 42  # multiples of 14: with --input-size 28 the network sees the image unresized


def test_pairs_correct_by_hand():
    disp = np.array([[1.0, 2.0, 2.0], [3.0, 0.5, 1.0]])
    pairs = [(1, 0, 0, 0), (0, 0, 1, 0), (0, 1, 0, 2), (1, 1, 1, 2)]
    closer = [0, 0, 0, 1]
    # 3 > 1 right; 1 < 3 wrong; 2 == 2 tie: wrong; point 2 closer, 1.0 > 0.5 right
    np.testing.assert_array_equal(pairs_correct(disp, pairs, closer, "disparity"), [True, False, False, True])
    # the same map read as depth: smaller is closer
    np.testing.assert_array_equal(pairs_correct(disp, pairs, closer, "depth"), [False, True, False, False])
    with pytest.raises(DataError, match="outside"):
        pairs_correct(disp, [(2, 0, 0, 0)], [0], "disparity")


def _write_fixture(root):
    """DA-2K's layout (tests/reader_layouts.py): <root>/da2k/annotations.json + <scene>/<image>."""
    da2k_tree(root, H, W)
    return root / "da2k"


def _run(args):
    return CliRunner().invoke(app, args, env={"COLUMNS": "200"})


def test_da2k_suite_on_fixture_hand_computed(tmp_path):
    _write_fixture(tmp_path)
    out = tmp_path / "res"
    res = _run(["run", "--suite", "da2k", "--model", "horizon_prior,constant", "--data-root", str(tmp_path),
                "--input-size", "28", "--results", str(out)])
    assert res.exit_code == 0, res.output
    rec = json.loads((out / "da2k" / "horizon_prior" / "da2k.json").read_text())
    # horizon_prior: disparity ((row + .5) - 14) / 14 below the middle row, 0.01 above, constant along rows.
    # indoor: row 25 vs 16 right; 16 vs 25 wrong; row 3 vs row 3 a tie, wrong -> 1/3.
    # outdoor: row 27 vs 0 right; point 2 (row 26) closer than row 20, larger disparity: right -> 2/2.
    assert rec["metrics"]["pair_accuracy"] == pytest.approx(3 / 5)
    assert rec["per_scene"]["indoor"] == {"pair_accuracy": pytest.approx(1 / 3), "pairs": 3}
    assert rec["per_scene"]["outdoor"] == {"pair_accuracy": 1.0, "pairs": 2}
    assert rec["pairs"] == {"total": 5, "correct": 3} and rec["samples"]["used"] == 2
    assert rec["averaging"] == {"pair_accuracy": "pair"} and rec["higher_is_better"] == {"pair_accuracy": True}
    assert rec["protocol"]["input_size"] == 28 and rec["fallback_for"] is None
    assert "git_commit" in rec and rec["config"]["data_root"] == str(tmp_path)
    const = json.loads((out / "da2k" / "constant" / "da2k.json").read_text())
    assert const["metrics"]["pair_accuracy"] == 0.0  # every pair a tie: all wrong
    rows = (out / "da2k" / "horizon_prior" / "da2k.pairs.csv").read_text().splitlines()
    assert rows[0] == "name,pair,scene,correct" and len(rows) == 6


def test_da2k_falls_back_to_synthetic_pairs(tmp_path):
    res = _run(["run", "--suite", "da2k", "--model", "horizon_prior", "--limit", "2", "--input-size", "28",
                "--results", str(tmp_path)])
    assert res.exit_code == 0, res.output
    skipped = json.loads((tmp_path / "da2k" / "horizon_prior" / "da2k.partial.json").read_text())
    fb = json.loads((tmp_path / "da2k" / "horizon_prior" / "synthetic-outdoor.partial.json").read_text())
    assert skipped["status"] == "skipped" and fb["fallback_for"] == ["da2k"]
    assert fb["pairs"]["total"] == 16 and 0.0 <= fb["metrics"]["pair_accuracy"] <= 1.0


def test_synthetic_pairs_come_from_exact_depth():
    from dabench.data import build_dataset

    base = build_dataset("synthetic-indoor", split="test", limit=2)
    ds = SyntheticPairs(base, pairs_per_image=6, seed=3)
    for i in range(len(ds)):
        s, depth = ds[i], np.asarray(base[i]["depth"])
        assert s["pairs"].shape == (6, 4) and not s["closer"].any()
        near = depth[s["pairs"][:, 0], s["pairs"][:, 1]]
        far = depth[s["pairs"][:, 2], s["pairs"][:, 3]]
        assert (far >= 1.05 * near).all()  # point 1 is closer, clearly
        # the exact inverse depth ranks every pair right
        assert pairs_correct(1.0 / np.maximum(depth, 1e-6), s["pairs"], s["closer"], "disparity").all()
    np.testing.assert_array_equal(ds[0]["pairs"], SyntheticPairs(base, pairs_per_image=6, seed=3)[0]["pairs"])


@pytest.mark.parametrize("ann,phrase", [
    ({"/etc/passwd": [{"point1": [0, 0], "point2": [1, 1], "closer_point": "point1"}]}, "inside the dataset"),
    ({"indoor/../../x.png": [{"point1": [0, 0], "point2": [1, 1], "closer_point": "point1"}]}, "inside the dataset"),
    ({"a.png": [{"point1": [0, 0], "point2": [1, 1], "closer_point": "point1"}]}, "scene type"),
    ({"indoor/a.png": [{"point1": [0, -1], "point2": [1, 1], "closer_point": "point1"}]}, "non-negative integers"),
    ({"indoor/a.png": [{"point1": [0.5, 1], "point2": [1, 1], "closer_point": "point1"}]}, "non-negative integers"),
    ({"indoor/a.png": [{"point1": [True, 1], "point2": [1, 1], "closer_point": "point1"}]}, "non-negative integers"),
    ({"indoor/a.png": [{"point1": [0, 0], "point2": [1, 1], "closer_point": "point3"}]}, "closer_point"),
    ({"indoor/a.png": [{"point1": [0, 0]}]}, "expected"),
    ({"indoor/a.png": []}, "non-empty list"),
    ([1, 2], "JSON object"),
    ({"indoor/a.png": [{"point1": [10 ** 30, 1], "point2": [1, 1], "closer_point": "point1"}]},
     "non-negative integers"),  # overflowed int64 (a traceback) before
    ("[" * 100000 + "]" * 100000, "nested too deeply"),
])
def test_hostile_annotations_are_refused(tmp_path, ann, phrase):
    d = tmp_path / "da2k"
    d.mkdir()
    (d / "annotations.json").write_text(ann if isinstance(ann, str) else json.dumps(ann))
    with pytest.raises(DataError, match=phrase):
        read_annotations(d / "annotations.json", d)


def test_symlink_escape_point_outside_and_caps(tmp_path, monkeypatch):
    import dabench.data.da2k as da2k

    d = _write_fixture(tmp_path)
    outside = tmp_path / "secret"
    outside.mkdir()
    os.symlink(outside, d / "object")
    (d / "annotations.json").write_text(json.dumps(
        {"object/x.png": [{"point1": [0, 0], "point2": [1, 1], "closer_point": "point1"}]}))
    with pytest.raises(DataError, match="leaves the dataset folder"):
        read_annotations(d / "annotations.json", d)
    (d / "annotations.json").write_text(json.dumps(
        {"indoor/a.png": [{"point1": [H, 0], "point2": [1, 1], "closer_point": "point1"}]}))
    card = {"name": "da2k"}
    ds = Da2kDataset(card, "test", d, read_annotations(d / "annotations.json", d))
    with pytest.raises(DataError, match="outside its 28x42 image"):
        ds[0]
    monkeypatch.setenv("DABENCH_MAX_PIXELS", "100")
    with pytest.raises(DataError, match="megapixel cap"):
        da2k.read_capped_image(d / "indoor" / "a.png")
    monkeypatch.setattr(da2k, "MAX_ANNOTATION_BYTES", 10)
    with pytest.raises(DataError, match="refused"):
        read_annotations(d / "annotations.json", d)


def test_cli_bad_annotations_exit_2(tmp_path):
    d = _write_fixture(tmp_path)
    (d / "annotations.json").write_text("{not json")
    res = _run(["run", "--suite", "da2k", "--model", "constant", "--data-root", str(tmp_path),
                "--results", str(tmp_path / "r")])
    assert res.exit_code == 2 and "not valid UTF-8 JSON" in res.output


def test_table_with_published_shows_da2k_rows(tmp_path):
    res = _run(["table", "--suite", "da2k", "--with-published"])
    assert res.exit_code == 0, res.output
    assert "Depth Anything V2 ViT-L" in res.output and "97.1%" in res.output and "arXiv:2406.09414" in res.output


def test_data_check_counts_pairs_and_flags_missing_images(tmp_path):
    d = _write_fixture(tmp_path)
    res = _run(["data", "check", "da2k", "--data-root", str(tmp_path)])
    assert res.exit_code == 0 and "indoor" in res.output and "ok" in res.output
    (d / "outdoor" / "b.jpg").unlink()
    res = _run(["data", "check", "da2k", "--data-root", str(tmp_path)])
    assert res.exit_code == 1 and "missing" in res.output and "b.jpg" in res.output
