"""Results store: record layout, atomic writes, loading, the tidy frame, `dabench results ls|export`."""
from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from dabench.cli import app
from dabench.errors import DataError, MissingFileError
from dabench.results.record import SCHEMA, Record
from dabench.results.store import FRAME_COLUMNS, load_records, record_path, records_dataframe, write_record


def _rec(model="m1", dataset="nyu", suite="zero-shot", **kw):
    rec = {"status": "ok", "task": "relative", "suite": suite, "model": model, "model_params": 1000,
           "dataset": dataset, "metrics": {"abs_rel": 0.1, "delta1": 0.9},
           "higher_is_better": {"abs_rel": False, "delta1": True},
           "protocol": {"alignment": "scale_shift_disparity", "score_space": "disparity"},
           "git_commit": "abc123", "date": "2026-01-01T00:00:00+00:00"}
    rec.update(kw)
    return rec


def test_write_record_layout_and_roundtrip(tmp_path):
    path = write_record(_rec(), tmp_path)
    assert path == record_path(tmp_path, "zero-shot", "m1", "nyu") == tmp_path / "zero-shot" / "m1" / "nyu.json"
    data = json.loads(path.read_text())
    assert data["schema"] == SCHEMA and data["metrics"] == {"abs_rel": 0.1, "delta1": 0.9}
    assert not [p for p in path.parent.iterdir() if p.name.endswith(".tmp")]  # no temp file left behind
    (loaded,) = load_records(tmp_path)
    assert loaded["model"] == "m1" and isinstance(loaded, Record) and loaded.path == path
    assert "_path" not in loaded and json.loads(json.dumps(loaded)) == data  # the path never reaches the JSON


def test_write_record_rejects_incomplete_record(tmp_path):
    with pytest.raises(DataError, match="missing keys: model"):
        write_record({"status": "ok", "suite": "s", "dataset": "d", "metrics": {}}, tmp_path)


def test_load_records_skips_foreign_json_and_reports_corrupt(tmp_path):
    write_record(_rec(), tmp_path)
    (tmp_path / "report.json").write_text(json.dumps({"schema": "dabench.regress/1", "passed": True}))
    (tmp_path / "other.json").write_text("[1, 2]")
    assert len(load_records(tmp_path)) == 1
    (tmp_path / "zero-shot" / "bad.json").write_text("{not json")
    with pytest.raises(DataError, match="bad.json: corrupt result record"):
        load_records(tmp_path)


def test_load_records_unsupported_schema_and_missing_path(tmp_path):
    (tmp_path / "x.json").write_text(json.dumps({**_rec(), "schema": "dabench.result/99"}))
    with pytest.raises(DataError, match="unsupported record schema"):
        load_records(tmp_path)
    with pytest.raises(MissingFileError, match="does not exist"):
        load_records(tmp_path / "nope")


def test_records_dataframe_is_tidy(tmp_path):
    write_record(_rec("m1", "nyu"), tmp_path)
    write_record(_rec("m2", "kitti", metrics={"abs_rel": 0.2, "custom": 3.0},
                      higher_is_better={"custom": True}), tmp_path)
    write_record(_rec("m3", "kitti", status="skipped", skip_reason="not on disk", metrics={}), tmp_path)
    frame = records_dataframe(tmp_path)
    assert tuple(frame.columns) == FRAME_COLUMNS
    assert len(frame) == 4  # 2 + 2 metrics; the skipped record has none
    row = frame[(frame.model == "m2") & (frame.metric == "custom")].iloc[0]
    assert row.value == 3.0 and row.higher_is_better is True or row.higher_is_better == True  # noqa: E712
    # the record's direction is the source of truth; without one the registry decides
    assert frame[(frame.model == "m2") & (frame.metric == "abs_rel")].higher_is_better.item() == False  # noqa: E712
    assert frame[(frame.model == "m1") & (frame.metric == "delta1")].higher_is_better.item() == True  # noqa: E712
    assert set(frame.commit) == {"abc123"} and frame.protocol.iloc[0] == "alignment=scale_shift_disparity,score_space=disparity"
    with_skipped = records_dataframe(tmp_path, include_skipped=True)
    assert len(with_skipped) == 5 and with_skipped[with_skipped.model == "m3"].metric.isna().all()


