"""Comparison tables built from records and published tables: ``ComparisonTable`` (rows, columns,
ranking marks) and ``build_table``.

Rules (shared by every output format):
- a column's direction comes from the records' ``higher_is_better`` (source of truth), else the
  metric registry; ↑ / ↓ is printed next to the metric name;
- values are ranked as printed (rounded with the metric's format), so what looks tied is tied:
  every row holding the best printed value is bold, every row holding the second-best distinct
  value is underlined; a column with fewer than two values, or unknown direction, is not ranked;
- missing cells print "–" (LaTeX "--") and are never ranked;
- own rows are labelled by the source of the model they scored (the record's ``model_source``):
  ``<model> (dabench)`` for dabench's networks and checkpoints, ``(hf)`` for transformers models,
  ``(diffusers)`` for diffusers pipelines, ``(plugin)`` for plug-in and Python-API models;
- weight-free baselines (``constant``, ``horizon_prior``, segmentation's ``majority_class``) are shown,
  labelled ``(dabench, baseline)``, and never ranked: they are a floor, not a competitor;
- headers carry units (``RMSE (m)``, ``mIoU (%)``); percentages print with the paper's one decimal;
- partial records (a ``--limit`` run) are left out unless asked for (``include_partial``); then they
  are separate rows labelled ``partial n=<samples>`` and never ranked against complete ones;
- published rows carry a footnote naming their source (paper and table number).
"""
from __future__ import annotations

import fnmatch
from dataclasses import dataclass, field
from typing import Iterable

from dabench.results.frame import METRIC_ORDER, arrow, dataset_display, format_value, metric_info
from dabench.results.published import PublishedTable
from dabench.results.record import Record, is_complete, selection_of
from dabench.results.store import record_higher_is_better

OWN_SUFFIX = " (dabench)"  # the label suffix of a row scored by one of dabench's own models
MODEL_SOURCES = ("dabench", "hf", "diffusers", "plugin")
MISSING = {"md": "–", "latex": "--", "html": "–"}


@dataclass
class Column:
    dataset: str
    metric: str
    higher_is_better: bool | None
    dataset_label: str
    metric_label: str
    fmt: str
    unit: str = ""  # "m", "1/m", "%", "×100" or "" (a ratio)

    @property
    def header(self) -> str:
        """``"<dataset> <metric> (<unit>)↑"`` as every renderer prints it."""
        unit = f" ({self.unit})" if self.unit else ""
        return f"{self.dataset_label} {self.metric_label}{unit}{arrow(self.higher_is_better)}"


@dataclass
class TableRow:
    label: str
    model: str
    kind: str  # "published" | "own"
    params: float | None = None
    values: dict[tuple[str, str], float | None] = field(default_factory=dict)
    footnotes: list[int] = field(default_factory=list)  # 1-based indexes into ComparisonTable.footnotes
    baseline: bool = False  # weight-free baseline: shown, never ranked
    partial: bool = False  # scored a --limit subset: shown (with --include-partial) but never ranked
    ci: dict[tuple[str, str], tuple[float, float]] = field(default_factory=dict)
    source: str = ""  # own rows: who provides the model (``record_source``); published rows: ""


@dataclass
class ComparisonTable:
    title: str
    columns: list[Column]
    rows: list[TableRow]
    footnotes: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    show_ci: bool = False  # print each own value's 95 % bootstrap CI ([low, high]) next to it

    @property
    def own_rows(self) -> list[TableRow]:
        return [r for r in self.rows if r.kind == "own"]

    def cell(self, row: TableRow, col: Column) -> float | None:
        return row.values.get((col.dataset, col.metric))

    def marks(self) -> dict[tuple[int, int], str]:
        """``{(row_index, column_index): "best" | "second"}`` following the module's ranking rules."""
        out: dict[tuple[int, int], str] = {}
        for j, col in enumerate(self.columns):
            if col.higher_is_better is None:
                continue
            printed = {}
            for i, row in enumerate(self.rows):
                if row.baseline or row.partial:
                    continue
                s = format_value(self.cell(row, col), col.fmt)
                if s is not None:  # a percent format (".1%") ranks on its printed number
                    printed[i] = float(s.rstrip("%"))
            if len(printed) < 2:
                continue
            distinct = sorted(set(printed.values()), reverse=bool(col.higher_is_better))
            best = distinct[0]
            second = distinct[1] if len(distinct) > 1 else None
            for i, v in printed.items():
                if v == best:
                    out[(i, j)] = "best"
                elif second is not None and v == second:
                    out[(i, j)] = "second"
        return out

    def best_rows(self, dataset: str, metric: str) -> list[str]:
        """Labels of the rows printed bold in one column (for checks and tests)."""
        marks = self.marks()
        for j, col in enumerate(self.columns):
            if col.dataset == dataset and col.metric == metric:
                return [self.rows[i].label for (i, jj), m in marks.items() if jj == j and m == "best"]
        raise KeyError(f"no column {dataset}/{metric}")


