"""Versioned JSON result records: one per (suite/task, model, dataset), plus the run history.

Layout under a results directory::

    {suite}/{model}/{dataset}.json                 latest complete record ("latest complete" view)
    {suite}/{model}/{dataset}.partial.json         latest partial record (a --limit run), beside it
    {suite}/{model}/{dataset}[.partial].samples.csv  per-sample values of the record next to it
    runs/{run_id}/run.json                         the run's manifest (dabench.run/1)
    runs/{run_id}/{suite}/{model}/{dataset}.json   every record of every run, never overwritten
    runs/{run_id}/samples/{model}/{dataset}/{sample_id}.npz   with --log-samples

A partial run never replaces a complete record. Records are written atomically (temp file +
rename). Schema: ``dabench.results.record`` and docs/architecture.md.
"""
from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any, Iterable

from dabench.errors import DataError, MissingFileError, excerpt
from dabench.provenance import atomic_write_json
from dabench.results.record import READABLE_SCHEMAS, REQUIRED_KEYS, SCHEMA, Record, is_complete

RUNS_DIR = "runs"
RUN_SCHEMA = "dabench.run/1"
PARTIAL_SUFFIX = ".partial"


def safe_name(name: str) -> str:
    """``name`` with every character outside letters, digits and ``-_.+`` replaced by ``_`` (a file name)."""
    return "".join(c if (c.isalnum() or c in "-_.+") else "_" for c in str(name))


MAX_SAMPLES_CSV_BYTES = 2**30


def sample_file_name(name) -> str:
    """The file stem of one sample's ``--log-samples`` array: a readable part (:func:`safe_name`, cut to
    80 characters, never ``.``/``..``) plus 16 hex digits of the sha256 of the name's bytes as the OS
    gives them (``os.fsencode``). Different names give different files (``a/b_003``, ``a_b/003`` and
    ``a/b/003`` no longer meet in one ``.npz``)."""
    import hashlib

    raw = os.fsencode(str(name))
    readable = safe_name(str(name))[:80]
    readable = readable if readable.strip(".") else "_" * len(readable)
    return f"{readable}-{hashlib.sha256(raw).hexdigest()[:16]}"


def read_samples_csv_text(csv: Path) -> str:
    """A per-sample CSV's text: a regular file of at most 1 GiB; sample names that are not UTF-8 come
    back as written (surrogateescape, as ``os.fsdecode``)."""
    from dabench.safety import read_bounded

    return read_bounded(csv, "per-sample CSV", MAX_SAMPLES_CSV_BYTES).decode("utf-8", "surrogateescape")


def record_path(results_dir: str | os.PathLike, suite: str, model: str, dataset: str, *,
                partial: bool = False) -> Path:
    """``results_dir/suite/model/dataset.json`` (``dataset.partial.json`` for a partial record, beside
    it); names that would leave ``results_dir`` (``..``) are refused."""
    from dabench.safety import safe_join

    for what, name in (("suite", suite), ("model", model), ("dataset", dataset)):
        safe_join(results_dir, safe_name(name), what=f"record {what}", error=DataError)
    stem = safe_name(dataset) + (PARTIAL_SUFFIX if partial else "")
    return safe_join(results_dir, safe_name(suite), safe_name(model), f"{stem}.json", what="record path", error=DataError)


def run_dir(results_dir: str | os.PathLike, run_id: str) -> Path:
    """The history folder of one run (``results_dir/runs/<run_id>``)."""
    from dabench.safety import safe_join

    return safe_join(results_dir, RUNS_DIR, safe_name(run_id), what="run id", error=DataError)


def samples_csv_path(record_file: str | os.PathLike) -> Path:
    """The per-sample CSV written beside a record file."""
    p = Path(record_file)
    return p.with_name(p.stem + ".samples.csv")


#: A record is a few KiB (per-sample values go to the CSV beside it); larger files are not read.
MAX_RECORD_BYTES = 64 << 20


def validate_record(record: dict, source: str = "<record>") -> dict:
    missing = [k for k in REQUIRED_KEYS if k not in record]
    if missing:
        raise DataError(f"{source}: not a dabench result record (missing keys: {', '.join(missing)})")
    if record["schema"] not in READABLE_SCHEMAS:
        raise DataError(f"{source}: unsupported record schema {excerpt(record['schema'])}; expected one of "
                        f"{', '.join(map(repr, READABLE_SCHEMAS))}")
    # a stranger's record: the fields every table, report and comparison reads must have their types
    for key in ("suite", "model", "dataset"):
        if key in record and not isinstance(record[key], str):
            raise DataError(f"{source}: record field {excerpt(key)} must be a string, got {type(record[key]).__name__}")
    if "metrics" in record and not isinstance(record["metrics"], dict):
        raise DataError(f"{source}: record field 'metrics' must be an object of metric name -> value, got "
                        f"{type(record['metrics']).__name__}")
    return record


