"""Trust boundaries: names that build paths stay inside their root, run folders that are
not dabench's are not overwritten, results get the user's umask, hostile files give clear errors."""
from __future__ import annotations

import json
import os
import stat

import pytest
from typer.testing import CliRunner

from cli_output import flat  # tests/ is on sys.path under pytest
from dabench.cli import app
from dabench.errors import ConfigError, DataError
from dabench.safety import OUT_MARKER, claim_out_dir, safe_join

runner = CliRunner()


def _invoke(args):
    res = runner.invoke(app, args, env={"COLUMNS": "80"})
    return res, flat(res.output)


def _files(root):
    return sorted(str(p.relative_to(root)) for p in root.rglob("*") if p.is_file())


# --------------------------------------------------------------------------------------------- safe_join
@pytest.mark.parametrize("name", ["..", ".", "", "a/b", "/etc/passwd", "a\\b", "x\x00y"])
def test_safe_join_refuses_names_that_leave_the_root(tmp_path, name):
    with pytest.raises(ConfigError):
        safe_join(tmp_path, name)


def test_safe_join_subdirs_and_symlinks(tmp_path):
    root = tmp_path / "root"
    (root / "scene").mkdir(parents=True)
    assert safe_join(root, "scene/0001.png", subdirs=True) == root / "scene" / "0001.png"
    with pytest.raises(ConfigError):
        safe_join(root, "scene/../../x", subdirs=True)
    (root / "out").symlink_to(tmp_path)  # a link inside the root that points out of it
    with pytest.raises(ConfigError, match="outside"):
        safe_join(root, "out", "x.json")
    with pytest.raises(DataError):
        safe_join(root, "..", error=DataError)


# --------------------------------------------------------------------------------------------- results store
@pytest.mark.parametrize("key", ["suite", "model", "dataset"])
def test_record_names_cannot_write_outside_the_results_folder(tmp_path, key):
    from dabench.results.store import write_record

    results = tmp_path / "results"
    rec = {"status": "ok", "suite": "s", "model": "m", "dataset": "d", "metrics": {"abs_rel": 0.1}, key: ".."}
    with pytest.raises(DataError, match=key):
        write_record(rec, results)
    assert _files(tmp_path) == []


def test_record_in_a_symlinked_folder_pointing_outside_is_refused(tmp_path):
    from dabench.results.store import write_record

    results, elsewhere = tmp_path / "results", tmp_path / "elsewhere"
    results.mkdir()
    elsewhere.mkdir()
    (results / "s").symlink_to(elsewhere)
    with pytest.raises(DataError, match="outside"):
        write_record({"status": "ok", "suite": "s", "model": "m", "dataset": "d", "metrics": {}}, results)
    assert _files(elsewhere) == []


def test_run_with_a_suite_named_dotdot_writes_nothing_outside_results(tmp_path):
    suite = tmp_path / "evil.yaml"
    suite.write_text("name: ..\ntask: relative\ndatasets: [synthetic-indoor]\n")
    results = tmp_path / "box" / "results"
    res, text = _invoke(["run", "--suite", str(suite), "--model", "constant", "--limit", "1",
                         "--results", str(results), "--no-cache"])
    assert res.exit_code == 2, res.output
    assert "'..'" in text
    assert _files(tmp_path) == ["evil.yaml"]


def test_update_baseline_refuses_a_record_named_dotdot(tmp_path):
    cur, base = tmp_path / "cur" / "s" / "m", tmp_path / "box" / "base"
    cur.mkdir(parents=True)
    rec = {"schema": "dabench.result/1", "status": "ok", "suite": "s", "model": "..", "dataset": "..",
           "metrics": {"abs_rel": 0.1}}
    (cur / "d.json").write_text(json.dumps(rec))
    res, text = _invoke(["regress", "--current", str(tmp_path / "cur"), "--baseline", str(base),
                         "--update-baseline"])
    assert res.exit_code == 2, res.output
    assert "record model '..'" in text
    assert not (tmp_path / "box").exists() or _files(tmp_path / "box") == []


def test_dataset_name_from_a_suite_cannot_read_outside_the_cards(tmp_path):
    from dabench.data import load_card

    with pytest.raises(ConfigError, match="cannot be used as a path"):
        load_card("../leaderboards/suites/zero-shot")


