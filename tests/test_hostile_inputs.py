"""Hostile inputs, class by class: files that are not what their size or type says, declared sizes
that would drive memory, error messages that would carry the input, names that collide or get
lost, values that should fail, and paths that are not plain ASCII. Each test builds the hostile
input itself and checks dabench's answer is one bounded error (or the right value)."""
from __future__ import annotations

import json
import os
import time

import numpy as np
import pytest
from typer.testing import CliRunner

from dabench.cli import app
from dabench.errors import ConfigError, DataError, excerpt
from dabench.results.record import Record
from dabench.tasks import EvalRequest

BOMB = "".join(
    [f"l0: &l0 [{', '.join(['lol'] * 9)}]\n"]
    + [f"l{i}: &l{i} [{', '.join([f'*l{i - 1}'] * 9)}]\n" for i in range(1, 9)]
    + [f"l9: [{', '.join(['*l8'] * 9)}]\n"])  # a few hundred bytes, 9**10 nodes once expanded


def _invoke(args, env=None):
    return CliRunner().invoke(app, args, env={"COLUMNS": "200", **(env or {})})


# ------------------------------------------------------------ error messages that carry the input
def test_excerpt_is_bounded_and_never_renders_the_whole_value():
    huge = list(range(25_000_000))
    t = time.perf_counter()
    text = excerpt(huge)
    assert time.perf_counter() - t < 0.5 and len(text) <= 80 and text.startswith("[0, 1, 2")
    nested: list = ["x"] * 9
    for _ in range(12):
        nested = [nested] * 9  # shared references: 9**13 leaves once rendered in full
    assert len(excerpt(nested)) <= 80
    assert excerpt("short") == "'short'"
    assert len(excerpt("y" * 10**6, 50)) == 50


def test_yaml_bomb_is_refused_by_every_yaml_reader(tmp_path):
    from dabench.data.cards import _load_card_cached
    from dabench.eval.suites import load_suite
    from dabench.results.published import load_published
    from dabench.safety import load_yaml

    f = tmp_path / "bomb.yaml"
    f.write_text(BOMB)
    assert len(BOMB) < 600
    with pytest.raises(ConfigError, match="expands"):
        load_yaml(f, "config")
    with pytest.raises(ConfigError, match="expands"):
        load_suite(str(f))
    (tmp_path / "pub").mkdir()
    (tmp_path / "pub" / "t.yaml").write_text(BOMB)
    with pytest.raises(DataError, match="expands"):
        load_published(tmp_path / "pub")
    (tmp_path / "cards").mkdir()
    (tmp_path / "cards" / "bomb.yaml").write_text("name: bomb\n" + BOMB)
    with pytest.raises(ConfigError, match="expands"):
        _load_card_cached(str(tmp_path / "cards" / "bomb.yaml"), None)


def test_yaml_bomb_suite_on_the_cli_is_one_short_error(tmp_path):
    f = tmp_path / "bomb.yaml"
    f.write_text(BOMB)
    r = _invoke(["run", "--suite", str(f), "--model", "da2_vits14", "--results", str(tmp_path / "res")])
    assert r.exit_code == 2 and "expands" in r.output and len(r.output.split()) < 60


def test_yaml_aliases_within_the_cap_and_recursive_aliases(tmp_path):
    from dabench.safety import load_yaml_text

    assert load_yaml_text("a: &x {k: 1}\nb: *x\n", "t") == {"a": {"k": 1}, "b": {"k": 1}}
    with pytest.raises(ConfigError, match="recursive"):
        load_yaml_text("a: &x [1, *x]\n", "t")
    with pytest.raises(ConfigError, match="nested too deeply|invalid YAML"):
        load_yaml_text("[" * 100_000, "t")


def test_yaml_config_never_builds_python_objects(tmp_path):
    from dabench.safety import load_config_file

    marker = tmp_path / "ran"
    f = tmp_path / "cfg.yaml"
    f.write_text(f'a: !!python/object/apply:os.system ["touch {marker}"]\n')
    with pytest.raises(ConfigError, match="invalid YAML"):
        load_config_file(f)
    assert not marker.exists()
    f.write_text("optimizer:\n  lr: 0.001\n")
    assert load_config_file(f).to_dict() == {"optimizer": {"lr": 0.001}}