def write_record(record: Record | dict[str, Any], results_dir: str | os.PathLike, *, history: bool = True) -> Path:
    """Validate and atomically write one record; returns the path of its latest-view file (also set
    as ``record.path`` when ``record`` is a ``Record``).

    A complete record goes to ``{dataset}.json``, a partial one (``selection.complete`` false) to
    ``{dataset}.partial.json``; a record with a ``run_id`` is also kept under ``runs/{run_id}/``."""
    data = {"schema": SCHEMA, **{k: v for k, v in record.items() if not k.startswith("_")}}
    validate_record(data)
    path = record_path(results_dir, data["suite"], data["model"], data["dataset"], partial=not is_complete(data))
    atomic_write_json(path, data)
    if history and data.get("run_id"):
        atomic_write_json(history_path(results_dir, data), data)
    if isinstance(record, Record):
        record.path = path
    return path


def history_path(results_dir: str | os.PathLike, record: dict) -> Path:
    """The file of ``record`` in its run's history folder."""
    return record_path(run_dir(results_dir, record["run_id"]), record["suite"], record["model"], record["dataset"],
                       partial=not is_complete(record))


def iter_record_files(paths: Iterable[str | os.PathLike] | str | os.PathLike, *,
                      history: bool = False) -> list[Path]:
    """Expand files and directories (recursively, ``*.json``) into record files. A directory's
    ``runs/`` history folder is left out unless ``history``."""
    if isinstance(paths, (str, os.PathLike)):
        paths = [paths]
    out: list[Path] = []
    for p in paths:
        p = Path(p)
        if p.is_dir():
            for q in sorted(q for q in p.rglob("*.json") if not q.name.startswith(".")
                            and (history or q.relative_to(p).parts[0] != RUNS_DIR)):
                if q.is_symlink() and not q.exists():
                    raise DataError(f"results file {q} is a broken symlink (to {os.readlink(q)}); remove it or "
                                    "restore its target")
                if q.is_file():  # a folder named x.json is a folder (rglob looks inside it)
                    out.append(q)
        elif p.is_file():
            out.append(p)
        else:
            raise MissingFileError(f"results path {p} does not exist")
    return out


def load_records(paths, *, skip_foreign: bool = True, history: bool = False) -> list[Record]:
    """Load records from files/directories (the latest view: complete and partial records, not the
    ``runs/`` history unless ``history``), each with ``path`` = its file. Non-record JSON files in a
    directory are ignored when ``skip_foreign``; a corrupt JSON file is an error naming it."""
    records = []
    for f in iter_record_files(paths, history=history):
        try:
            from dabench.safety import read_text_bounded

            rec = json.loads(read_text_bounded(f, "result record", MAX_RECORD_BYTES))  # regular file, capped
        except (json.JSONDecodeError, UnicodeDecodeError) as e:
            raise DataError(f"{f}: corrupt result record ({e})") from None
        except RecursionError:
            raise DataError(f"{f}: not a result record (JSON nested too deeply to read)") from None
        except OSError as e:
            raise DataError(f"{f}: cannot read result record ({e.strerror or e})") from None
        if not isinstance(rec, dict) or not str(rec.get("schema") or "").startswith("dabench.result"):
            if skip_foreign:
                continue
            raise DataError(f"{f}: not a dabench result record")
        records.append(Record(validate_record(rec, str(f)), path=f))
    return records


def record_key(record: dict) -> tuple[str, str, str]:
    return (str(record.get("suite")), str(record.get("model")), str(record.get("dataset")))


def latest_records(records: list[Record], *, include_partial: bool = False) -> list[Record]:
    """The "latest complete" view: per (suite, model, dataset) the newest complete record. With
    ``include_partial`` a key that has only partial records gets its newest partial one (callers
    mark it: ``is_complete(record)`` is False). Order of first appearance is kept."""
    best: dict[tuple[str, str, str], Record] = {}
    for rec in records:
        key = record_key(rec)
        if not is_complete(rec) and not include_partial:
            continue
        cur = best.get(key)
        rank = (is_complete(rec), str(rec.get("date") or ""))
        if cur is None or rank > (is_complete(cur), str(cur.get("date") or "")):
            best[key] = rec
    return list(best.values())