def test_prediction_cache_paths_stay_in_the_cache(tmp_path):
    from dabench.eval.cache import PredictionCache

    cache = PredictionCache(tmp_path / "cache")
    assert cache.path("ab" + "0" * 62).parent == tmp_path / "cache" / "ab"
    with pytest.raises(ConfigError):
        cache.path("../../../etc/x")


# --------------------------------------------------------------------------------------------- umask
@pytest.mark.parametrize("umask", [0o022, 0o002, 0o077])
def test_results_are_written_with_the_users_umask(tmp_path, umask):
    from dabench.results.store import write_record

    old = os.umask(umask)
    try:
        path = write_record({"status": "ok", "suite": "s", "model": "m", "dataset": "d", "metrics": {}}, tmp_path)
    finally:
        os.umask(old)
    assert stat.S_IMODE(path.stat().st_mode) == 0o666 & ~umask


# --------------------------------------------------------------------------------------------- run folders
def test_claim_out_dir_refuses_a_users_folder(tmp_path):
    user = tmp_path / "project"
    user.mkdir()
    (user / "config.py").write_text("mine")
    with pytest.raises(ConfigError, match="--force"):
        claim_out_dir(user, command="train teacher")
    assert claim_out_dir(user, command="train teacher", force=True) == user
    assert (user / OUT_MARKER).is_file() and (user / "config.py").read_text() == "mine"
    claim_out_dir(user, command="train teacher")  # now marked: a later run may continue in it
    new = claim_out_dir(tmp_path / "new" / "run", command="x")
    assert json.loads((new / OUT_MARKER).read_text())["created_by"] == "dabench"
    (tmp_path / "file").write_text("x")
    with pytest.raises(ConfigError, match="is a file"):
        claim_out_dir(tmp_path / "file", command="x")