def test_da2k_error_with_a_huge_point_list_is_short(tmp_path):
    from dabench.data.da2k import read_annotations

    root = tmp_path / "da2k"
    (root / "indoor").mkdir(parents=True)
    points = list(range(200_000))  # about 1 MB of input
    (root / "annotations.json").write_text(json.dumps(
        {"indoor/a.png": [{"point1": points, "point2": [0, 0], "closer_point": "point1"}]}))
    with pytest.raises(DataError) as e:
        read_annotations(root / "annotations.json", root)
    assert len(str(e.value)) < 400 and "[0, 1, 2" in str(e.value)


def test_suite_and_card_errors_quote_a_bounded_excerpt(tmp_path):
    from dabench.eval.suites import load_suite

    f = tmp_path / "s.yaml"
    f.write_text("name: s\ntask: depth\ndatasets: [nyu]\nmetrics: [absrel]\nprimary: absrel\n"
                 f"alignment: {json.dumps(['x' * 1000] * 1000)}\n")
    with pytest.raises(ConfigError) as e:
        load_suite(str(f))
    assert len(str(e.value)) < 600


# ------------------------------------------------------------ files that are not what their size or type says
def _jpeg(h=20, w=28, seed=0) -> bytes:
    import cv2

    rng = np.random.default_rng(seed)
    ok, buf = cv2.imencode(".jpg", rng.integers(0, 255, (h, w, 3), dtype=np.uint8))
    return buf.tobytes()


@pytest.fixture
def alarm():
    """Fail (instead of hanging the suite) when a read blocks for more than 20 s."""
    import signal

    def boom(*_):
        raise TimeoutError("blocked: a read waited on a FIFO or device")

    old = signal.signal(signal.SIGALRM, boom)
    signal.alarm(20)
    yield
    signal.alarm(0)
    signal.signal(signal.SIGALRM, old)


def _folder_with(tmp_path, extra: dict):
    """An image folder with one good JPEG and ``extra`` {name: maker(path)}, its index listing all."""
    root = tmp_path / "imgs"
    root.mkdir()
    (root / "good.jpg").write_bytes(_jpeg())
    for name, make in extra.items():
        make(root / name)
    names = sorted(["good.jpg", *extra])
    (root / ".dabench-index").write_text(f"# dabench-index/1 {len(names)}\n" + "".join(n + "\n" for n in names))
    return root


@pytest.mark.parametrize("kind", ["fifo", "dev_zero", "sparse", "folder"])
def test_special_and_sparse_files_in_a_folder_source_are_refused_not_read(tmp_path, alarm, kind):
    from dabench.data.sources import build_image_source, write_shards

    def make(p):
        if kind == "fifo":
            os.mkfifo(p)
        elif kind == "dev_zero":
            p.symlink_to("/dev/zero")
        elif kind == "sparse":
            with open(p, "wb") as f:
                f.write(_jpeg())
                f.truncate(20 * 2**30)  # 20 GiB long, a few KiB on disk
        else:
            p.mkdir()

    root = _folder_with(tmp_path, {"x.jpg": make})
    src = build_image_source(f"folder:{root}", follow_symlinks=True)
    i = src.names.index("x.jpg")
    want = {"fifo": "FIFO", "dev_zero": "character device", "sparse": "more than a 28x20 image",
            "folder": "a folder"}[kind]
    with pytest.raises(DataError, match=want):
        src[i]
    with pytest.raises(DataError, match=want):  # the JPEG fast path of `data shard` makes the same checks
        write_shards(src, tmp_path / "shards")
    r = _invoke(["data", "shard", f"folder:{root}", "--out", str(tmp_path / "shards2"), "--follow-symlinks"])
    assert r.exit_code == 2 and want.split()[0] in r.output and "Traceback" not in r.output


def test_a_fresh_folder_index_lists_only_regular_files(tmp_path, alarm):
    from dabench.data.sources import build_image_source

    root = tmp_path / "imgs"
    root.mkdir()
    (root / "good.jpg").write_bytes(_jpeg())
    os.mkfifo(root / "pipe.jpg")
    assert build_image_source(f"folder:{root}").names == ["good.jpg"]


