"""Versioned JSON result records: one per (suite/task, model, dataset).

Layout: ``{results_dir}/{suite}/{model}/{dataset}.json``. Records are written atomically
(temp file + rename) so a crash never leaves a half-written result. Schema: docs/architecture.md.
"""
from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any, Iterable

from dabench.errors import DataError, MissingFileError
from dabench.provenance import atomic_write_json

SCHEMA = "dabench.result/1"
REQUIRED_KEYS = ("schema", "status", "suite", "model", "dataset", "metrics")


def _safe(name: str) -> str:
    return "".join(c if (c.isalnum() or c in "-_.+") else "_" for c in str(name))


def record_path(results_dir: str | os.PathLike, suite: str, model: str, dataset: str) -> Path:
    """``results_dir/suite/model/dataset.json``; names that would leave ``results_dir`` (``..``) are refused."""
    from dabench.safety import safe_join

    for what, name in (("suite", suite), ("model", model), ("dataset", dataset)):
        safe_join(results_dir, _safe(name), what=f"record {what}", error=DataError)
    return safe_join(results_dir, _safe(suite), _safe(model), f"{_safe(dataset)}.json", what="record path",
                     error=DataError)


def validate_record(record: dict, source: str = "<record>") -> dict:
    missing = [k for k in REQUIRED_KEYS if k not in record]
    if missing:
        raise DataError(f"{source}: not a dabench result record (missing keys: {', '.join(missing)})")
    if record["schema"] != SCHEMA:
        raise DataError(f"{source}: unsupported record schema {record['schema']!r}; expected {SCHEMA!r}")
    return record


def write_record(record: dict[str, Any], results_dir: str | os.PathLike) -> Path:
    """Validate and atomically write one record; returns its path."""
    record = {"schema": SCHEMA, **record}
    validate_record(record)
    path = record_path(results_dir, record["suite"], record["model"], record["dataset"])
    atomic_write_json(path, record)
    return path


def iter_record_files(paths: Iterable[str | os.PathLike] | str | os.PathLike) -> list[Path]:
    """Expand files and directories (recursively, ``*.json``) into record files."""
    if isinstance(paths, (str, os.PathLike)):
        paths = [paths]
    out: list[Path] = []
    for p in paths:
        p = Path(p)
        if p.is_dir():
            out.extend(sorted(q for q in p.rglob("*.json") if not q.name.startswith(".")))
        elif p.is_file():
            out.append(p)
        else:
            raise MissingFileError(f"results path {p} does not exist")
    return out


def load_records(paths, *, skip_foreign: bool = True) -> list[dict]:
    """Load records from files/directories. Non-record JSON files in a directory are ignored
    when ``skip_foreign``; a corrupt JSON file is an error naming it."""
    records = []
    for f in iter_record_files(paths):
        try:
            rec = json.loads(f.read_text())
        except (json.JSONDecodeError, UnicodeDecodeError) as e:
            raise DataError(f"{f}: corrupt result record ({e})") from None
        if not isinstance(rec, dict) or not str(rec.get("schema") or "").startswith("dabench.result"):
            if skip_foreign:
                continue
            raise DataError(f"{f}: not a dabench result record")
        rec = validate_record(rec, str(f))
        rec.setdefault("_path", str(f))
        records.append(rec)
    return records


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


def records_dataframe(paths=None, *, records: list[dict] | None = None, include_skipped: bool = False):
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
            "checkpoint": rec.get("checkpoint"), "path": rec.get("_path"),
        }
        metrics = rec.get("metrics") or {}
        if not metrics and include_skipped:
            rows.append({**base, "metric": None, "value": None, "higher_is_better": None})
        for name, value in metrics.items():
            rows.append({**base, "metric": name, "value": None if value is None else float(value),
                         "higher_is_better": record_higher_is_better(rec, name)})
    frame = pd.DataFrame(rows, columns=list(FRAME_COLUMNS))
    return frame