def test_suite_yaml_that_is_not_utf8_is_a_clear_error(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_bytes(b"name: caf\xe9\ntask: relative\ndatasets: [synthetic-indoor]\n")
    res, text = _invoke(["run", "--suite", str(bad), "--model", "constant", "--results", str(tmp_path / "r")])
    assert res.exit_code == 2, res.output
    assert "not UTF-8" in text and "Traceback" not in res.output


@pytest.mark.parametrize("command", [
    ["train", "teacher", "--preset", "tiny"],
    ["train", "pipeline", "--preset", "tiny"],
    ["train", "ablation", "--preset", "tiny"],
    ["finetune", "seg", "--dataset", "synthetic", "--random-init", "--arch", "da2_test"],
])
def test_training_out_that_is_a_users_folder_is_refused(tmp_path, command):
    user = tmp_path / "project"
    user.mkdir()
    (user / "config.py").write_text("my own config")
    res, text = _invoke([*command, "--out", str(user)])
    assert res.exit_code == 2, res.output
    assert "--force" in text and OUT_MARKER in text
    assert (user / "config.py").read_text() == "my own config" and _files(user) == ["config.py"]


def test_finetune_metric_out_that_is_a_users_folder_is_refused(tmp_path):
    from dabench.models import create_model, save_checkpoint

    init = save_checkpoint(create_model("da2_test"), tmp_path / "init.safetensors", arch="da2_test")
    user = tmp_path / "project"
    user.mkdir()
    (user / "config.py").write_text("my own config")
    res, text = _invoke(["finetune", "metric", "--dataset", "synthetic-indoor", "--head", "simple", "--init", str(init),
                         "--preset", "tiny", "--out", str(user)])
    assert res.exit_code == 2, res.output
    assert "--force" in text and (user / "config.py").read_text() == "my own config"


# --------------------------------------------------------------------------------------------- hostile images
def _png_claiming(width: int, height: int) -> bytes:
    """A tiny PNG whose IHDR claims ``width``×``height`` (no pixel data follows)."""
    import struct
    import zlib

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IEND", b"")


def _write_images(folder, names, shape=(20, 24, 3)):
    import cv2
    import numpy as np

    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    for n in names:
        cv2.imwrite(str(folder / n), rng.integers(0, 256, shape, dtype=np.uint8))
    return [folder / n for n in names]


def test_predict_never_overwrites_an_input(tmp_path):
    images = _write_images(tmp_path / "p", ["a.png", "a.jpg", "a_1.png"])
    before = {p: p.read_bytes() for p in images}
    res, text = _invoke(["predict", *map(str, images), "--model", "constant", "--out", str(tmp_path / "p")])
    assert res.exit_code == 0, res.output
    assert all(p.read_bytes() == b for p, b in before.items())  # inputs untouched
    assert len(list((tmp_path / "p").glob("*.npy"))) == 3 and "wrote 3" in text


def test_predict_gives_distinct_outputs_for_colliding_stems(tmp_path):
    import numpy as np

    images = _write_images(tmp_path / "in", ["a.png", "a.jpg", "a_1.png"])
    out = tmp_path / "out"
    res, text = _invoke(["predict", *map(str, images), "--model", "constant", "--out", str(out)])
    assert res.exit_code == 0, res.output
    assert sorted(p.name for p in out.glob("*.npy")) == ["a.npy", "a_1.npy", "a_1_1.npy"]
    assert all(np.load(p).shape == (20, 24) for p in out.glob("*.npy"))


def test_predict_out_is_an_existing_file(tmp_path):
    (img,) = _write_images(tmp_path, ["a.png"])
    (tmp_path / "taken").write_text("x")
    res, text = _invoke(["predict", str(img), "--model", "constant", "--out", str(tmp_path / "taken")])
    assert res.exit_code == 2 and "is an existing file" in text
    assert (tmp_path / "taken").read_text() == "x"


def test_png_header_claiming_a_huge_image_is_refused_per_image(tmp_path):
    (ok,) = _write_images(tmp_path / "in", ["ok.png"])
    bomb = tmp_path / "in" / "bomb.png"
    bomb.write_bytes(_png_claiming(100000, 100000))
    assert len(bomb.read_bytes()) < 100
    out = tmp_path / "out"
    res, text = _invoke(["predict", str(bomb), str(ok), "--model", "constant", "--out", str(out)])
    assert res.exit_code == 2, res.output
    assert "bomb.png is 100000x100000" in text and "megapixel cap" in text and "Traceback" not in res.output
    assert (out / "ok.npy").is_file()  # the other image is still predicted
    # --max-pixels lowers (or raises) the cap: ok.png is 24x20 = 480 pixels
    res, text = _invoke(["predict", str(ok), "--model", "constant", "--out", str(out), "--max-pixels", "100"])
    assert res.exit_code == 2 and "ok.png is 24x20" in text


def test_image_readers_check_the_header_before_decoding(tmp_path, monkeypatch):
    from dabench.data.datasets import read_image
    from dabench.data.formats import max_pixels, read_png_uint16

    bomb = tmp_path / "bomb.png"
    bomb.write_bytes(_png_claiming(100000, 100000))
    for reader in (read_image, read_png_uint16):
        with pytest.raises(DataError, match="megapixel cap"):
            reader(bomb)
    assert max_pixels() == 64_000_000
    monkeypatch.setenv("DABENCH_MAX_PIXELS", "lots")
    with pytest.raises(ConfigError, match="DABENCH_MAX_PIXELS"):
        max_pixels()


def test_npy_headers_are_checked_before_loading(tmp_path):
    import numpy as np

    from dabench.data.formats import read_diode_depth, read_npy_depth

    huge = tmp_path / "huge_depth.npy"
    with open(huge, "wb") as f:
        np.lib.format.write_array_header_1_0(f, {"descr": "<f4", "fortran_order": False, "shape": (100000, 100000)})
    with pytest.raises(DataError, match="huge_depth.npy is 100000x100000"):
        read_npy_depth(huge)
    npz = tmp_path / "x_depth.npy"
    with open(npz, "wb") as f:
        np.savez(f, depth=np.ones((4, 4), np.float32))
    with pytest.raises(DataError, match="npz"):
        read_npy_depth(npz)
    np.save(tmp_path / "d_depth.npy", np.ones((4, 4, 1), np.float32))
    np.save(tmp_path / "d_depth_mask.npy", np.full((4, 4), "1"))
    with pytest.raises(DataError, match="d_depth_mask.npy has dtype <U1"):
        read_diode_depth(tmp_path / "d_depth.npy", tmp_path / "d_depth_mask.npy")
    short = tmp_path / "short_depth.npy"
    np.save(short, np.ones((40, 40), np.float32))
    short.write_bytes(short.read_bytes()[:200])
    with pytest.raises(DataError, match="truncated"):
        read_npy_depth(short)


def test_preprocessing_and_colouring_keep_memory_near_the_image_size():
    """A large photo must not blow up in float64 (a 6000² PNG once took 3.5 GB in predict)."""
    import tracemalloc

    import numpy as np

    from dabench.models.inference import preprocess_numpy
    from dabench.viz import colorize_depth

    h, w = 700, 900
    image = np.random.default_rng(0).integers(0, 256, (h, w, 3), dtype=np.uint8)
    pred = np.random.default_rng(1).random((h, w), dtype=np.float32)
    preprocess_numpy(image[:28, :28], 14)  # first calls import cv2/matplotlib: not what is measured
    colorize_depth(pred[:4, :4], None, "disparity", robust=False)
    tracemalloc.start()
    try:
        preprocess_numpy(image, 70)
        _, peak_pre = tracemalloc.get_traced_memory()
        tracemalloc.reset_peak()
        rgb = colorize_depth(pred, None, "disparity", robust=False)
        _, peak_col = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert rgb.shape == (h, w, 3) and rgb.dtype == np.uint8
    assert peak_pre < 16 * h * w, peak_pre / (h * w)  # float32 RGB copy (12 B/px); float64 alone is 24 B/px
    assert peak_col < 40 * h * w, peak_col / (h * w)  # cm(view) alone was 32 B/px of float64 RGBA, twice


def test_colouring_matches_the_colormap():
    import matplotlib
    import numpy as np

    from dabench.viz import colorize_depth

    pred = np.linspace(0, 5, 300, dtype=np.float32).reshape(12, 25)
    pred[0, 0] = np.nan
    view = (pred - np.nanmin(pred)) / (np.nanmax(pred) - np.nanmin(pred))
    want = (matplotlib.colormaps["Spectral_r"](np.nan_to_num(view))[..., :3] * 255 + 0.5).astype(np.uint8)
    want[0, 0] = 0
    np.testing.assert_array_equal(colorize_depth(pred, None, "disparity", robust=False), want)


# --------------------------------------------------------------------------------------------- clear errors
def _tiny_checkpoint(tmp_path, name="w.safetensors", **meta):
    from dabench.models import create_model, save_checkpoint

    return save_checkpoint(create_model("da2_test"), tmp_path / name, arch="da2_test", extra_metadata=meta)


def test_bad_input_size_metadata_and_flags(tmp_path):
    (img,) = _write_images(tmp_path / "in", ["a.png"])
    ckpt = _tiny_checkpoint(tmp_path, **{"dabench.input_size": "abc"})
    res, text = _invoke(["predict", str(img), "--checkpoint", str(ckpt), "--out", str(tmp_path / "o")])
    assert res.exit_code == 2 and "dabench.input_size" in text and "'abc'" in text
    good = _tiny_checkpoint(tmp_path, "good.safetensors")
    for size, phrase in (("0", "positive number"), ("13", "not a multiple of 14"), ("100000", "megapixel cap")):
        res, text = _invoke(["predict", str(img), "--checkpoint", str(good), "--out", str(tmp_path / "o"),
                             "--input-size", size])
        assert res.exit_code == 2 and phrase in text, (size, res.output)
    res, text = _invoke(["run", "--suite", "synthetic", "--model", "da2_test", "--random-init", "--limit", "1",
                         "--input-size", "13", "--results", str(tmp_path / "r"), "--no-cache"])
    assert res.exit_code == 2 and "not a multiple of 14" in text


def test_nan_weights_are_refused_at_load(tmp_path):
    import torch

    from dabench.models import create_model, save_checkpoint

    model = create_model("da2_test")
    with torch.no_grad():
        model.pretrained.blocks[0].attn.qkv.weight[0, 0] = float("nan")
    ckpt = save_checkpoint(model, tmp_path / "nan.safetensors", arch="da2_test")
    (img,) = _write_images(tmp_path / "in", ["a.png"])
    res, text = _invoke(["predict", str(img), "--checkpoint", str(ckpt), "--out", str(tmp_path / "o")])
    assert res.exit_code == 2, res.output
    assert "pretrained.blocks.0.attn.qkv.weight" in text and "NaN" in text
    assert not (tmp_path / "o").exists() or not list((tmp_path / "o").glob("*.npy"))


def test_device_cuda_without_cuda_is_one_line_before_loading(tmp_path, monkeypatch):
    import torch

    import dabench.models.resolve as resolve

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)

    def no_loading(*a, **k):
        raise AssertionError("a model was built before the device was checked")

    monkeypatch.setattr(resolve, "build_model", no_loading)
    (img,) = _write_images(tmp_path / "in", ["a.png"])
    for args in (["predict", str(img), "--model", "constant", "--out", str(tmp_path / "o"), "--device", "cuda"],
                 ["run", "--suite", "synthetic", "--model", "constant", "--device", "cuda", "--results",
                  str(tmp_path / "r")]):
        res, text = _invoke(args)
        assert res.exit_code == 2, res.output
        assert "CUDA is not available on this machine" in text and "Traceback" not in res.output
    assert not (tmp_path / "r").exists()