def test_predict_on_a_sparse_jpeg_fails_that_image_only(tmp_path, alarm):
    (tmp_path / "in").mkdir()
    ok = tmp_path / "in" / "ok.jpg"
    ok.write_bytes(_jpeg())
    sparse = tmp_path / "in" / "sparse.jpg"
    with open(sparse, "wb") as f:
        f.write(_jpeg())
        f.truncate(20 * 2**30)
    r = _invoke(["predict", str(sparse), str(ok), "--model", "constant", "--out", str(tmp_path / "out")])
    assert r.exit_code == 2 and "sparse.jpg" in r.output and "Traceback" not in r.output
    assert (tmp_path / "out" / "ok.npy").is_file()


def test_image_header_beyond_the_bounded_prefix_is_refused(tmp_path):
    from dabench.data.formats import IMAGE_HEADER_PREFIX, read_image_file

    f = tmp_path / "junk.png"
    f.write_bytes(b"\0" * (IMAGE_HEADER_PREFIX + 10))
    with pytest.raises(DataError, match="not an image"):
        read_image_file(f)


def test_depth_readers_refuse_special_files(tmp_path, alarm):
    from dabench.data import formats as F
    from dabench.data.train_sets import read_pfm

    os.mkfifo(tmp_path / "d.dpt")
    (tmp_path / "z.npy").symlink_to("/dev/zero")
    with pytest.raises(DataError, match="regular file"):
        F.read_sintel_depth(tmp_path / "d.dpt")
    with pytest.raises(DataError, match="regular file"):
        F.read_npy_depth(tmp_path / "z.npy")
    with pytest.raises(DataError, match="regular file"):
        read_pfm(tmp_path / "z.npy")


def test_bounded_read_refuses_above_the_cap_before_reading(tmp_path):
    from dabench.safety import read_bounded

    f = tmp_path / "big.json"
    with open(f, "wb") as fh:
        fh.truncate(10**10)
    with pytest.raises(DataError, match="above the 1000-byte cap"):
        read_bounded(f, "JSON file", 1000)
    (tmp_path / "small").write_bytes(b"abc")
    assert read_bounded(tmp_path / "small", "x", 3) == b"abc"


def test_symlinks_leaving_a_folder_source_need_follow_symlinks(tmp_path):
    from dabench.data.sources import build_image_source

    outside = tmp_path / "outside.jpg"
    outside.write_bytes(_jpeg())
    root = tmp_path / "imgs"
    root.mkdir()
    (root / "good.jpg").write_bytes(_jpeg(seed=1))
    (root / "inner.jpg").symlink_to("good.jpg")  # a link that stays inside is fine
    (root / "link.jpg").symlink_to(outside)
    with pytest.raises(DataError, match="symlink leading outside"):
        build_image_source(f"folder:{root}")
    src = build_image_source(f"folder:{root}", follow_symlinks=True)
    assert sorted(src.names) == ["good.jpg", "inner.jpg", "link.jpg"]
    assert src[src.names.index("link.jpg")]["image"].shape == (20, 28, 3)
    # an index written with --follow-symlinks does not open the door for later plain reads
    with pytest.raises(DataError, match="symlink leading outside"):
        build_image_source(f"folder:{root}")[src.names.index("link.jpg")]
    listing = tmp_path / "l.txt"
    (tmp_path / "l").mkdir()
    (tmp_path / "l" / "a.jpg").symlink_to(outside)
    listing = tmp_path / "l" / "list.txt"
    listing.write_text("a.jpg\n")
    with pytest.raises(DataError, match="symlink leading outside"):
        build_image_source(f"list:{listing}")[0]
    r = _invoke(["data", "shard", f"folder:{tmp_path / 'l'}", "--out", str(tmp_path / "s")])
    assert r.exit_code == 2 and "--follow-symlinks" in r.output


# ------------------------------------------------------------ declared sizes that drive memory
def test_brace_counting_matches_braceexpand():
    from braceexpand import braceexpand

    from dabench.data.brace import count_members

    for p in ["a", "item{1..3}", "{a..c}", "x{,.bak}", "py{2.{5..7},3.{2,3}}", "{07..10}", "{a..g..2}", "{4..1}",
              "{2..-1}", "{1..10..-2}", "{z..a..2}", "{a,b}{1..3}{x,y,z}", "x{}y", "{a}", "{,}", "{{a,b}}",
              "a{b{c,d}e}f", r"\{a,b\}{1,2}", "s-{000000..000099}.tar"]:
        assert count_members(p) == len(list(braceexpand(p))), p
    assert count_members("shard-{000000000..999999999}.tar") == 10**9  # instant: nothing is expanded


