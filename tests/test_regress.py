"""Regression reports: direction-aware detection in both directions, tolerances, missing metrics,
Markdown/JSON reports, exit codes, baseline updates."""
from __future__ import annotations

import json
import math

import pytest
from typer.testing import CliRunner

from dabench.cli import app
from dabench.errors import DataError
from dabench.results.regress import (IMPROVED, MISSING_BASELINE, MISSING_CURRENT, REGRESSED, UNCHANGED,
                                     compare_one, compare_records, update_baseline)
from dabench.results.store import load_records, write_record


def _rec(metrics, model="m", dataset="nyu", suite="s", **kw):
    return {"schema": "dabench.result/1", "status": "ok", "suite": suite, "model": model, "dataset": dataset,
            "metrics": metrics, "higher_is_better": {"abs_rel": False, "delta1": True}, "git_commit": "x",
            "date": "2026-01-01", **kw}


def _status(base, cur, **kw):
    (c,) = compare_records([_rec(base)], [_rec(cur)], **kw).comparisons
    return c.status


@pytest.mark.parametrize("base,cur,expected", [
    ({"abs_rel": 0.100}, {"abs_rel": 0.110}, REGRESSED),   # lower is better, went up
    ({"abs_rel": 0.100}, {"abs_rel": 0.090}, IMPROVED),
    ({"delta1": 0.900}, {"delta1": 0.880}, REGRESSED),     # higher is better, went down
    ({"delta1": 0.900}, {"delta1": 0.920}, IMPROVED),
    ({"abs_rel": 0.100}, {"abs_rel": 0.100}, UNCHANGED),
])
def test_direction_aware(base, cur, expected):
    assert _status(base, cur, abs_tol=1e-4, rel_tol=1e-3) == expected


def test_tolerances_absorb_noise_and_catch_changes():
    # tolerance = abs_tol + rel_tol * |baseline| = 1e-4 + 1e-3 * 0.5 = 6e-4
    assert _status({"abs_rel": 0.5}, {"abs_rel": 0.5 + 5.9e-4}, abs_tol=1e-4, rel_tol=1e-3) == UNCHANGED
    assert _status({"abs_rel": 0.5}, {"abs_rel": 0.5 + 6.1e-4}, abs_tol=1e-4, rel_tol=1e-3) == REGRESSED
    assert _status({"delta1": 0.5}, {"delta1": 0.5 - 6.1e-4}, abs_tol=1e-4, rel_tol=1e-3) == REGRESSED
    # a looser tolerance accepts the same change; an exact one flags any change
    assert _status({"abs_rel": 0.5}, {"abs_rel": 0.51}, abs_tol=0.02, rel_tol=0) == UNCHANGED
    assert _status({"abs_rel": 0.5}, {"abs_rel": 0.5 + 1e-9}, abs_tol=0, rel_tol=0) == REGRESSED
    with pytest.raises(DataError, match="tolerances must be >= 0"):
        compare_records([_rec({})], [_rec({})], abs_tol=-1)


def test_nan_and_unknown_direction():
    assert compare_one(0.1, math.nan, False, 1e-4, 1e-3)[0] == REGRESSED
    assert compare_one(math.nan, 0.1, False, 1e-4, 1e-3)[0] == IMPROVED
    assert compare_one(math.nan, None, True, 1e-4, 1e-3)[0] == UNCHANGED
    assert compare_one(1.0, 2.0, None, 1e-4, 1e-3)[0] == REGRESSED   # unknown direction: any change fails
    assert compare_one(1.0, 1.0, None, 1e-4, 1e-3)[0] == UNCHANGED
    # the record's direction is authoritative: a custom metric declared higher-is-better
    rep = compare_records([_rec({"score": 1.0}, higher_is_better={"score": True})],
                          [_rec({"score": 0.5}, higher_is_better={"score": True})])
    assert rep.comparisons[0].status == REGRESSED


def test_missing_on_either_side_fails_unless_allowed():
    base = [_rec({"abs_rel": 0.1, "delta1": 0.9}), _rec({"abs_rel": 0.2}, dataset="kitti")]
    cur = [_rec({"abs_rel": 0.1}), _rec({"abs_rel": 0.3}, dataset="sintel")]
    rep = compare_records(base, cur)
    by = {(c.dataset, c.metric): c for c in rep.comparisons}
    assert by[("nyu", "delta1")].status == MISSING_CURRENT
    assert by[("nyu", "delta1")].reason == "metric absent from the current record"
    assert by[("kitti", "abs_rel")].status == MISSING_CURRENT
    assert by[("kitti", "abs_rel")].reason == "no current record for this model/dataset"
    assert by[("sintel", "abs_rel")].status == MISSING_BASELINE
    assert not rep.passed and rep.exit_code == 1
    assert compare_records(base, cur, allow_missing=True).passed


def test_skipped_current_record_is_missing():
    rep = compare_records([_rec({"abs_rel": 0.1})],
                          [_rec({}, status="skipped", skip_reason="dataset nyu not found")])
    (c,) = rep.comparisons
    assert c.status == MISSING_CURRENT and "skipped: dataset nyu not found" in c.reason


