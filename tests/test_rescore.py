"""Re-scoring logged predictions (``dabench.eval.rescore``, ``dabench rescore``): equal to a direct run
under every alignment mode and score space, refusing a different inference protocol, and reading
stranger's logs safely."""
from __future__ import annotations

import json
import math
import zipfile
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from cli_output import flat
from dabench.cli import app
from dabench.errors import DataError
from dabench.eval.align import ALIGNMENT_MODES
from dabench.eval.loop import evaluate
from dabench.eval.records import sample_logger
from dabench.eval.rescore import score_logged
from dabench.eval.samplelog import estimate_log_bytes, log_mode, read_logged_prediction
from dabench.eval.suites import Protocol
from dabench.results.store import sample_file_name

TOL = 1e-6


# ---------------------------------------------------------------------------------------------
# the scorer: logged predictions against a direct evaluation, every alignment mode and score space
# ---------------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def tiny_samples():
    from dabench.data import build_dataset

    ds = build_dataset("synthetic-outdoor", split="test", limit=3, size=(24, 36))
    return [ds[i] for i in range(len(ds))]


@pytest.fixture(scope="module")
def horizon():
    from dabench.models import create_model

    return create_model("horizon_prior").eval()


def _proto(**kw) -> Protocol:
    base = dict(min_depth=0.5, max_depth=60.0, input_size=28, pred_floor=0.5)
    return Protocol(**{**base, **kw})


def _assert_same(a, b):
    assert a.counts == b.counts
    for k in a.metrics:
        assert math.isclose(a.metrics[k], b.metrics[k], rel_tol=TOL, abs_tol=TOL), k
        assert math.isclose(a.metrics_pixel_pooled[k], b.metrics_pixel_pooled[k], rel_tol=TOL, abs_tol=TOL), k
    assert [r["name"] for r in a.rows] == [r["name"] for r in b.rows]
    for ra, rb in zip(a.rows, b.rows):
        assert ra["status"] == rb["status"] and ra["valid_pixels"] == rb["valid_pixels"]
        for k, v in ra.items():
            if isinstance(v, float):
                assert math.isclose(v, rb[k], rel_tol=TOL, abs_tol=TOL), (ra["name"], k)


@pytest.mark.parametrize("output_space", ["disparity", "depth"])
def test_logged_predictions_rescore_as_a_direct_run(tmp_path, tiny_samples, horizon, output_space):
    logged = _proto(alignment="scale_shift_disparity", score_space="disparity")
    log = sample_logger(tmp_path, "run1", "horizon_prior", "tiny", mode="pred", output_space=output_space)
    evaluate(horizon, tiny_samples, logged, output_space=output_space, log_sample=log)
    folder = tmp_path / "runs" / "run1" / "samples" / "horizon_prior" / "tiny"
    assert len(list(folder.glob("*.npz"))) == len(tiny_samples)
    cases = [dict(alignment=m, score_space=s) for m in ALIGNMENT_MODES for s in ("disparity", "depth")]
    cases += [dict(alignment="scale_shift_disparity", score_space="depth", depth_cap=20.0, pred_floor=1.0),
              dict(alignment="scale_shift_depth", score_space="depth", alignment_max_res=8, max_depth=30.0),
              dict(alignment="none", score_space="depth", range_inclusive=True, clamp_pred=False, min_valid_pixels=10,
                   metric_family="depth_da2")]
    for case in cases:
        proto = _proto(**case)
        direct = evaluate(horizon, tiny_samples, proto, output_space=output_space)
        rescored, dtypes = score_logged(tiny_samples, proto, [("horizon_prior", output_space, folder)])
        assert dtypes == {"horizon_prior": "float32"}
        _assert_same(rescored["horizon_prior"], direct)


def test_log_modes_and_what_they_keep(tmp_path, tiny_samples, horizon):
    evaluate(horizon, tiny_samples[:1], _proto(), log_sample=sample_logger(tmp_path, "r", "m", "d"))
    evaluate(horizon, tiny_samples[:1], _proto(), log_sample=sample_logger(tmp_path, "p", "m", "d", mode="pred"))
    (full,) = (tmp_path / "runs" / "r" / "samples" / "m" / "d").glob("*.npz")
    (pred,) = (tmp_path / "runs" / "p" / "samples" / "m" / "d").glob("*.npz")
    with np.load(full) as z:  # plain --log-samples: as before
        assert {"pred", "gt", "valid", "aligned", "output_space", "score_space", "status"} <= set(z.files)
        assert z["pred"].dtype == np.float16
    with np.load(pred) as z:
        assert set(z.files) == {"pred", "output_space", "status", "name"}
        assert z["pred"].dtype == np.float32 and str(z["name"]) == tiny_samples[0]["name"]
    assert log_mode(True) == "all" and log_mode("pred") == "pred" and log_mode(False) is None
    with pytest.raises(Exception, match="--log-samples=pred"):
        log_mode("bogus")
    # 2 models × (10 + 5 samples) × 100 px × 4 bytes
    assert estimate_log_bytes([(10, 100), (5, 100)], 2, "pred") == 2 * 15 * 100 * 4