def test_a_billion_shard_pattern_is_refused_before_expanding(tmp_path):
    import tracemalloc

    from dabench.data.sources import expand_pattern

    tracemalloc.start()
    with pytest.raises(ConfigError, match="names 1000000000 shards"):
        expand_pattern(str(tmp_path / "shard-{000000000..999999999}.tar"))
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert peak < 5 * 2**20
    with pytest.raises(ConfigError, match="bad shard pattern.*unbalanced"):
        expand_pattern("a{1,2")
    (tmp_path / "s-0.tar").write_bytes(b"")
    with pytest.raises(Exception, match=r"s-1.tar .*\(2 of 3 missing\)"):
        expand_pattern(str(tmp_path / "s-{0..2}.tar"))


def _shard(path, n, cut_in_header_of=None):
    import io as _io
    import tarfile

    buf = _io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.USTAR_FORMAT) as tf:
        for i in range(n):
            data = _jpeg(seed=i)
            info = tarfile.TarInfo(f"{i:06d}.jpg")
            info.size = len(data)
            tf.addfile(info, _io.BytesIO(data))
    raw = buf.getvalue()
    if cut_in_header_of is not None:  # keep members before it, then 100 bytes of its 512-byte header
        with tarfile.open(fileobj=_io.BytesIO(raw)) as tf:
            start = tf.getmember(f"{cut_in_header_of:06d}.jpg").offset
        raw = raw[: start + 100]
    path.write_bytes(raw)


def test_a_shard_cut_inside_a_member_header_is_reported_and_recorded(tmp_path, monkeypatch, caplog):
    from dabench.data.sources import build_image_source
    from dabench.train.common import Sources, write_data_record
    from dabench.train.config import DatasetSpec

    monkeypatch.setenv("DABENCH_HOME", str(tmp_path / "home"))
    _shard(tmp_path / "s-0.tar", 3)
    _shard(tmp_path / "s-1.tar", 5, cut_in_header_of=2)
    with caplog.at_level("WARNING", logger="dabench.data"):
        src = build_image_source(f"wds:{tmp_path}/s-{{0..1}}.tar")
    assert len(src) == 5 and "s-1.tar was cut: 2 members read" in caplog.text
    rep = src.report()
    assert rep["shards"] == 2 and rep["samples"] == 5
    assert rep["cut_shards"] == [{"shard": str(tmp_path / "s-1.tar"), "members_read": 2, "cut_bytes": 100}]
    again = build_image_source(f"wds:{tmp_path}/s-{{0..1}}.tar")  # from the index cache: the same counts
    assert again.report() == rep
    sources = Sources([DatasetSpec(f"wds:{tmp_path}/s-{{0..1}}.tar")], None, "unlabelled", keys=("image",))
    write_data_record(tmp_path / "run", unlabelled=sources)
    rec = json.loads((tmp_path / "run" / "data.json").read_text())
    assert rec["unlabelled"][0]["samples"] == 5 and rec["unlabelled"][0]["cut_shards"][0]["members_read"] == 2
    complete = build_image_source(f"wds:{tmp_path}/s-0.tar")
    assert complete.report()["cut_shards"] == []


# ------------------------------------------------------------ values that pass where they should fail
@pytest.mark.parametrize("cur", [math_inf := float("inf"), -math_inf, "0.9", True])
@pytest.mark.parametrize("metric", ["delta1", "abs_rel"])
def test_regress_fails_any_non_finite_or_non_numeric_current_value(metric, cur, tmp_path):
    from dabench.results.regress import REGRESSED, compare_records

    def rec(v):
        return {"schema": "dabench.result/1", "status": "ok", "suite": "s", "model": "m", "dataset": "nyu",
                "metrics": {metric: v}, "higher_is_better": {"abs_rel": False, "delta1": True}, "git_commit": "x",
                "date": "2026-01-01"}

    rep = compare_records([rec(0.5)], [rec(cur)])
    assert rep.comparisons[0].status == REGRESSED and not rep.passed and rep.exit_code == 1
    # through the CLI: a record file holding Infinity (valid for Python's json) fails the gate
    if isinstance(cur, float):
        for side, v in (("base", 0.5), ("cur", cur)):
            (tmp_path / side).mkdir()
            (tmp_path / side / "r.json").write_text(json.dumps(rec(v)))
        r = _invoke(["regress", "--baseline", str(tmp_path / "base"), "--current", str(tmp_path / "cur")])
        assert r.exit_code == 1, r.output


