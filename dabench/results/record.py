"""One results record for every task: the typed ``Record`` schema and its one builder ``make_record``.

Every writer (the depth suite runner, the segmentation suite, the metric fine-tuning baseline)
builds its records here, so direction (``higher_is_better``), averaging (per image / pixel-pooled),
unit and display format always come from the metric registry (``dabench.metrics.METRICS``) and
never from a hard-coded copy. Modelled on lm-evaluation-harness' ``result_schema.py``.

Schema ``dabench.result/2`` (this module) adds to ``dabench.result/1``:

- ``run_id``: the run that wrote the record (``YYYYmmddTHHMMSSZ-<6 hex>``);
- ``selection``: which samples were scored: ``limit``, ``n_selected``, ``n_total`` (split size),
  ``complete`` (the whole split was selected), ``indices_sha256`` (hash of the scored sample ids,
  in order: two records with the same hash scored the same samples);
- ``data_source``: what was scored: ``kind`` (``"disk"`` or ``"synthetic"``), ``root`` (the folder
  read, or None), ``fallback_for`` (the real datasets a synthetic stand-in replaced);
- ``units`` / ``formats``: per metric, from the registry;
- ``ci`` / ``bootstrap``: 95 % percentile-bootstrap intervals of the per-image metrics (see
  ``dabench.results.stats``).

``dabench.result/1`` records stay readable (``READABLE_SCHEMAS``); what they lack is inferred by
``selection_of`` (a /1 record with ``config.limit`` set counts as partial).
"""
from __future__ import annotations

import datetime as _dt
import hashlib
import os
from pathlib import Path
from typing import Any, Iterable, Optional, TypedDict

SCHEMA = "dabench.result/2"
READABLE_SCHEMAS = ("dabench.result/1", "dabench.result/2")
REQUIRED_KEYS = ("schema", "status", "suite", "model", "dataset", "metrics")


class Selection(TypedDict):
    """Which samples a record scored."""

    limit: Optional[int]
    n_selected: int
    n_total: Optional[int]
    complete: bool
    indices_sha256: Optional[str]


class DataSource(TypedDict):
    """What data a record scored: files under ``root`` or the procedural synthetic stand-in."""

    kind: str  # "disk" | "synthetic"
    root: Optional[str]
    fallback_for: Optional[list]


class RecordFields(TypedDict, total=False):
    """The keys of a ``dabench.result/2`` record (one per suite × model × dataset), as stored in its
    JSON file. Keys beyond these are allowed (task-specific blocks such as ``per_class``)."""

    schema: str
    run_id: Optional[str]
    status: str  # "ok" | "skipped"
    skip_reason: Optional[str]
    task: str
    suite: str
    model: str
    arch: Optional[str]
    model_params: Optional[int]
    checkpoint: Optional[str]
    checkpoint_sha256: Optional[str]
    random_init: bool
    dataset: str
    split: Optional[str]
    fallback_for: Optional[list]
    data_source: DataSource
    metrics: dict[str, Optional[float]]
    higher_is_better: dict[str, bool]
    averaging: dict[str, str]
    units: dict[str, str]
    formats: dict[str, str]
    metric_order: list[str]
    primary_metrics: list[str]
    ci: dict[str, list[float]]
    bootstrap: Optional[dict]
    protocol: Optional[dict]
    samples: dict[str, int]
    selection: Selection
    seed: Optional[int]
    config: dict
    versions: dict[str, str]
    git_commit: Optional[str]
    date: str


class Record(dict):
    """One result record: the JSON object itself (keys: ``RecordFields``) and ``path``, the file it
    was read from or last written to (``None`` for a record held only in memory).

    ``path`` is an attribute, never a key, so it never reaches the JSON; every function that reads or
    writes records takes and returns ``Record`` (``make_record``, ``dabench.results.store.load_records``
    / ``write_record``, the suite runners). A record is a ``dict`` so it is written with ``json`` as is
    and read by key (``record["metrics"]``)."""

    def __init__(self, data: Any = (), path: str | os.PathLike | None = None):
        super().__init__(data)
        self.path = None if path is None else Path(path)

    def __repr__(self) -> str:
        return f"Record({dict.__repr__(self)}, path={str(self.path) if self.path else None!r})"


def metric_facts(names: Iterable[str]) -> dict[str, dict[str, Any]]:
    """``{"higher_is_better", "averaging", "units", "formats"}`` blocks for ``names`` from the registry
    (an unregistered name raises, listing the valid ones)."""
    from dabench.metrics.registry import get_metric

    specs = [get_metric(n) for n in names]
    return {"higher_is_better": {s.name: s.higher_is_better for s in specs},
            "averaging": {s.name: s.averaging for s in specs},
            "units": {s.name: s.unit for s in specs},
            "formats": {s.name: s.fmt for s in specs}}


def indices_hash(sample_ids: Iterable[Any]) -> str:
    """sha256 of the scored sample ids in order (one id per line)."""
    # names as the OS gave them: a Latin-1 file name (surrogates after os.fsdecode) hashes as its bytes
    return hashlib.sha256("\n".join(str(s) for s in sample_ids).encode("utf-8", "surrogateescape")).hexdigest()