def test_results_folder_with_hostile_entries(tmp_path):
    from dabench.results.store import load_records, write_record

    results = tmp_path / "r"
    write_record({"status": "ok", "suite": "s", "model": "m", "dataset": "d", "metrics": {"abs_rel": 0.1}}, results)
    (results / "folder.json").mkdir()  # a folder named like a record: not a record
    assert len(load_records(results)) == 1
    (results / "deep.json").write_text("[" * 100000 + "]" * 100000)
    with pytest.raises(DataError, match="deep.json"):
        load_records(results)
    (results / "deep.json").unlink()
    (results / "dangling.json").symlink_to(tmp_path / "nowhere.json")
    res, text = _invoke(["results", "ls", "--results", str(results)])
    assert res.exit_code == 2, res.output
    assert "dangling.json is a broken symlink" in text


def test_unknown_pth_in_the_checkpoints_folder_is_skipped(tmp_path, capsys):
    import torch

    from dabench.models.resolve import resolve_models
    from dabench.provenance import checkpoints_dir

    d = checkpoints_dir()
    d.mkdir(parents=True)
    torch.save({"w": torch.zeros(1)}, d / "depth_anything_v2_vits.pth")
    _tiny_checkpoint(d, "mine.safetensors")
    torch.save({"w": torch.zeros(1)}, d / "da2_test-official.pth")
    runs = resolve_models(None)
    assert [(r.label, r.arch) for r in runs] == [("da2_test-official", "da2_test"), ("mine", None),
                                                 ("constant", "constant"), ("horizon_prior", "horizon_prior")]
    err = flat(capsys.readouterr().err)
    assert "skipping" in err and "depth_anything_v2_vits.pth" in err and "da2_vits14.pth" in err


