"""Training image sources: folder: (indexed once), list:, wds: (WebDataset shards), and `dabench data shard`."""
from __future__ import annotations

import io
import json
import os
import tarfile
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from dabench.data import sources as S
from dabench.errors import ConfigError, DataError, MissingFileError


def _jpeg(rng, h=20, w=28) -> bytes:
    import cv2

    ok, buf = cv2.imencode(".jpg", rng.integers(0, 255, (h, w, 3), dtype=np.uint8))
    return buf.tobytes()


@pytest.fixture
def folder(tmp_path):
    rng = np.random.default_rng(0)
    root = tmp_path / "imgs"
    for rel in ("b/2.jpg", "a/1.jpg", "a/0.jpg", "c.jpg"):
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_bytes(_jpeg(rng))
    (root / "notes.txt").write_text("not an image")
    return root


def test_folder_index_is_written_once_and_then_read(folder, monkeypatch):
    ds = S.build_image_source(f"folder:{folder}")
    assert [ds[i]["name"] for i in range(len(ds))] == ["a/0.jpg", "a/1.jpg", "b/2.jpg", "c.jpg"]
    index = folder / ".dabench-index"
    assert index.read_text().splitlines()[0] == "# dabench-index/1 4"
    # a second start does not walk the tree
    monkeypatch.setattr(Path, "rglob", lambda *a, **k: pytest.fail("walked the tree again"))
    again = S.FolderImages(folder, limit=2)
    assert again.names == ["a/0.jpg", "a/1.jpg"]
    np.testing.assert_array_equal(again[1]["image"], ds[1]["image"])


def test_folder_index_cannot_lead_outside_and_readonly_folders_use_the_cache(folder, monkeypatch):
    (folder / ".dabench-index").write_text("# dabench-index/1 1\n../../etc/passwd\n")
    with pytest.raises(DataError, match="relative path inside"):
        S.FolderImages(folder)
    (folder / ".dabench-index").write_text("# dabench-index/1 3\na/0.jpg\n")
    with pytest.raises(DataError, match="truncated"):
        S.FolderImages(folder)
    (folder / ".dabench-index").unlink()
    # a folder this process may not write to (tests may run as root, so pretend): the index goes to the cache
    real_access = os.access
    monkeypatch.setattr(S.os, "access", lambda p, mode: False if Path(p) == folder else real_access(p, mode))
    ds = S.FolderImages(folder)
    assert len(ds) == 4 and not (folder / ".dabench-index").exists()
    assert ds.listing.is_file() and "folder-index" in str(ds.listing)
    assert S.FolderImages(folder).names == ds.names


def test_list_source_resolves_relative_to_the_list_and_refuses_escapes(folder, tmp_path):
    lst = folder / "train.txt"
    lst.write_text("# two images\nc.jpg\n\na/1.jpg\n")
    ds = S.build_image_source(f"list:{lst}")
    assert len(ds) == 2 and ds[0]["name"] == "c.jpg" and ds[0]["image"].shape == (20, 28, 3)
    bad = folder / "bad.txt"
    bad.write_text("../outside.jpg\n")
    with pytest.raises(DataError, match="inside"):
        S.build_image_source(f"list:{bad}")
    with pytest.raises(MissingFileError):
        S.build_image_source(f"list:{folder / 'nope.txt'}")
    with pytest.raises(ConfigError):
        S.build_image_source("tar:/x")


def test_data_shard_cli_writes_shards_that_read_back_identically(folder, tmp_path):
    from dabench.cli import app

    out = tmp_path / "shards"
    r = CliRunner().invoke(app, ["data", "shard", f"folder:{folder}", "--out", str(out), "--maxcount", "3"])
    assert r.exit_code == 0, r.output
    assert sorted(p.name for p in out.glob("*.tar")) == ["shard-000000.tar", "shard-000001.tar"]
    ref = S.FolderImages(folder)
    ds = S.build_image_source(f"wds:{out}/shard-{{000000..000001}}.tar")
    assert len(ds) == 4
    for i in range(4):  # JPEG inputs are copied byte for byte: identical pixels, same order
        np.testing.assert_array_equal(ds[i]["image"], ref[i]["image"])
    # the member index is cached: a second open does not re-scan the tars
    again = S.WdsImages(f"{out}/shard-{{000000..000001}}.tar", limit=3)
    assert len(again) == 3
    r = CliRunner().invoke(app, ["data", "shard", f"folder:{folder}", "--out", str(out)])
    assert r.exit_code == 2 and "empty" in r.output