def test_record_direction_overrides_registry(tmp_path):
    write_record(_rec(metrics={"abs_rel": 0.1}, higher_is_better={"abs_rel": True}), tmp_path)
    assert records_dataframe(tmp_path).higher_is_better.item() == True  # noqa: E712


def test_results_ls_and_export(tmp_path):
    write_record(_rec("da2_vits14", "nyu", model_params=24785089), tmp_path)
    write_record(_rec("horizon_prior", "kitti", status="skipped", skip_reason="dataset kitti not found",
                      metrics={}), tmp_path)
    runner = CliRunner()
    res = runner.invoke(app, ["results", "ls", "--results", str(tmp_path)])
    assert res.exit_code == 0, res.output
    assert "da2_vits14" in res.output and "24.8M" in res.output and "AbsRel=0.100" in res.output
    assert "skipped: dataset kitti not found" in res.output and "2 record(s)" in res.output
    res = runner.invoke(app, ["results", "ls", "--results", str(tmp_path), "--model", "horizon*", "--format", "json"])
    assert res.exit_code == 0 and [r["model"] for r in json.loads(res.output)] == ["horizon_prior"]
    out = tmp_path / "frame.csv"
    res = runner.invoke(app, ["results", "export", "--results", str(tmp_path), "--out", str(out)])
    assert res.exit_code == 0, res.output
    lines = out.read_text().splitlines()
    assert lines[0].split(",")[:6] == ["suite", "task", "model", "dataset", "metric", "value"] and len(lines) == 3


def test_results_ls_missing_dir_is_a_clear_error(tmp_path):
    res = CliRunner().invoke(app, ["results", "ls", "--results", str(tmp_path / "none")])
    assert res.exit_code == 2
    text = " ".join(res.output.replace("│", " ").split())  # the error box wraps long lines
    assert "does not exist" in text and "none" in text


@pytest.mark.parametrize("field,value,phrase", [
    ("metrics", "abc", "'metrics' must be an object"),  # was an AttributeError traceback in `dabench table`
    ("model", 12, "'model' must be a string"),
    ("dataset", None, "'dataset' must be a string"),
])
def test_hostile_record_fields_are_one_error_naming_the_file(tmp_path, field, value, phrase):
    (tmp_path / "x.json").write_text(json.dumps({**_rec(), "schema": SCHEMA, field: value}))
    with pytest.raises(DataError, match=phrase) as err:
        load_records(tmp_path)
    assert "x.json" in str(err.value)
    r = CliRunner().invoke(app, ["table", "--results", str(tmp_path)])
    assert r.exit_code == 2, r.output  # one clear error, not a traceback (exit 1)


def test_oversized_record_file_is_not_read(tmp_path, monkeypatch):
    import dabench.results.store as store

    monkeypatch.setattr(store, "MAX_RECORD_BYTES", 1000)
    (tmp_path / "x.json").write_text(json.dumps({**_rec(), "schema": SCHEMA, "junk": "x" * 2000}))
    with pytest.raises(DataError, match="too large for a result record"):
        load_records(tmp_path)


def test_out_flags_never_overwrite_result_records(tmp_path):
    """table/export/compare/regress --out naming a record (or another existing file of the results): one
    clear error, the record untouched (table --out over a record replaced it with Markdown before)."""
    path = write_record({**_rec(), "selection": {"complete": True}}, tmp_path / "res")
    before = path.read_bytes()
    runner = CliRunner()
    for args in (["table", "--results", str(tmp_path / "res"), "--out", str(path)],
                 ["results", "export", "--results", str(tmp_path / "res"), "--out", str(path)],
                 ["compare", "m1", "m2", "--suite", "zero-shot", "--results", str(tmp_path / "res"), "--out", str(path)],
                 ["regress", "--baseline", str(tmp_path / "res"), "--current", str(tmp_path / "res"),
                  "--out", str(path)]):
        r = runner.invoke(app, args)
        assert r.exit_code == 2 and "inside the input" in " ".join(r.output.split()), (args, r.output)
    assert path.read_bytes() == before
    assert sorted(p.name for p in path.parent.iterdir()) == [path.name]