def load_samples(record: Record):
    """The per-sample values of a record (pandas DataFrame from the CSV beside its file), or None
    when the record has none (no file, segmentation, hand-made records, ``dabench.result/1`` copies)."""
    import pandas as pd

    path = getattr(record, "path", None)
    if not path:
        return None
    csv = samples_csv_path(path)
    if not csv.is_file():
        return None
    try:
        import io

        raw = read_samples_csv_text(csv).encode("utf-8", "surrogateescape")
        frame = pd.read_csv(io.BytesIO(raw), dtype={"name": str}, encoding="utf-8",
                            encoding_errors="surrogateescape")
    except (ValueError, pd.errors.ParserError) as e:
        raise DataError(f"{csv}: corrupt per-sample CSV ({e})") from None
    if "name" not in frame.columns or "status" not in frame.columns:
        raise DataError(f"{csv}: per-sample CSV lacks the name/status columns")
    return frame


def write_run_manifest(results_dir: str | os.PathLike, run_id: str, manifest: dict) -> Path:
    """Write ``runs/{run_id}/run.json`` (schema ``dabench.run/1``)."""
    path = run_dir(results_dir, run_id) / "run.json"
    atomic_write_json(path, {"schema": RUN_SCHEMA, "run_id": run_id, **manifest})
    return path


def list_runs(results_dir: str | os.PathLike) -> list[dict]:
    """The run history, newest first: each run's manifest (or, for a run that died before writing
    one, what its records say)."""
    root = Path(results_dir) / RUNS_DIR
    runs = []
    if not root.is_dir():
        return runs
    for d in sorted((p for p in root.iterdir() if p.is_dir()), reverse=True):
        man = d / "run.json"
        info = None
        if man.is_file():
            try:
                from dabench.safety import read_bounded

                info = json.loads(read_bounded(man, "run manifest", MAX_RECORD_BYTES))
            except (json.JSONDecodeError, UnicodeDecodeError, RecursionError, DataError):
                info = None
        if not isinstance(info, dict) or info.get("schema") != RUN_SCHEMA:
            recs = load_records(d)
            info = {"run_id": d.name, "date": min((str(r.get("date")) for r in recs), default=None),
                    "suite": ",".join(sorted({str(r.get("suite")) for r in recs})),
                    "models": sorted({str(r.get("model")) for r in recs}),
                    "datasets": sorted({str(r.get("dataset")) for r in recs}),
                    "limit": next(((r.get("config") or {}).get("limit") for r in recs), None),
                    "complete": all(is_complete(r) for r in recs) if recs else None,
                    "records": len(recs), "finished": False}
        runs.append(info)
    return runs


# ---------------------------------------------------------------------------------------------
# Tidy frame
# ---------------------------------------------------------------------------------------------

FRAME_COLUMNS = ("suite", "task", "model", "dataset", "metric", "value", "higher_is_better", "protocol",
                 "commit", "date", "model_params", "status", "fallback_for", "checkpoint", "path")


def protocol_string(protocol: dict | None) -> str:
    """A compact, stable, hashable rendering of a record's protocol block (sorted ``key=value``)."""
    if not protocol:
        return ""
    return ",".join(f"{k}={protocol[k]}" for k in sorted(protocol))


def record_higher_is_better(record: dict, metric: str) -> bool | None:
    """Direction of ``metric`` for one record: the record's own ``higher_is_better`` is the source of
    truth; otherwise the metric registry (``dabench.metrics.METRICS``); ``None`` when unknown."""
    hib = (record.get("higher_is_better") or {}).get(metric)
    if hib is not None:
        return bool(hib)
    from dabench.results.frame import metric_info

    return metric_info(metric)["higher_is_better"]


def records_dataframe(paths=None, *, records: list[Record] | None = None, include_skipped: bool = False):
    """One tidy pandas DataFrame (one row per record × metric) from result files/directories (or from
    already loaded ``records``). Columns: ``FRAME_COLUMNS``. Skipped records have no metric rows
    unless ``include_skipped`` (then one row with ``metric``/``value`` = None)."""
    import pandas as pd

    if records is None:
        records = load_records(paths if paths is not None else [])
    rows = []
    for rec in records:
        base = {
            "suite": rec.get("suite"), "task": rec.get("task", rec.get("suite")), "model": rec.get("model"),
            "dataset": rec.get("dataset"), "protocol": protocol_string(rec.get("protocol")),
            "commit": rec.get("git_commit"), "date": rec.get("date"), "model_params": rec.get("model_params"),
            "status": rec.get("status"), "fallback_for": rec.get("fallback_for"),
            "checkpoint": rec.get("checkpoint"),
            "path": str(rec.path) if getattr(rec, "path", None) else None,
        }
        metrics = rec.get("metrics") or {}
        if not metrics and include_skipped:
            rows.append({**base, "metric": None, "value": None, "higher_is_better": None})
        for name, value in metrics.items():
            rows.append({**base, "metric": name, "value": None if value is None else float(value),
                         "higher_is_better": record_higher_is_better(rec, name)})
    frame = pd.DataFrame(rows, columns=list(FRAME_COLUMNS))
    return frame