# ------------------------------------------------------------ names that collide or get lost
def test_log_samples_file_names_are_injective():
    from dabench.results.store import sample_file_name

    names = ["a/b_003", "a_b/003", "a/b/003", "a b/003", "..", ".", "a" * 500, "a" * 501, "caf\udce9/x", "café/x"]
    stems = [sample_file_name(n) for n in names]
    assert len(set(stems)) == len(names)
    assert all(len(s) <= 100 and "/" not in s and s.strip(".") and not s.startswith(".") for s in stems)
    assert sample_file_name("a/b_003") == sample_file_name("a/b_003")  # stable: the report finds it again


def test_log_samples_keeps_one_file_per_sample(tmp_path):
    from dabench.eval.runner import run_suite

    (rec,) = run_suite("synthetic", EvalRequest(datasets=["synthetic-indoor"], limit=3, results_dir=tmp_path / "r",
                       show_progress=False, use_cache=False, bootstrap=0, log_samples=True), models=["horizon_prior"])
    folder = tmp_path / "r" / "runs" / rec["run_id"] / "samples" / "horizon_prior" / "synthetic-indoor"
    assert len(list(folder.glob("*.npz"))) == rec["samples"]["used"] == 3


def test_log_samples_is_refused_where_nothing_would_be_logged(tmp_path):
    from dabench.eval.runner import run_suite

    with pytest.raises(ConfigError, match="--log-samples"):
        run_suite("da2k", EvalRequest(results_dir=tmp_path / "r", show_progress=False, log_samples=True),
                  models=["horizon_prior"])
    assert not (tmp_path / "r").exists()


# ------------------------------------------------------------ paths and text that are not plain ASCII
LATIN1 = os.fsdecode(b"caf\xe9")  # bytes that are not UTF-8, as the OS gives them to Python


def test_latin1_file_names_survive_index_shards_hashes_and_csvs(tmp_path, monkeypatch):
    from dabench.data.sources import build_image_source
    from dabench.eval.records import write_samples_csv
    from dabench.results.record import indices_hash
    from dabench.results.store import load_samples

    monkeypatch.setenv("DABENCH_HOME", str(tmp_path / "home"))
    root = tmp_path / "imgs"
    root.mkdir()
    (root / f"{LATIN1}.jpg").write_bytes(_jpeg())
    (root / "plain.jpg").write_bytes(_jpeg(seed=1))
    src = build_image_source(f"folder:{root}")
    assert f"{LATIN1}.jpg" in src.names
    assert b"caf\xe9.jpg\n" in (root / ".dabench-index").read_bytes()  # the OS's bytes, kept
    again = build_image_source(f"folder:{root}")  # read back from the index
    assert again.names == src.names and again[again.names.index(f"{LATIN1}.jpg")]["image"].shape == (20, 28, 3)
    r = _invoke(["data", "shard", f"folder:{root}", "--out", str(tmp_path / "shards")])
    assert r.exit_code == 0, r.output
    assert len(build_image_source(f"wds:{tmp_path}/shards/shard-000000.tar")) == 2
    # the selection hash and the per-sample CSV take the name as the OS gave it
    assert indices_hash([LATIN1]) != indices_hash(["caf\u00e9"])
    csv = tmp_path / "rec.samples.csv"
    write_samples_csv(csv, [{"index": 0, "name": LATIN1, "status": "ok", "valid_pixels": 4}])
    frame = load_samples(Record({}, path=tmp_path / "rec.json"))
    assert list(frame["name"]) == [LATIN1]


def test_results_that_is_a_file_is_refused_before_any_work(tmp_path, monkeypatch):
    from dabench.eval import runner

    calls = []
    monkeypatch.setattr(runner, "build_model", lambda *a, **k: calls.append(a) or pytest.fail("work started"))
    (tmp_path / "file").write_text("x")
    r = _invoke(["run", "--suite", "synthetic", "--model", "horizon_prior", "--results", str(tmp_path / "file")])
    assert r.exit_code == 2 and "existing file" in r.output
    r = _invoke(["run", "--suite", "synthetic", "--model", "horizon_prior", "--results", str(tmp_path / "file" / "x")])
    assert r.exit_code == 2 and "is a file" in r.output
    res = tmp_path / "res"
    res.mkdir()
    (res / "synthetic").write_text("a file where the suite's folder goes")
    r = _invoke(["run", "--suite", "synthetic", "--model", "horizon_prior", "--results", str(res)])
    assert r.exit_code == 2 and "needs a folder" in r.output
    (res / "synthetic").unlink()
    (res / "runs").write_text("x")
    r = _invoke(["run", "--suite", "synthetic", "--model", "horizon_prior", "--results", str(res)])
    assert r.exit_code == 2 and "needs a folder" in r.output and not calls


