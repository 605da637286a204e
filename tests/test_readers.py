"""Every registered dataset reader (``dabench.data.datasets.READERS``) reads a tiny frame written in
its dataset's real on-disk layout (tests/reader_layouts.py) into a well-formed sample: the keys,
shapes and dtypes of the sample contract, depth > 0 exactly where valid and inside the card's range,
and the values the files hold. A reader registered without a layout writer fails here."""
from __future__ import annotations

import numpy as np
import pytest

from dabench.data import build_dataset, load_card
from dabench.data.datasets import READERS
from reader_layouts import LAYOUTS, Cards


def test_every_layout_writer_names_a_registered_reader():
    assert set(LAYOUTS) <= set(READERS.names()), set(LAYOUTS) - set(READERS.names())


@pytest.mark.parametrize("reader", READERS.names())
def test_registered_reader_reads_its_real_layout(reader, tmp_path, monkeypatch):
    assert reader in LAYOUTS, (f"dataset reader {reader!r} is registered but tests/reader_layouts.py has no "
                               "writer of its on-disk layout: add one to LAYOUTS")
    cards = Cards.copy(tmp_path / "repo", monkeypatch)
    data = tmp_path / "data"
    data.mkdir()
    frame = LAYOUTS[reader](data, cards)
    card = load_card(frame.dataset)
    assert card["reader"] == reader
    ds = build_dataset(frame.dataset, data_root=data, limit=1, **frame.options)
    assert len(ds) == 1 and ds.skipped_missing == 0
    s = ds[0]
    assert isinstance(s["name"], str) and s["name"]
    image = s["image"]
    assert image.dtype == np.uint8 and image.ndim == 3 and image.shape[2] == 3
    hw = image.shape[:2]

    if frame.pairs is not None:  # an ordinal set: point pairs instead of a depth map
        assert set(s) >= {"image", "pairs", "closer", "scene", "name"}
        pairs, closer = frame.pairs[s["name"]]
        assert s["pairs"].dtype == np.int64 and s["closer"].dtype == np.int64
        np.testing.assert_array_equal(s["pairs"], pairs)
        np.testing.assert_array_equal(s["closer"], closer)
        assert s["scene"] == s["name"].split("/")[0]
        return

    assert set(s) >= {"image", "depth", "valid", "name"}
    depth, valid = s["depth"], s["valid"]
    assert depth.dtype == np.float32 and depth.shape == hw
    assert valid.dtype == bool and valid.shape == hw and valid.any()
    assert np.isfinite(depth).all() and (depth[valid] > 0).all() and (depth[~valid] == 0).all()
    lo, hi = float(card["min_depth"]), float(card["max_depth"])
    assert (depth[valid] >= lo).all() and (depth[valid] <= hi).all()
    if frame.valid is not None:
        with np.errstate(invalid="ignore"):
            in_range = (frame.depth >= lo) & (frame.depth <= hi)
        np.testing.assert_array_equal(valid, frame.valid & in_range)
        np.testing.assert_allclose(depth[valid], frame.depth[valid], rtol=1e-5)
    if frame.sky is not None:
        assert s["sky"].dtype == bool
        np.testing.assert_array_equal(s["sky"], frame.sky)
    if "intrinsics" in s:
        K = s["intrinsics"]
        assert K.dtype == np.float32 and K.shape == (3, 3)
        assert K[0, 0] > 0 and K[1, 1] > 0 and np.array_equal(K[2], [0, 0, 1])
    if frame.intrinsics is not None:
        np.testing.assert_allclose(s["intrinsics"], frame.intrinsics, rtol=1e-6)