# Percentages print as the paper prints them (Tables 7, 8 and 10: one decimal), whatever the registry's
# finer default; everything else follows the metric registry.
TABLE_FMT = {"miou": ".1f", "miou_ms": ".1f", "macc": ".1f", "aacc": ".1f"}


_UNIT_TEXT = {"x100": "×100", "score-space unit": ""}


def record_is_baseline(record: Record) -> bool:
    """True for records of a weight-free baseline model (``constant``, ``horizon_prior``, and the
    ``majority_class`` segmentation baseline that ``dabench finetune seg`` and the seg suites record)."""
    name = str(record.get("arch") or record.get("model"))
    if record.get("task") == "segmentation" and name == "majority_class":
        return True
    try:
        from dabench.models import MODELS, is_baseline  # noqa: PLC0415

        return name in MODELS and is_baseline(name)
    except ImportError:
        return name in ("constant", "horizon_prior")


def record_source(record: dict) -> str:
    """Who provides the model a record scored: ``dabench``, ``hf``, ``diffusers`` or ``plugin`` (the record's
    ``model_source``; records written before that key existed were all dabench's own models)."""
    source = str(record.get("model_source") or "dabench")
    return source if source in MODEL_SOURCES else "plugin"


def metric_unit(metric: str, score_spaces: Iterable[str] = (), published_units: dict | None = None) -> str:
    """The unit shown in a column header. RMSE is in the score space's unit: metres when scored in
    depth, 1/m when scored in disparity (unknown or mixed: no unit)."""
    if published_units and published_units.get(metric):
        return str(published_units[metric])
    info = metric_info(metric)
    unit = _UNIT_TEXT.get(info["unit"], info["unit"])
    if metric in ("rmse",):
        spaces = set(score_spaces)
        unit = {"depth": "m", "disparity": "1/m"}.get(spaces.pop(), "") if len(spaces) == 1 else ""
    return unit


def _match_any(name: str, patterns: Iterable[str] | None) -> bool:
    pats = list(patterns or [])
    return not pats or any(fnmatch.fnmatchcase(name, p) for p in pats)


def own_column_key(record: Record, published: list[PublishedTable]) -> tuple[str, bool]:
    """The dataset column an own record belongs to and whether its mIoU is multi-scale."""
    ds = record.get("dataset")
    for t in published:
        c = t.canonical_dataset(ds)
        if c is not None:
            ds = c
            break
    proto = record.get("protocol") or {}
    multi_scale = bool(proto.get("multi_scale_flip_tta") or proto.get("multi_scale"))
    return ds, multi_scale