def test_a_record_that_cannot_be_written_is_rescued(tmp_path, monkeypatch):
    from dabench.eval import runner

    monkeypatch.setenv("DABENCH_HOME", str(tmp_path / "home"))

    def fail(*a, **k):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(runner, "write_samples_csv", fail)
    with pytest.raises(DataError, match="saved to") as e:
        runner.run_suite("synthetic", EvalRequest(datasets=["synthetic-indoor"], limit=2, results_dir=tmp_path / "r",
                         show_progress=False, use_cache=False, bootstrap=0), models=["horizon_prior"])
    saved = json.loads(open(str(e.value).rsplit("saved to ", 1)[1]).read())
    assert saved["record"]["model"] == "horizon_prior" and len(saved["rows"]) == 2
    assert saved["record"]["metrics"]["abs_rel"] is not None


# ------------------------------------------------------------ declared sizes in safetensors headers
def _safetensors_declaring(path, tensors: dict, extra: dict):
    """A real safetensors file of ``tensors`` plus header entries ``extra`` {name: (dtype, shape)} whose
    data is a sparse hole: the header promises gigabytes the disk does not hold."""
    import struct

    from safetensors.torch import save

    raw = save(tensors)
    (n,) = struct.unpack("<Q", raw[:8])
    header = json.loads(raw[8:8 + n])
    end = max((v["data_offsets"][1] for k, v in header.items() if k != "__metadata__"), default=0)
    for name, (dtype, shape) in extra.items():
        size = int(np.prod(shape)) * {"F32": 4, "F16": 2}[dtype]
        header[name] = {"dtype": dtype, "shape": list(shape), "data_offsets": [end, end + size]}
        end += size
    hb = json.dumps(header).encode()
    hb += b" " * (-len(hb) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(hb)) + hb + raw[8 + n:])
        f.truncate(8 + len(hb) + end)


def _peak_rss_mib() -> float:
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def test_safetensors_header_is_compared_with_the_model_before_any_data(tmp_path):
    from dabench.errors import CheckpointError
    from dabench.models import create_model
    from test_models import official_state_dict

    sd = official_state_dict(32, 4, 16, (8, 16, 32, 32), swiglu=False, seed=3)
    before = _peak_rss_mib()
    f = tmp_path / "big.safetensors"  # every right tensor, plus one declared at 2 GiB
    _safetensors_declaring(f, sd, {"junk": ("F32", (2**29,))})
    with pytest.raises(CheckpointError, match="unexpected keys: junk"):
        create_model("da1_test", checkpoint=f)
    wrong = dict(sd)
    cls = wrong.pop("pretrained.cls_token")
    g = tmp_path / "wide.safetensors"  # a known key declared far too large
    _safetensors_declaring(g, wrong, {"pretrained.cls_token": ("F32", (1, 1, 2**29))})
    with pytest.raises(CheckpointError, match="wrong shape"):
        create_model("da1_test", checkpoint=g)
    assert _peak_rss_mib() - before < 1024  # the 2 GiB were never read
    h = tmp_path / "ints.safetensors"
    from safetensors.torch import save_file

    save_file({**wrong, "pretrained.cls_token": torch_int(cls)}, str(h))
    with pytest.raises(CheckpointError, match="dtype"):
        create_model("da1_test", checkpoint=h)


def torch_int(t):
    return t.to(dtype=__import__("torch").int32)