def test_wds_labelled_sample_and_bad_input(tmp_path, monkeypatch):
    rng = np.random.default_rng(1)
    depth = rng.uniform(1, 5, (20, 28)).astype(np.float32)
    depth[0, 0] = 0
    buf = io.BytesIO()
    np.save(buf, depth)
    shard = tmp_path / "lab-0.tar"
    with tarfile.open(shard, "w") as tf:
        for name, data in (("s0.jpg", _jpeg(rng)), ("s0.depth.npy", buf.getvalue()), ("s0.json", b"{}"),
                           ("meta.json", b"{}")):
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tf.addfile(info, io.BytesIO(data))
    ds = S.build_image_source(f"wds:{shard}")
    assert len(ds) == 1  # the metadata-only sample is not a training sample
    s = ds[0]
    np.testing.assert_array_equal(s["depth"], np.where(depth > 0, depth, 0))
    assert not s["valid"][0, 0] and s["valid"].sum() == depth.size - 1
    monkeypatch.setenv("DABENCH_MAX_PIXELS", "100")
    with pytest.raises(DataError, match="megapixel cap"):
        ds[0]
    with pytest.raises(MissingFileError, match="does not exist"):
        S.build_image_source(f"wds:{tmp_path}/lab-{{0..1}}.tar")
    (tmp_path / "junk.tar").write_bytes(b"not a tar at all" * 100)
    with pytest.raises(DataError, match="tar"):
        S.build_image_source(f"wds:{tmp_path}/junk.tar")


def test_pseudo_labels_stream_from_wds_and_are_float16(folder, tmp_path):
    import torch
    from safetensors.torch import load_file

    from dabench.train import run_stage
    from dabench.train.config import load_config
    from dabench.train.pseudo_label import PseudoLabels

    S.write_shards(S.FolderImages(folder), tmp_path / "sh", maxcount=2)
    cfg = load_config(preset="smoke", overrides={
        "data.unlabelled": [{"name": f"wds:{tmp_path}/sh/shard-{{000000..000001}}.tar"}],
        "pseudo_label.shard_size": 3, "pseudo_label.batch_size": 2, "teacher.steps": 1, "data.num_workers": 1})
    run_stage("teacher", cfg, tmp_path / "teacher")
    run_stage("pseudo-label", cfg, tmp_path / "pl", teacher=tmp_path / "teacher" / "final.safetensors")
    idx = json.loads((tmp_path / "pl" / "index.json").read_text())
    assert idx["complete"] and idx["num_images"] == 4 and idx["dtype"] == "float16"
    shard0 = load_file(str(tmp_path / "pl" / "shard_00000.safetensors"))
    assert sorted(shard0) == ["0", "1", "2"] and all(v.dtype == torch.float16 for v in shard0.values())
    labels = PseudoLabels(tmp_path / "pl")
    assert labels[3].dtype == torch.float32 and tuple(labels[3].shape) == (20, 28)


def test_fp16_labels_keep_their_shape_and_never_overflow():
    from dabench.train.pseudo_label import to_fp16_label

    p = np.array([[1e6, 5e5], [1.0, 0.0]], dtype=np.float32)
    t = to_fp16_label(p, 0)
    assert t.dtype.itemsize == 2 and bool(t.isfinite().all())
    ratio = t.float().numpy() / p.clip(1e-9)
    assert np.allclose(ratio[0], ratio[0, 0], rtol=1e-3)  # divided by one power of two: relative values kept
    small = np.array([[0.5, 2.0]], dtype=np.float32)
    np.testing.assert_array_equal(to_fp16_label(small, 0).float().numpy(), small)


def test_hostile_lists_indexes_shards_and_shard_outputs(folder, tmp_path):
    """Binary list/index files, a tar member declaring more bytes than the shard holds, and `data shard`
    --out that is a file, the input folder itself, or a non-empty folder: one clear error each."""
    (tmp_path / "bin.list").write_bytes(b"\xff\xfe\x00bad\n")
    with pytest.raises(DataError, match="not UTF-8"):
        S.build_image_source(f"list:{tmp_path / 'bin.list'}")
    (folder / ".dabench-index").write_bytes(b"\xff\xfe\x00\n")
    with pytest.raises(DataError, match="not UTF-8"):
        S.build_image_source(f"folder:{folder}")
    (folder / ".dabench-index").unlink()

    info = tarfile.TarInfo("000.jpg")
    info.size = 10 ** 12  # declared, not present: reading it would allocate a terabyte
    buf = io.BytesIO()
    buf.write(info.tobuf(format=tarfile.GNU_FORMAT))
    buf.write(b"\0" * 1024)
    (tmp_path / "huge.tar").write_bytes(buf.getvalue())
    with pytest.raises(DataError, match="past the file's end"):
        S.build_image_source(f"wds:{tmp_path / 'huge.tar'}")

    src = S.FolderImages(folder)
    with pytest.raises(ConfigError, match="is a file"):
        S.write_shards(src, tmp_path / "bin.list")
    with pytest.raises(ConfigError, match="inside the input folder"):
        S.write_shards(src, folder)
    with pytest.raises(ConfigError, match="inside the input folder"):
        S.write_shards(src, folder / "shards")
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "keep.txt").write_text("mine")
    with pytest.raises(ConfigError, match="not empty"):
        S.write_shards(src, tmp_path / "full")
    assert sorted(p.name for p in folder.iterdir()) == [".dabench-index", "a", "b", "c.jpg", "notes.txt"]