def build_table(records: list[Record] | None = None, *, published: list[PublishedTable] | None = None,
                datasets: list[str] | None = None, metrics: list[str] | None = None,
                models: list[str] | None = None, title: str | None = None,
                dataset_order: list[str] | None = None,
                keep_empty_columns: bool = False) -> ComparisonTable:
    """Build a comparison table from result records (already filtered to one suite/task by the caller)
    and published tables.

    ``datasets``/``metrics`` select and order the columns exactly; without them the columns are
    ``dataset_order`` (e.g. the suite's datasets), then published datasets, then any other dataset
    the records hold, and the published metrics (else every recorded metric). Columns nobody has a
    value for are dropped unless both lists were given or ``keep_empty_columns``. ``models`` are
    fnmatch patterns on own model names."""
    published = list(published or [])
    records = [r for r in (records or []) if _match_any(str(r.get("model")), models)]
    notes: list[str] = []

    # --- own rows ----------------------------------------------------------------------------
    own: dict[str, TableRow] = {}
    own_dates: dict[tuple[str, str, str], str] = {}
    hib_from_records: dict[str, bool] = {}
    record_datasets: list[str] = []
    record_metrics: list[str] = []
    score_spaces: dict[str, set[str]] = {}
    skipped: dict[str, list[dict]] = {}
    labelled_by_scored: set[str] = set()
    for rec in records:
        model = str(rec.get("model"))
        baseline = record_is_baseline(rec)
        partial = not is_complete(rec)
        source = record_source(rec)
        label = f"{model} ({source}" + (", random init" if rec.get("random_init") else ", baseline" if baseline else "")
        if partial:
            label += f", partial n={selection_of(rec)['n_selected']}"
        label += ")"
        row_key = model + ("\0partial" if partial else "")
        row = own.setdefault(row_key, TableRow(label=label, model=model, kind="own", baseline=baseline,
                                               partial=partial, source=source))
        # a skipped record (dataset not on disk: n=0) must not name the row when a scored one exists
        if rec.get("status", "ok") == "ok" and row_key not in labelled_by_scored:
            row.label = label
            labelled_by_scored.add(row_key)
        if rec.get("model_params") is not None:
            row.params = rec["model_params"]
        ds, multi_scale = own_column_key(rec, published)
        if rec.get("fallback_for"):
            fb = rec["fallback_for"]
            fb = ", ".join(map(str, fb)) if isinstance(fb, (list, tuple)) else str(fb)
            note = (f"{rec.get('dataset')} was evaluated as a stand-in for {fb} (data not on disk); its numbers "
                    f"are in the {rec.get('dataset')} column, never in the {fb} column.")
            if note not in notes:
                notes.append(note)
        if rec.get("status", "ok") != "ok":
            skipped.setdefault(model, []).append(rec)
            continue
        if ds not in record_datasets:
            record_datasets.append(ds)
        for m, v in (rec.get("metrics") or {}).items():
            if isinstance(v, dict) or (v is not None and not isinstance(v, (int, float))):
                continue
            col_metric = "miou_ms" if (m == "miou" and multi_scale) else m
            space = (rec.get("protocol") or {}).get("score_space")
            if space:
                score_spaces.setdefault(col_metric, set()).add(str(space))
            hib = record_higher_is_better(rec, m)
            if hib is not None:
                hib_from_records.setdefault(col_metric, hib)
            if col_metric not in record_metrics:
                record_metrics.append(col_metric)
            key = (ds, col_metric)
            date = str(rec.get("date") or "")
            if key in row.values and own_dates.get((model, *key), "") > date:
                continue  # two records for the same cell (different suites): the newest wins
            if key in row.values:
                notes.append(f"{model}: more than one record for {ds}/{col_metric}; the newest is shown.")
            row.values[key] = None if v is None else float(v)
            ci = (rec.get("ci") or {}).get(m)
            if isinstance(ci, (list, tuple)) and len(ci) == 2 and all(isinstance(x, (int, float)) for x in ci):
                row.ci[key] = (float(ci[0]), float(ci[1]))
            else:
                row.ci.pop(key, None)
            own_dates[(model, *key)] = date

    for model, recs in skipped.items():
        if len(recs) == 1:
            reason = (recs[0].get("skip_reason") or "no reason given").rstrip(".")
            notes.append(f"{model} on {recs[0].get('dataset')}: {recs[0].get('status')} ({reason}).")
        else:
            names = ", ".join(sorted(str(r.get("dataset")) for r in recs))
            notes.append(f"{model}: skipped on {names} (`dabench results ls` gives the reasons).")

    # --- published rows ----------------------------------------------------------------------
    footnotes: list[str] = []
    pub_rows: dict[str, TableRow] = {}
    for t in published:
        if t.source not in footnotes:
            footnotes.append(t.source)
        fn = footnotes.index(t.source) + 1
        for note in t.notes:
            if note not in notes:
                notes.append(note)
        for pr in t.rows:
            row = pub_rows.setdefault(pr.model, TableRow(label=pr.model, model=pr.model, kind="published"))
            if pr.params is not None:
                row.params = pr.params
            if fn not in row.footnotes:
                row.footnotes.append(fn)
            for ds, vals in pr.results.items():
                for m, v in vals.items():
                    row.values[(ds, m)] = v

    # --- columns -----------------------------------------------------------------------------
    def _dedupe(seq):
        out = []
        for x in seq:
            if x not in out:
                out.append(x)
        return out

    explicit_ds, explicit_m = datasets is not None, metrics is not None
    def _canon(names):
        return [next((c for t in published if (c := t.canonical_dataset(d))), d) for d in names]

    if datasets is None:
        datasets = _dedupe(_canon(dataset_order or []) + [d for t in published for d in t.datasets]
                           + record_datasets)
    else:
        datasets = _dedupe(_canon(datasets))
    if metrics is None:
        pub_metrics = _dedupe([m for t in published for m in t.metrics])
        metrics = pub_metrics or sorted(record_metrics, key=lambda m: (METRIC_ORDER.index(m)
                                                                       if m in METRIC_ORDER else 99, m))
    rows = list(pub_rows.values()) + sorted(own.values(), key=lambda r: (r.partial, r.model))
    if any(r.partial for r in rows):
        notes.append("Rows marked partial scored a --limit subset of a dataset: shown for information, never "
                     "ranked against complete runs.")
    ds_names = {k: v for t in published for k, v in t.dataset_names.items()}
    pub_units = {k: v for t in published for k, v in t.units.items()}
    columns = []
    for ds in datasets:
        for m in metrics:
            present = any(r.values.get((ds, m)) is not None for r in rows)
            if not present and not (keep_empty_columns or (explicit_ds and explicit_m)):
                continue
            info = metric_info(m)
            hib = hib_from_records.get(m, info["higher_is_better"])
            label = ds_names.get(ds) or dataset_display(ds)
            unit = metric_unit(m, score_spaces.get(m, ()), pub_units)
            columns.append(Column(ds, m, hib, label, info["display"], TABLE_FMT.get(m, info["fmt"]), unit))
    if any(r.baseline for r in rows):
        names = ", ".join(r.model for r in rows if r.baseline)
        notes.append(f"Weight-free baselines ({names}) are shown for reference and not ranked.")
    return ComparisonTable(title=title or "", columns=columns, rows=rows, footnotes=footnotes, notes=notes)