def test_nan_scan_is_per_tensor_and_chunked(tmp_path, monkeypatch):
    import torch
    from safetensors.torch import save_file

    from dabench.errors import CheckpointError
    from dabench.models import checkpoint as ckpt

    monkeypatch.setattr(ckpt, "_FINITE_CHUNK", 7)
    good = torch.arange(50, dtype=torch.float32)
    bad = good.clone()
    bad[43] = float("inf")
    save_file({"a": good, "b": bad, "c": good.clone()}, str(tmp_path / "w.safetensors"))
    seen = []
    real = ckpt.check_finite
    monkeypatch.setattr(ckpt, "check_finite", lambda sd, src: (seen.append(list(sd)), real(sd, src)))
    with pytest.raises(CheckpointError, match="tensor b holds 1 NaN/inf"):
        ckpt.read_state_dict(tmp_path / "w.safetensors")
    assert seen == [["a"], ["b"]]  # c was never read: the first bad tensor stops the read


def test_two_hf_folders_with_the_same_name_do_not_replace_each_other(tmp_path, monkeypatch):
    pytest.importorskip("transformers")
    import hf_tiny

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    a = hf_tiny.save("dpt", tmp_path / "a" / "model")
    import shutil

    from safetensors.torch import load_file, save_file

    b = tmp_path / "b" / "model"  # a different checkpoint in a folder of the same name: other weights
    shutil.copytree(a, b)
    w = next(b.glob("*.safetensors"))
    sd = load_file(str(w))
    save_file({k: v + 0.01 if v.is_floating_point() else v for k, v in sd.items()}, str(w), metadata={"format": "pt"})
    res = tmp_path / "res"
    args = ["run", "--suite", "synthetic", "--datasets", "synthetic-indoor", "--limit", "1", "--results", str(res),
            "--bootstrap", "0", "--no-cache"]
    r = _invoke([*args, "--model", f"hf:{a}"])
    assert r.exit_code == 0, r.output
    first = json.loads((res / "synthetic" / "hf_model" / "synthetic-indoor.partial.json").read_text())
    r = _invoke([*args, "--model", f"hf:{b}"])
    text = " ".join(r.output.split())
    assert r.exit_code == 2 and "already holds" in text and "--name" in text, r.output
    assert json.loads((res / "synthetic" / "hf_model" / "synthetic-indoor.partial.json").read_text()) == first
    r = _invoke([*args, "--model", f"hf:{a}"])  # the same model again: an ordinary re-run
    assert r.exit_code == 0, r.output
    r = _invoke([*args, "--model", f"hf:{b}", "--name", "hf:b-model"])
    assert r.exit_code == 0, r.output


def test_markdown_table_escapes_model_names(tmp_path):
    from dabench.results.tables.render import _md_escape

    assert _md_escape("da2_vits14") == "da2_vits14" and _md_escape("hf:org/m-1.0") == "hf:org/m-1.0"
    hostile = '<img src=x onerror=alert(1)> **b** [x](javascript:alert(1)) a|b _e_ `c`\n# h'
    out = _md_escape(hostile)
    assert "<" not in out and ">" not in out and "\n" not in out
    for raw in ("**", "[x]", "a|b", " _e_", "`c`"):
        assert raw not in out
    markdown_it = pytest.importorskip("markdown_it")
    html = markdown_it.MarkdownIt("gfm-like", {"linkify": False}).render(f"| Model | x |\n|:---|---:|\n| {out} | 1 |\n")
    assert "<img" not in html and "<strong>" not in html and "<a " not in html and "<code>" not in html
    assert html.count("<td") == 2  # the pipe did not split the cell


def test_gzip_split_lists_inflate_at_most_to_the_cap(tmp_path, monkeypatch):
    import gzip

    from dabench.data import cards

    f = tmp_path / "split.txt.gz"
    f.write_bytes(gzip.compress(b"a b\n" * 100_000))  # 400 kB inflated from a few hundred bytes
    assert len(cards.read_split_file(f)) == 100_000
    monkeypatch.setattr(cards, "MAX_SPLIT_BYTES", 1000)
    with pytest.raises(ConfigError, match="inflates to more than 1000 bytes"):
        cards.read_split_file(f)


def test_snapshot_json_and_records_refuse_special_files(tmp_path, alarm):
    from dabench.models.snapshot_check import read_json_object
    from dabench.results.store import load_records

    os.mkfifo(tmp_path / "config.json")
    with pytest.raises(DataError, match="FIFO"):
        read_json_object(tmp_path / "config.json", "model config")
    (tmp_path / "res").mkdir()
    os.mkfifo(tmp_path / "res" / "r.json")
    assert load_records(tmp_path / "res") == []  # skipped (only regular files are records), never waited on