# ---------------------------------------------------------------------------------------------
# trust: a stranger's logs
# ---------------------------------------------------------------------------------------------

def _npz_with_header(path: Path, header: bytes, data: bytes = b"") -> None:
    """An .npz whose pred.npy carries ``header`` (a hand-made .npy header) and ``data``."""
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr("pred.npy", header + data)


def _npy_header(d: dict) -> bytes:
    from numpy.lib import format as npformat
    import io

    buf = io.BytesIO()
    npformat.write_array_header_1_0(buf, d)
    return buf.getvalue()


def test_logged_prediction_checks_header_before_reading(tmp_path):
    huge = tmp_path / "huge.npz"  # claims 10^10 floats but holds none: refused from the header alone
    _npz_with_header(huge, _npy_header({"descr": "<f4", "fortran_order": False, "shape": (100_000, 100_000)}))
    with pytest.raises(DataError, match=r"\(100000, 100000\).*\(4, 5\)"):
        read_logged_prediction(huge, (4, 5), "s")
    obj = tmp_path / "obj.npz"
    _npz_with_header(obj, _npy_header({"descr": "|O", "fortran_order": False, "shape": (4, 5)}))
    with pytest.raises(DataError, match="float32 or float16"):
        read_logged_prediction(obj, (4, 5), "s")
    bad = tmp_path / "bad.npz"
    bad.write_bytes(b"not a zip")
    with pytest.raises(DataError, match="not a --log-samples"):
        read_logged_prediction(bad, (4, 5), "s")
    other = tmp_path / "other.npz"
    np.savez_compressed(other, pred=np.ones((4, 5), np.float32), name=np.array("t"))
    with pytest.raises(DataError, match="logged for sample 't', not 's'"):
        read_logged_prediction(other, (4, 5), "s")
    with pytest.raises(DataError, match="--log-samples=pred"):
        read_logged_prediction(tmp_path / "absent.npz", (4, 5), "s")


# ---------------------------------------------------------------------------------------------
# the commands, end to end on a tiny synthetic world
# ---------------------------------------------------------------------------------------------

SUITE = """name: {name}
task: relative
defaults: {{alignment: {alignment}, score_space: {space}, input_size: {size}}}
datasets: [tiny-indoor, tiny-outdoor]
primary_metrics: [abs_rel, delta1]
"""


@pytest.fixture
def world(tmp_path, monkeypatch):
    """Two tiny synthetic cards and four suites in a $DABENCH_CONFIG_PATH folder."""
    from dabench import configs

    cfg = tmp_path / "cfg"
    (cfg / "datasets").mkdir(parents=True)
    (cfg / "suites").mkdir()
    for name, src, size in (("tiny-indoor", "synthetic-indoor", "[24, 32]"), ("tiny-outdoor", "synthetic-outdoor",
                                                                              "[24, 36]")):
        text = (configs.shipped_dir("datasets") / f"{src}.yaml").read_text()
        lines = [f"name: {name}" if ln.startswith("name:") else f"size: {size}" if ln.startswith("size:") else ln
                 for ln in text.splitlines()]
        (cfg / "datasets" / f"{name}.yaml").write_text("\n".join(lines) + "\n")
    for name, alignment, space, size in (("tiny-a", "scale_shift_disparity", "disparity", 28),
                                         ("tiny-b", "scale_shift_depth", "depth", 28),
                                         ("tiny-c", "median", "depth", 28),
                                         ("tiny-big", "scale_shift_disparity", "disparity", 42)):
        (cfg / "suites" / f"{name}.yaml").write_text(SUITE.format(name=name, alignment=alignment, space=space,
                                                                  size=size))
    monkeypatch.setenv("DABENCH_CONFIG_PATH", str(cfg))
    return tmp_path / "results"


MODELS = "horizon_prior,constant"


def _invoke(*args):
    return CliRunner().invoke(app, [str(a) for a in args])


def _file(rec) -> str:
    """The file a loaded record came from (``record.path``)."""
    return str(rec.path)


def _records(results: Path, suite: str, *, rescored: bool) -> dict:
    from dabench.results.store import load_records

    return {(r["model"], r["dataset"]): r for r in load_records(results, history=True)
            if r["suite"] == suite and bool(r.get("rescored_from")) == rescored and "/runs/" in _file(r)}


def _csv(rec: dict):
    import pandas as pd

    from dabench.results.store import samples_csv_path

    return pd.read_csv(samples_csv_path(_file(rec)))


