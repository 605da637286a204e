"""One results record (dabench.results.record) and honest runs: partial records beside complete ones,
run history, the "latest complete" view tables read, fallbacks only when asked."""
from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from dabench.cli import app
from dabench.errors import MissingFileError
from dabench.eval.runner import run_suite
from dabench.metrics.registry import METRICS, SEG_METRICS
from dabench.results.record import (SCHEMA, indices_hash, is_complete, make_record, make_selection, same_samples,
                                    selection_of)
from dabench.results.store import latest_records, list_runs, load_records, record_path, write_record
from dabench.tasks import EvalRequest

runner = CliRunner()


def _rec(model="m", dataset="nyu", limit=None, n=10, total=10, date="2026-01-01T00:00:00+00:00", abs_rel=0.1):
    rec = make_record(task="relative", suite="s", model=model, dataset=dataset, metric_names=["abs_rel", "delta1"],
                      seed=0, config={"limit": limit}, metrics={"abs_rel": abs_rel, "delta1": 0.9},
                      selection=make_selection(limit, [f"x{i}" for i in range(n)], n, total), run_id=None)
    rec["date"] = date
    return rec


def test_make_record_reads_metric_facts_from_the_registry():
    rec = make_record(task="segmentation", suite="seg", model="m", dataset="d", metric_names=SEG_METRICS, seed=3,
                      config={})
    assert rec["schema"] == SCHEMA == "dabench.result/2"
    for m in SEG_METRICS:
        spec = METRICS.get(m)
        assert rec["averaging"][m] == spec.averaging == "pixel"
        assert rec["higher_is_better"][m] is spec.higher_is_better
        assert rec["units"][m] == spec.unit and rec["formats"][m] == spec.fmt
    assert rec["seed"] == 3 and "versions" in rec and "git_commit" in rec and "date" in rec
    depth = _rec()
    assert depth["averaging"] == {"abs_rel": "image", "delta1": "image"}
    with pytest.raises(Exception, match="abs_rell"):
        make_record(task="relative", suite="s", model="m", dataset="d", metric_names=["abs_rell"], seed=0, config={})


def test_selection_and_same_samples():
    full, part = _rec(), _rec(limit=4, n=4)
    assert is_complete(full) and not is_complete(part)
    assert full["selection"]["indices_sha256"] == indices_hash([f"x{i}" for i in range(10)])
    ok, why = same_samples(full, part)
    assert not ok and "4 samples (limit 4)" in why
    assert same_samples(full, _rec(model="other"))[0]
    # a limit at least as large as the split is complete
    assert is_complete(_rec(limit=50, n=10, total=10))
    # dabench.result/1 records: the selection is inferred from config.limit
    v1 = {"schema": "dabench.result/1", "config": {"limit": 2}, "samples": {"used": 2, "skipped_no_valid": 0}}
    assert selection_of(v1)["complete"] is False and selection_of(v1)["n_selected"] == 2


def test_partial_is_written_beside_complete_and_tables_read_latest_complete(tmp_path):
    complete = write_record(_rec(abs_rel=0.1), tmp_path)
    partial = write_record(_rec(limit=4, n=4, abs_rel=0.5, date="2026-02-01T00:00:00+00:00"), tmp_path)
    assert complete == record_path(tmp_path, "s", "m", "nyu")
    assert partial == record_path(tmp_path, "s", "m", "nyu", partial=True) != complete
    assert json.loads(complete.read_text())["metrics"]["abs_rel"] == 0.1  # not overwritten
    (view,) = latest_records(load_records(tmp_path))
    assert view["metrics"]["abs_rel"] == 0.1
    # a model with only a partial record: left out by default, marked (and never ranked) with --include-partial
    write_record(_rec(model="p", limit=4, n=4, abs_rel=0.01), tmp_path)
    res = runner.invoke(app, ["table", "--results", str(tmp_path), "--suite", "s"])
    assert res.exit_code == 0 and "p (dabench" not in res.output and "**0.100**" not in res.output
    res = runner.invoke(app, ["table", "--results", str(tmp_path), "--suite", "s", "--include-partial"])
    assert res.exit_code == 0, res.output
    assert "| p (dabench, partial n=4) |" in res.output
    assert "**0.010**" not in res.output  # the better partial number is not bold against complete ones
    only_partial = tmp_path / "only"
    write_record(_rec(limit=4, n=4), only_partial)
    res = runner.invoke(app, ["table", "--results", str(only_partial)])
    assert res.exit_code == 2 and "--include-partial" in res.output