def test_markdown_and_json_reports():
    base = [_rec({"abs_rel": 0.100, "delta1": 0.900}), _rec({"abs_rel": 0.2}, model="n")]
    cur = [_rec({"abs_rel": 0.120, "delta1": 0.950}), _rec({"abs_rel": 0.2}, model="n")]
    rep = compare_records(base, cur, baseline_name="A", current_name="B")
    md = rep.to_markdown()
    first = md.splitlines()[0]
    assert first == ("**❌ FAIL: 1 regression, 1 improved, 1 unchanged (3 metrics compared; "
                     "tolerance abs 0.0001 + rel 0.001)**")
    assert "### Regressions (1)" in md and "| s | m | nyu | AbsRel↓ | 0.1 | 0.12 | +0.02 | +20.00% |" in md
    assert "### Improvements (1)" in md and "Unchanged within tolerance (1)" in md
    d = rep.to_dict()
    assert d["passed"] is False and d["counts"][REGRESSED] == 1 and d["baseline"] == "A"
    json.dumps(d, allow_nan=False)  # strict JSON
    zero = compare_records([_rec({"abs_rel": 0.0})], [_rec({"abs_rel": 0.5})]).to_dict()
    assert zero["comparisons"][0]["rel_delta"] is None  # +inf relative change from 0 is not JSON
    json.dumps(zero, allow_nan=False)
    ok = compare_records(base[1:], cur[1:])
    assert ok.to_markdown().startswith("**✅ PASS: 1 unchanged")


def test_cli_exit_codes_and_report_files(tmp_path):
    base, cur, worse = tmp_path / "base", tmp_path / "cur", tmp_path / "worse"
    write_record(_rec({"abs_rel": 0.100, "delta1": 0.900}), base)
    write_record(_rec({"abs_rel": 0.100 + 5e-5, "delta1": 0.900}), cur)      # float noise
    write_record(_rec({"abs_rel": 0.100, "delta1": 0.850}), worse)          # δ1 dropped
    runner = CliRunner()
    res = runner.invoke(app, ["regress", "--baseline", str(base), "--current", str(cur)])
    assert res.exit_code == 0, res.output
    assert res.output.startswith("**✅ PASS")
    out = tmp_path / "report.md"
    res = runner.invoke(app, ["regress", "--baseline", str(base), "--current", str(worse), "--out", str(out)])
    assert res.exit_code == 1
    assert out.read_text().startswith("**❌ FAIL: 1 regression")
    report = json.loads(out.with_suffix(".json").read_text())
    assert report["passed"] is False and report["comparisons"][1]["metric"] == "delta1"
    # tolerances from the command line
    res = runner.invoke(app, ["regress", "--baseline", str(base), "--current", str(worse), "--abs-tol", "0.1", "-q"])
    assert res.exit_code == 0 and res.output.startswith("✅ PASS")
    # a single record file works as a side, an empty side is an error (exit 2)
    res = runner.invoke(app, ["regress", "--baseline", str(base / "s" / "m" / "nyu.json"), "--current", str(cur)])
    assert res.exit_code == 0
    (tmp_path / "empty").mkdir()
    res = runner.invoke(app, ["regress", "--baseline", str(tmp_path / "empty"), "--current", str(cur)])
    assert res.exit_code == 2 and "no dabench result records" in " ".join(res.output.replace("│", " ").split())


def test_cli_missing_and_allow_missing(tmp_path):
    base, cur = tmp_path / "base", tmp_path / "cur"
    write_record(_rec({"abs_rel": 0.1}), base)
    write_record(_rec({"abs_rel": 0.1}, dataset="kitti"), base)
    write_record(_rec({"abs_rel": 0.1}), cur)
    runner = CliRunner()
    res = runner.invoke(app, ["regress", "--baseline", str(base), "--current", str(cur)])
    assert res.exit_code == 1 and "| s | m | kitti | abs_rel | baseline only |" in res.output
    res = runner.invoke(app, ["regress", "--baseline", str(base), "--current", str(cur), "--allow-missing"])
    assert res.exit_code == 0 and "(allowed)" in res.output.splitlines()[0]


def test_update_baseline(tmp_path):
    base, cur = tmp_path / "base", tmp_path / "cur"
    write_record(_rec({"abs_rel": 0.1}, model="old"), base)
    (base / "README.md").write_text("kept")
    write_record(_rec({"abs_rel": 0.2}), cur)
    written, removed = update_baseline(cur, base)
    assert [p.name for p in removed] == ["nyu.json"] and len(written) == 1
    (rec,) = load_records(base)
    assert rec["model"] == "m" and rec["metrics"] == {"abs_rel": 0.2}
    assert (base / "README.md").read_text() == "kept"
    assert "_path" not in json.loads((base / "s" / "m" / "nyu.json").read_text())
    res = CliRunner().invoke(app, ["regress", "--baseline", str(base), "--current", str(cur)])
    assert res.exit_code == 0