def test_wrong_shape_cache_entry_is_recomputed(tmp_path):
    import numpy as np

    from dabench.eval.cache import PredictionCache

    cache = PredictionCache(tmp_path / "c")
    key = "ab" + "1" * 62
    cache.put(key, np.ones((3, 4), np.float32))
    assert cache.get(key, shape=(3, 4)) is not None
    assert cache.get(key, shape=(5, 4)) is None and cache.misses == 1


def test_run_recomputes_a_wrong_shape_cached_prediction(tmp_path):
    import numpy as np

    args = ["run", "--suite", "synthetic", "--model", "horizon_prior", "--limit", "1", "--datasets",
            "synthetic-indoor", "--results", str(tmp_path / "r")]
    res, _ = _invoke(args)
    assert res.exit_code == 0, res.output
    from dabench.provenance import cache_dir

    (entry,) = list((cache_dir() / "predictions").rglob("*.npy"))
    np.save(entry, np.ones((3, 3), np.float32))  # a stale entry of another shape
    res, _ = _invoke(args)
    assert res.exit_code == 0, res.output
    (path,) = [p for p in (tmp_path / "r" / "synthetic" / "horizon_prior").glob("synthetic-indoor*.json")
               if not p.name.endswith(".samples.json")]
    rec = json.loads(path.read_text())
    assert rec["cache"] == {"hits": 0, "misses": 1}


def test_checkpoint_name_cannot_leave_the_checkpoints_folder(tmp_path):
    from dabench.safety import registered_checkpoint_path

    assert registered_checkpoint_path("run-1").name == "run-1.safetensors"
    with pytest.raises(ConfigError, match="--name"):
        registered_checkpoint_path("../../escaped")
    res, text = _invoke(["finetune", "seg", "--dataset", "synthetic", "--random-init", "--arch", "da2_test",
                         "--name", "../../escaped", "--out", str(tmp_path / "run")])
    assert res.exit_code == 2 and "--name" in text, res.output
    assert not (tmp_path / "run").exists()