def test_run_history_and_partial_runs(tmp_path):
    out = tmp_path / "r"
    kw = dict(datasets=["synthetic-indoor"], results_dir=out, show_progress=False, use_cache=False, bootstrap=50)
    (first,) = run_suite("synthetic", EvalRequest(limit=2, **kw), models=["horizon_prior"])
    (second,) = run_suite("synthetic", EvalRequest(limit=3, **kw), models=["horizon_prior"])
    assert first["run_id"] != second["run_id"] and not is_complete(first)
    assert first["selection"]["n_total"] == 32 and first["selection"]["limit"] == 2
    assert first["data_source"] == {"kind": "synthetic", "root": None, "fallback_for": None}
    runs = list_runs(out)
    assert [r["run_id"] for r in runs] == sorted([first["run_id"], second["run_id"]], reverse=True)
    assert all(r["complete"] is False and r["records"] == 1 for r in runs)
    # each run keeps its own record; the latest view holds the newest partial one
    hist = load_records(out, history=True)
    assert sorted(r["selection"]["n_selected"] for r in hist if "runs" in r.path.parts) == [2, 3]
    (view,) = load_records(out)
    assert view["run_id"] == second["run_id"]
    res = runner.invoke(app, ["results", "ls", "--results", str(out), "--history"])
    assert res.exit_code == 0 and first["run_id"] in res.output and "partial" in res.output


def test_missing_dataset_under_a_data_root_is_an_error_unless_allow_fallback(tmp_path):
    root = tmp_path / "data"
    root.mkdir()
    kw = dict(datasets=["nyu"], limit=1, results_dir=tmp_path / "r", show_progress=False, use_cache=False,
              data_root=root)
    with pytest.raises(MissingFileError) as e:
        run_suite("zero-shot", EvalRequest(**kw), models=["constant"])
    msg = str(e.value)
    assert str(root / "nyu") in msg and "datasets/nyu.yaml" in msg and "--allow-fallback" in msg
    recs = run_suite("zero-shot", EvalRequest(allow_fallback=True, **kw), models=["constant"])
    by = {r["dataset"]: r for r in recs}
    assert by["nyu"]["status"] == "skipped"
    assert by["synthetic-indoor"]["data_source"]["fallback_for"] == ["nyu"]
    assert by["synthetic-indoor"]["data_source"]["kind"] == "synthetic"
    res = runner.invoke(app, ["run", "--suite", "zero-shot", "--model", "constant", "--datasets", "nyu",
                              "--limit", "1", "--data-root", str(root), "--results", str(tmp_path / "r2")],
                        env={"COLUMNS": "500"})
    assert res.exit_code == 2 and "allow-fallback" in res.output.replace("\n", "").replace("│", "")


def test_log_samples_writes_float16_npz_per_sample(tmp_path):
    import numpy as np

    out = tmp_path / "r"
    (rec,) = run_suite("synthetic", EvalRequest(datasets=["synthetic-indoor"], limit=2, results_dir=out,
                       show_progress=False, use_cache=False, bootstrap=0, log_samples=True), models=["horizon_prior"])
    folder = out / "runs" / rec["run_id"] / "samples" / "horizon_prior" / "synthetic-indoor"
    files = sorted(folder.glob("*.npz"))
    assert len(files) == 2
    with np.load(files[0]) as z:
        assert z["pred"].dtype == np.float16 and z["gt"].dtype == np.float16 and z["valid"].dtype == bool
        assert z["pred"].shape == z["gt"].shape == z["valid"].shape == z["aligned"].shape
        assert str(z["status"]) == "ok" and str(z["output_space"]) == "disparity"
        assert str(z["score_space"]) == "disparity"
    # without the flag nothing is logged
    (rec2,) = run_suite("synthetic", EvalRequest(datasets=["synthetic-indoor"], limit=2, results_dir=out,
                        show_progress=False, use_cache=False, bootstrap=0), models=["horizon_prior"])
    assert not (out / "runs" / rec2["run_id"] / "samples").exists()