def make_selection(limit: int | None, sample_ids: Iterable[Any] | None, n_selected: int,
                   n_total: int | None) -> Selection:
    """The ``selection`` block: complete when no ``limit`` cut the split (``n_selected >= n_total``)."""
    ids = list(sample_ids) if sample_ids is not None else None
    complete = limit is None or (n_total is not None and n_selected >= n_total)
    return Selection(limit=None if limit is None else int(limit), n_selected=int(n_selected),
                     n_total=None if n_total is None else int(n_total), complete=bool(complete),
                     indices_sha256=indices_hash(ids) if ids is not None else None)


def make_data_source(kind: str, root: str | os.PathLike | None = None,
                     fallback_for: list | None = None) -> DataSource:
    if kind not in ("disk", "synthetic"):
        raise ValueError(f"data source kind must be 'disk' or 'synthetic', got {kind!r}")
    return DataSource(kind=kind, root=None if root is None else str(root),
                      fallback_for=list(fallback_for) if fallback_for else None)


def make_run_id(now: _dt.datetime | None = None, salt: str = "") -> str:
    """A run id: UTC time + 6 hex of a hash of (time in ns, pid, salt), e.g. ``20261130T235316Z-3fa1c2``."""
    import time

    now = now or _dt.datetime.now(_dt.timezone.utc)
    h = hashlib.sha256(f"{time.time_ns()}:{os.getpid()}:{salt}".encode()).hexdigest()[:6]
    return now.strftime("%Y%m%dT%H%M%SZ") + "-" + h


def make_record(*, task: str, suite: str, model: str, dataset: str, metric_names: Iterable[str],
                seed: int | None, config: dict, metrics: dict[str, float | None] | None = None,
                status: str = "ok", skip_reason: str | None = None, run_id: str | None = None,
                selection: Selection | None = None, data_source: DataSource | None = None,
                samples: dict[str, int] | None = None, metric_order: list[str] | None = None,
                primary_metrics: list[str] | None = None, protocol: dict | None = None,
                **fields: Any) -> Record:
    """Assemble one record. ``metric_names`` are the metrics this task reports (registered in
    ``METRICS``); their direction, averaging, unit and format are read from the registry. ``fields``
    adds the task's other keys (``arch``, ``checkpoint``, ``per_class``, ``ci`` ...). Provenance
    (seed, config, package versions, git commit, date) is added here."""
    from dabench.provenance import provenance

    if status not in ("ok", "skipped"):
        raise ValueError(f"record status must be 'ok' or 'skipped', got {status!r}")
    names = list(metric_names)
    metrics = dict(metrics or {})
    extra = [k for k in metrics if k not in names]
    names += extra  # a metric reported beyond the task's list still gets its registry facts
    rec: dict[str, Any] = {
        "schema": SCHEMA, "run_id": run_id, "status": status, "skip_reason": skip_reason, "task": task,
        "suite": suite, "model": model, "arch": None, "model_params": None, "checkpoint": None,
        "checkpoint_sha256": None, "random_init": False, "dataset": dataset, "split": None,
        "fallback_for": (data_source or {}).get("fallback_for"), "data_source": data_source,
        "metrics": metrics, **metric_facts(names),
        "metric_order": list(metric_order or names), "primary_metrics": list(primary_metrics or []),
        "ci": {}, "bootstrap": None, "protocol": protocol,
        "samples": dict(samples or {"used": 0, "skipped_no_valid": 0, "skipped_degenerate": 0,
                                    "skipped_missing": 0}),
        "selection": selection,
    }
    rec.update(fields)
    rec.update(provenance(seed, config))
    return Record(rec)


def selection_of(record: dict) -> Selection:
    """The record's ``selection`` block; for ``dabench.result/1`` records one inferred from
    ``config.limit`` and ``samples`` (no indices hash: such records compare by limit and counts)."""
    sel = record.get("selection")
    if isinstance(sel, dict) and "complete" in sel:
        return sel  # type: ignore[return-value]
    limit = (record.get("config") or {}).get("limit")
    used = sum(int(v or 0) for k, v in (record.get("samples") or {}).items()
               if k in ("used", "skipped_no_valid", "skipped_degenerate"))
    return Selection(limit=limit, n_selected=used, n_total=None, complete=limit is None, indices_sha256=None)


def is_complete(record: dict) -> bool:
    """True when the record scored its dataset's whole split (no ``--limit`` cut)."""
    return bool(selection_of(record)["complete"])


def same_samples(a: dict, b: dict) -> tuple[bool, str]:
    """Whether two records scored the same samples, and if not why (for reports)."""
    sa, sb = selection_of(a), selection_of(b)
    ha, hb = sa.get("indices_sha256"), sb.get("indices_sha256")
    if ha and hb:
        if ha == hb:
            return True, ""
        return False, (f"different sample sets: {sa['n_selected']} samples (limit {sa['limit']}) vs "
                       f"{sb['n_selected']} samples (limit {sb['limit']}), sample-id hashes differ")
    if sa.get("limit") == sb.get("limit") and sa.get("n_selected") == sb.get("n_selected"):
        return True, ""
    return False, (f"different sample sets: {sa['n_selected']} samples (limit {sa['limit']}) vs "
                   f"{sb['n_selected']} samples (limit {sb['limit']})")
