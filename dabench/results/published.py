"""Published numbers (``dabench/configs/published/*.yaml``): one file per paper table, each labelled
with its source. They are data, never computed: dabench only prints them next to its own results.

File schema (``dabench.published/1``)::

    id: da1-table2            # unique id
    paper / table / title / source / protocol / notes
    match: {tasks: [...], suites: [...]}   # which own results belong next to this table
    datasets: [kitti, ...]    # column order; keys are the suite/card dataset names
    dataset_aliases: {diode: [diode-indoor]}   # own dataset names shown in this column
    metrics: [abs_rel, delta1]
    units: {miou: "%"}
    rows: [{model: "...", params: 24.8e6 | absent, results: {dataset: {metric: value|null}}}]
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

from dabench.errors import ConfigError, DataError, MissingFileError, excerpt

SCHEMA = "dabench.published/1"


@dataclass
class PublishedRow:
    model: str
    results: dict[str, dict[str, float | None]]
    params: float | None = None
    note: str | None = None

    def value(self, dataset: str, metric: str) -> float | None:
        return (self.results.get(dataset) or {}).get(metric)


@dataclass
class PublishedTable:
    id: str
    table: str
    title: str
    source: str
    datasets: list[str]
    metrics: list[str]
    rows: list[PublishedRow]
    paper: str = ""
    protocol: str = ""
    notes: list[str] = field(default_factory=list)
    match_tasks: list[str] = field(default_factory=list)
    match_suites: list[str] = field(default_factory=list)
    dataset_aliases: dict[str, list[str]] = field(default_factory=dict)
    dataset_names: dict[str, str] = field(default_factory=dict)
    units: dict[str, str] = field(default_factory=dict)
    path: str = ""

    def row(self, model: str) -> PublishedRow:
        for r in self.rows:
            if r.model == model:
                return r
        raise KeyError(f"{self.id}: no published row {excerpt(model)}; rows: {', '.join(r.model for r in self.rows)}")

    def canonical_dataset(self, name: str) -> str | None:
        """The column of this table that an own dataset name belongs to (aliases included), else None."""
        if name in self.datasets:
            return name
        for col, aliases in self.dataset_aliases.items():
            if name in aliases:
                return col
        return None

    def matches(self, suite: str | None = None, task: str | None = None) -> bool:
        return (suite is not None and suite in self.match_suites) or (task is not None and task in self.match_tasks)


def published_dir() -> Path:
    """The shipped published tables (``dabench/configs/published``)."""
    from dabench import configs

    return configs.shipped_dir("published")


def _as_list(v, what: str, src: str) -> list:
    if v is None:
        return []
    if not isinstance(v, list):
        raise DataError(f"{src}: '{what}' must be a list, got {type(v).__name__}")
    return v


def parse_published(data: dict, src: str = "<published>") -> PublishedTable:
    """Validate one published-table mapping and return it as a ``PublishedTable``."""
    if not isinstance(data, dict):
        raise DataError(f"{src}: expected a mapping at the top level")
    if data.get("schema") != SCHEMA:
        raise DataError(f"{src}: schema must be {excerpt(SCHEMA)}, got {excerpt(data.get('schema'))}")
    for key in ("id", "table", "source", "datasets", "metrics", "rows"):
        if key not in data:
            raise DataError(f"{src}: missing key {excerpt(key)} (every published table needs a source and its rows)")
    datasets = [str(d) for d in _as_list(data["datasets"], "datasets", src)]
    metrics = [str(m) for m in _as_list(data["metrics"], "metrics", src)]
    rows = []
    for i, r in enumerate(_as_list(data["rows"], "rows", src)):
        if not isinstance(r, dict) or "model" not in r or not isinstance(r.get("results"), dict):
            raise DataError(f"{src}: row {i} needs 'model' and a 'results' mapping")
        results: dict[str, dict[str, float | None]] = {}
        for ds, vals in r["results"].items():
            if ds not in datasets:
                raise DataError(f"{src}: row {excerpt(r['model'])} has dataset {excerpt(ds)} not in datasets {excerpt(datasets, 200)}")
            if not isinstance(vals, dict):
                raise DataError(f"{src}: row {excerpt(r['model'])} dataset {excerpt(ds)}: expected a metric -> value mapping")
            for m, v in vals.items():
                if m not in metrics:
                    raise DataError(f"{src}: row {excerpt(r['model'])} has metric {excerpt(m)} not in metrics {excerpt(metrics, 200)}")
                if v is not None and not isinstance(v, (int, float)):
                    raise DataError(f"{src}: row {excerpt(r['model'])} {ds}/{m}: value {excerpt(v)} is not a number")
            results[str(ds)] = {str(m): (None if v is None else float(v)) for m, v in vals.items()}
        params = r.get("params")
        rows.append(PublishedRow(model=str(r["model"]), results=results,
                                 params=None if params is None else float(params), note=r.get("note")))
    match = data.get("match") or {}
    return PublishedTable(
        id=str(data["id"]), table=str(data["table"]), title=str(data.get("title", data["table"])),
        source=str(data["source"]), datasets=datasets, metrics=metrics, rows=rows,
        paper=str(data.get("paper", "")), protocol=str(data.get("protocol", "")),
        notes=[str(n) for n in _as_list(data.get("notes"), "notes", src)],
        match_tasks=[str(t) for t in _as_list(match.get("tasks"), "match.tasks", src)],
        match_suites=[str(s) for s in _as_list(match.get("suites"), "match.suites", src)],
        dataset_aliases={str(k): [str(a) for a in v] for k, v in (data.get("dataset_aliases") or {}).items()},
        dataset_names={str(k): str(v) for k, v in (data.get("dataset_names") or {}).items()},
        units={str(k): str(v) for k, v in (data.get("units") or {}).items()},
        path=src,
    )


def load_published(directory: str | os.PathLike | None = None) -> list[PublishedTable]:
    """All published tables in ``directory`` (default: the shipped ``dabench/configs/published`` plus
    ``$DABENCH_CONFIG_PATH`` folders, a user file shadowing a shipped one of the same name), sorted by
    table number."""
    from dabench import configs
    from dabench.safety import load_yaml

    if directory is not None:
        d = Path(directory)
        if not d.is_dir():
            raise MissingFileError(f"published-results directory {d} does not exist")
        files = sorted(d.glob("*.y*ml"))
    else:
        files = [e.path for e in configs.entries("published").values()]
    tables = []
    seen: dict[str, str] = {}
    for f in files:
        data = load_yaml(f, "published table", error=DataError)
        t = parse_published(data, str(f))
        if t.id in seen:
            raise DataError(f"{f}: published table id {excerpt(t.id)} already used by {seen[t.id]}")
        seen[t.id] = str(f)
        tables.append(t)
    return sorted(tables, key=_table_sort_key)


def _table_sort_key(t: PublishedTable):
    digits = "".join(c for c in t.table if c.isdigit())
    return (int(digits) if digits else 10**6, t.id)


def get_published(table_id: str, directory=None) -> PublishedTable:
    tables = load_published(directory)
    for t in tables:
        if t.id == table_id:
            return t
    raise ConfigError(f"unknown published table {excerpt(table_id)}; known: {', '.join(t.id for t in tables)}")