def test_rescore_equals_a_direct_run_and_refuses_other_inference(world):
    results = world
    r = _invoke("run", "--suite", "tiny-a", "-m", MODELS, "--limit", 2, "--log-samples=pred", "--bootstrap", 20,
                "--results", results, "--device", "cpu")
    assert r.exit_code == 0, r.output
    assert "--log-samples=pred: 8 samples" in flat(r.output)  # printed before the run starts
    (run_dir,) = (results / "runs").iterdir()
    run_id = run_dir.name
    for suite in ("tiny-b", "tiny-c"):
        r = _invoke("rescore", "--run", run_id, "--suite", suite, "--results", results)
        assert r.exit_code == 0, r.output
        assert _invoke("run", "--suite", suite, "-m", MODELS, "--limit", 2, "--bootstrap", 20, "--results", results,
                       "--device", "cpu").exit_code == 0
        again, direct = _records(results, suite, rescored=True), _records(results, suite, rescored=False)
        assert set(again) == set(direct) and len(again) == 4
        for key, rec in again.items():
            ref = direct[key]
            assert rec["rescored_from"] == run_id and rec["inference_mismatch"] is None
            assert rec["protocol"] == ref["protocol"] and rec["selection"] == ref["selection"]
            assert rec["samples"] == ref["samples"]
            for block in ("metrics", "metrics_pixel_pooled"):
                for m, v in ref[block].items():
                    assert math.isclose(rec[block][m], v, rel_tol=TOL, abs_tol=TOL), (key, block, m)
            for m, (lo, hi) in ref["ci"].items():
                assert np.allclose(rec["ci"][m], [lo, hi], rtol=TOL, atol=TOL), (key, m)
            a, b = _csv(rec), _csv(ref)
            assert list(a["name"]) == list(b["name"])
            assert np.allclose(a.select_dtypes("number"), b.select_dtypes("number"), rtol=TOL, atol=TOL,
                               equal_nan=True)
    # a run folder works as well as an id; its manifest says where the records came from
    r = _invoke("rescore", "--run", run_dir, "--suite", "tiny-b")
    assert r.exit_code == 0, r.output
    manifests = [json.loads(p.read_text()) for p in (results / "runs").glob("*/run.json")]
    assert sum(m.get("rescored_from") == run_id for m in manifests) == 3
    # another input size: refused, naming both; allowed and recorded with the flag
    r = _invoke("rescore", "--run", run_id, "--suite", "tiny-big", "--results", results)
    assert r.exit_code == 2
    out = flat(r.output)
    assert "input_size 42" in out and "input_size 28" in out and "--allow-inference-mismatch" in out
    r = _invoke("rescore", "--run", run_id, "--suite", "tiny-a", "--flip-tta", "--results", results)
    assert r.exit_code == 2 and "flip_tta True" in flat(r.output) and "flip_tta False" in flat(r.output)
    r = _invoke("rescore", "--run", run_id, "--suite", "tiny-a", "--precision", "bf16", "--results", results)
    assert r.exit_code == 2 and "precision bf16" in flat(r.output)
    r = _invoke("rescore", "--run", run_id, "--suite", "tiny-big", "--results", results, "--allow-inference-mismatch")
    assert r.exit_code == 0, r.output
    big = _records(results, "tiny-big", rescored=True)
    assert len(big) == 4
    for rec in big.values():
        assert rec["inference_mismatch"] == {"input_size": {"run": 28, "suite": 42}}
        assert rec["protocol"]["input_size"] == 28  # what produced the predictions
    # bad input: one line, exit 2
    for args, words in ((("--run", "20990101T000000Z-000000", "--suite", "tiny-b"), "no run"),
                        (("--run", run_id, "--suite", "nope"), "unknown suite"),
                        (("--run", run_id, "--suite", "seg-synthetic"), "depth suites")):
        r = _invoke("rescore", *args, "--results", results)
        assert r.exit_code == 2 and words in flat(r.output), r.output


def test_rescore_needs_logged_predictions_and_keeps_names_inside(world, tmp_path):
    results = world
    assert _invoke("run", "--suite", "tiny-a", "-m", "constant", "--limit", 1, "--datasets", "tiny-indoor",
                   "--bootstrap", 0, "--results", results, "--device", "cpu").exit_code == 0
    (run_dir,) = (results / "runs").iterdir()
    r = _invoke("rescore", "--run", run_dir.name, "--suite", "tiny-b", "--results", results)
    assert r.exit_code == 2 and "--log-samples=pred" in flat(r.output)
    # a stranger's record naming a model '..' cannot point the samples folder outside the run
    rec_path = next(run_dir.rglob("tiny-indoor*.json"))
    rec = json.loads(rec_path.read_text())
    rec["model"] = ".."
    rec_path.write_text(json.dumps(rec))
    r = _invoke("rescore", "--run", run_dir.name, "--suite", "tiny-b", "--results", results)
    assert r.exit_code == 2 and "cannot be used as a path" in flat(r.output)
    # a logged file that is a symlink to outside the run folder is refused
    rec["model"] = "constant"
    rec_path.write_text(json.dumps(rec))
    folder = run_dir / "samples" / "constant" / "tiny-indoor"
    folder.mkdir(parents=True)
    outside = tmp_path / "outside.npz"
    np.savez_compressed(outside, pred=np.ones((24, 32), np.float32))
    (folder / f"{sample_file_name('synthetic-indoor/test/000000')}.npz").symlink_to(outside)
    r = _invoke("rescore", "--run", run_dir.name, "--suite", "tiny-b", "--results", results)
    assert r.exit_code == 2 and "outside" in flat(r.output)
