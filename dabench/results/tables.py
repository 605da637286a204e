"""Comparison tables: rows are models (own runs and published rows), columns are dataset × metric.

Rules (shared by every output format):
- a column's direction comes from the records' ``higher_is_better`` (source of truth), else the
  metric registry; ↑ / ↓ is printed next to the metric name;
- values are ranked as printed (rounded with the metric's format), so what looks tied is tied:
  every row holding the best printed value is bold, every row holding the second-best distinct
  value is underlined; a column with fewer than two values, or unknown direction, is not ranked;
- missing cells print "–" (LaTeX "--") and are never ranked;
- weight-free baselines (``constant``, ``horizon_prior``) are shown, labelled ``(dabench, baseline)``,
  and never ranked: they are a floor, not a competitor;
- headers carry units (``RMSE (m)``, ``mIoU (%)``); percentages print with the paper's one decimal;
- partial records (a ``--limit`` run) are left out unless asked for (``include_partial``); then they
  are separate rows labelled ``partial n=<samples>`` and never ranked against complete ones;
- published rows carry a footnote naming their source (paper and table number); own rows are
  labelled ``<model> (dabench)``.
"""
from __future__ import annotations

import fnmatch
import html
import io
from dataclasses import dataclass, field
from typing import Iterable

from dabench.errors import ConfigError
from dabench.results.frame import (LATEX_METRIC_NAMES, METRIC_ORDER, arrow, dataset_display, format_params,
                                   format_value, metric_info)
from dabench.results.published import PublishedTable
from dabench.results.record import is_complete, selection_of
from dabench.results.store import latest_records, record_higher_is_better

OWN_SUFFIX = " (dabench)"
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


def record_is_baseline(record: dict) -> bool:
    """True for records of a weight-free baseline model (``constant``, ``horizon_prior``)."""
    name = str(record.get("arch") or record.get("model"))
    try:
        from dabench.models import MODELS, is_baseline  # noqa: PLC0415

        return name in MODELS and is_baseline(name)
    except ImportError:
        return name in ("constant", "horizon_prior")


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


def own_column_key(record: dict, published: list[PublishedTable]) -> tuple[str, bool]:
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


def build_table(records: list[dict] | None = None, *, published: list[PublishedTable] | None = None,
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
        label = model + (" (dabench, random init" if rec.get("random_init") else
                         " (dabench, baseline" if baseline else OWN_SUFFIX[:-1])
        if partial:
            label += f", partial n={selection_of(rec)['n_selected']}"
        label += ")"
        row_key = model + ("\0partial" if partial else "")
        row = own.setdefault(row_key, TableRow(label=label, model=model, kind="own", baseline=baseline,
                                               partial=partial))
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


# ---------------------------------------------------------------------------------------------
# Rendering
# ---------------------------------------------------------------------------------------------

def _cells(table: ComparisonTable, style: str) -> list[list[str]]:
    marks = table.marks()
    wrap = {
        "md": {"best": "**{}**", "second": "<u>{}</u>"},
        "latex": {"best": r"\textbf{{{}}}", "second": r"\underline{{{}}}"},
        "html": {"best": "<b>{}</b>", "second": "<u>{}</u>"},
    }[style]
    out = []
    for i, row in enumerate(table.rows):
        line = []
        for j, col in enumerate(table.columns):
            s = format_value(table.cell(row, col), col.fmt)
            if s is None:
                line.append(MISSING[style])
                continue
            m = marks.get((i, j))
            if style == "latex":
                s = latex_escape(s)  # a percent format prints "%"
            s = wrap[m].format(s) if m else s
            ci = row.ci.get((col.dataset, col.metric)) if table.show_ci else None
            if ci is not None:
                s += _ci_text(ci, col.fmt, style)
            line.append(s)
        out.append(line)
    return out


def _ci_text(ci: tuple[float, float], fmt: str, style: str) -> str:
    """`` [low, high]`` of a value's 95 % bootstrap CI, in the column's format and the output's markup."""
    lo, hi = format_value(ci[0], fmt), format_value(ci[1], fmt)
    if style == "latex":
        return r"\,{\scriptsize[" + latex_escape(lo) + ", " + latex_escape(hi) + "]}"
    if style == "html":
        return f" <small>[{lo}, {hi}]</small>"
    return f" [{lo}, {hi}]"


def _md_escape(s: str) -> str:
    return s.replace("|", "\\|")


def to_markdown(table: ComparisonTable) -> str:
    """GitHub-flavoured Markdown: best **bold**, second <u>underlined</u>, footnotes below."""
    header = ["Model", "Params"] + [c.header for c in table.columns]
    lines = []
    if table.title:
        lines += [f"**{table.title}**", ""]
    lines.append("| " + " | ".join(_md_escape(h) for h in header) + " |")
    lines.append("|" + "|".join([":---", "---:"] + ["---:"] * len(table.columns)) + "|")
    for row, cells in zip(table.rows, _cells(table, "md")):
        label = _md_escape(row.label) + "".join(f" [{n}]" for n in row.footnotes)
        lines.append("| " + " | ".join([label, format_params(row.params) or MISSING["md"]] + cells) + " |")
    tail = [f"[{i}] {src}" for i, src in enumerate(table.footnotes, 1)] + list(table.notes)
    if tail:
        lines.append("")
        lines += [t + "  " if k < len(tail) - 1 else t for k, t in enumerate(tail)]
    return "\n".join(lines) + "\n"


_LATEX_SPECIAL = {"\\": r"\textbackslash{}", "&": r"\&", "%": r"\%", "$": r"\$", "#": r"\#", "_": r"\_",
                  "{": r"\{", "}": r"\}", "~": r"\textasciitilde{}", "^": r"\textasciicircum{}",
                  "δ": r"$\delta$", "α": r"$\alpha$", "–": "--", "×": r"$\times$"}


def latex_escape(s: str) -> str:
    return "".join(_LATEX_SPECIAL.get(c, c) for c in str(s))


def to_latex(table: ComparisonTable) -> str:
    """A booktabs ``tabular``: dataset headers spanning their metrics, best ``\\textbf``, second
    ``\\underline``, published rows first, own rows after a rule, source footnotes under the table."""
    cols = table.columns
    n = 2 + len(cols)
    out = (["% " + table.title.replace("\n", " ")] if table.title else []) + [
           "% Generated by dabench; needs \\usepackage{booktabs}.",
           "\\begin{tabular}{ll" + "c" * len(cols) + "}", "\\toprule"]
    groups: list[tuple[str, int]] = []
    for c in cols:
        if groups and groups[-1][0] == c.dataset_label:
            groups[-1] = (c.dataset_label, groups[-1][1] + 1)
        else:
            groups.append((c.dataset_label, 1))
    top = ["Model", "Params"] + [f"\\multicolumn{{{k}}}{{c}}{{{latex_escape(g)}}}" if k > 1 else latex_escape(g)
                                 for g, k in groups]
    out.append(" & ".join(top) + " \\\\")
    rules, start = [], 3
    for _, k in groups:
        rules.append(f"\\cmidrule(lr){{{start}-{start + k - 1}}}")
        start += k
    out.append(" ".join(rules))
    arrows = {True: "$\\uparrow$", False: "$\\downarrow$", None: ""}
    sub = ["", ""] + [LATEX_METRIC_NAMES.get(c.metric, latex_escape(c.metric_label))
                      + (f" ({latex_escape(c.unit)})" if c.unit else "") + arrows[c.higher_is_better] for c in cols]
    out.append(" & ".join(sub) + " \\\\")
    out.append("\\midrule")
    prev_kind = None
    for row, cells in zip(table.rows, _cells(table, "latex")):
        if prev_kind is not None and row.kind != prev_kind:
            out.append("\\midrule")
        prev_kind = row.kind
        label = latex_escape(row.label) + ("$^{" + ",".join(str(f) for f in row.footnotes) + "}$"
                                           if row.footnotes else "")
        out.append(" & ".join([label, format_params(row.params) or "--"] + cells) + " \\\\")
    out.append("\\bottomrule")
    # Footnotes wrap inside a paragraph column about as wide as the table (an `l` column would run
    # off the page): ~14em for the model and parameter columns plus ~3.6em per value column (under-
    # estimated rather than over: a note column wider than the table would widen the table).
    note_col = f"p{{{14 + 3.6 * len(cols):g}em}}"
    for i, src in enumerate(table.footnotes, 1):
        out.append(f"\\multicolumn{{{n}}}{{{note_col}}}{{\\footnotesize $^{{{i}}}$ {latex_escape(src)}}} \\\\")
    for note in table.notes:
        out.append(f"\\multicolumn{{{n}}}{{{note_col}}}{{\\footnotesize {latex_escape(note)}}} \\\\")
    out.append("\\end{tabular}")
    return "\n".join(out) + "\n"


def to_frame(table: ComparisonTable):
    """The table as a pandas DataFrame of raw numbers (columns ``"<dataset>/<metric>"``)."""
    import pandas as pd

    data = []
    for row in table.rows:
        d = {"model": row.label, "kind": row.kind, "params": row.params,
             "source": "; ".join(table.footnotes[f - 1] for f in row.footnotes) or "dabench"}
        for c in table.columns:
            d[f"{c.dataset}/{c.metric}"] = table.cell(row, c)
            if table.show_ci:
                lo, hi = row.ci.get((c.dataset, c.metric), (None, None))
                d[f"{c.dataset}/{c.metric}/ci_low"], d[f"{c.dataset}/{c.metric}/ci_high"] = lo, hi
        data.append(d)
    cols = []
    for c in table.columns:
        cols.append(f"{c.dataset}/{c.metric}")
        if table.show_ci:
            cols += [f"{c.dataset}/{c.metric}/ci_low", f"{c.dataset}/{c.metric}/ci_high"]
    return pd.DataFrame(data, columns=["model", "kind", "params", "source"] + cols)


def to_csv(table: ComparisonTable) -> str:
    buf = io.StringIO()
    to_frame(table).to_csv(buf, index=False)
    return buf.getvalue()


def to_html(table: ComparisonTable) -> str:
    import pandas as pd

    cells = _cells(table, "html")
    header = ["Model", "Params"] + [c.header for c in table.columns]
    body = []
    for row, line in zip(table.rows, cells):
        label = html.escape(row.label) + "".join(f"<sup>{n}</sup>" for n in row.footnotes)
        body.append([label, format_params(row.params) or MISSING["html"]] + line)
    frame = pd.DataFrame(body, columns=[html.escape(h) for h in header])
    parts = []
    if table.title:
        parts.append(f"<p><b>{html.escape(table.title)}</b></p>")
    parts.append(frame.to_html(index=False, escape=False, border=0, classes="dabench-table"))
    for i, src in enumerate(table.footnotes, 1):
        parts.append(f"<p><sup>{i}</sup> {html.escape(src)}</p>")
    for note in table.notes:
        parts.append(f"<p>{html.escape(note)}</p>")
    return "\n".join(parts) + "\n"


RENDERERS = {"md": to_markdown, "markdown": to_markdown, "latex": to_latex, "tex": to_latex,
             "csv": to_csv, "html": to_html}


def render(table: ComparisonTable, fmt: str) -> str:
    if fmt not in RENDERERS:
        raise ConfigError(f"unknown table format {fmt!r}; choose one of md, latex, csv, html")
    return RENDERERS[fmt](table)


# ---------------------------------------------------------------------------------------------
# Suite-level entry point (used by `dabench table`)
# ---------------------------------------------------------------------------------------------

def load_suite_spec(suite: str | None):
    """The suite definition (``dabench.eval.suites.load_suite``) or None when it is not available."""
    if not suite:
        return None
    try:
        from dabench.eval.suites import load_suite
    except ImportError:
        return None
    from dabench.errors import DabenchError

    try:
        return load_suite(suite)
    except DabenchError:
        return None


def published_for_suite(suite: str | None, task: str | None, datasets: Iterable[str],
                        tables: list[PublishedTable] | None = None) -> list[PublishedTable]:
    """Published tables that belong next to ``suite``: those naming the suite; else those of the same
    task that share at least one dataset (aliases included)."""
    from dabench.results.published import load_published

    tables = load_published() if tables is None else tables
    named = [t for t in tables if suite is not None and suite in t.match_suites]
    if named:
        return named
    datasets = list(datasets)
    return [t for t in tables if task is not None and task in t.match_tasks
            and any(t.canonical_dataset(d) is not None for d in datasets)]


def table_for_suite(results, *, suite: str | None = None, models: list[str] | None = None,
                    with_published: bool = False, metrics: list[str] | None = None,
                    datasets: list[str] | None = None, include_partial: bool = False,
                    show_ci: bool = False) -> ComparisonTable:
    """Load records from ``results`` (a directory/file, or None for none) and build the table of one
    suite from the "latest complete" view (``include_partial``: also the newest partial record of a
    model/dataset that has no complete one, marked and unranked)."""
    from pathlib import Path

    from dabench.errors import DataError
    from dabench.results.store import load_records

    all_records = load_records(results) if results is not None and Path(results).exists() else []
    suites = sorted({str(r.get("suite")) for r in all_records})
    if suite is None:
        if len(suites) == 1:
            suite = suites[0]
        elif len(suites) > 1:
            raise ConfigError(f"results in {results} hold several suites ({', '.join(suites)}); pick one with --suite")
        else:
            raise DataError(f"no result records in {results}; run `dabench run --suite zero-shot` first "
                            f"or name a suite with --suite and --with-published")
    suite_records = [r for r in all_records if r.get("suite") == suite]
    records = latest_records(suite_records, include_partial=include_partial)
    if suite_records and not records and not with_published:
        limits = sorted({str(selection_of(r)["limit"]) for r in suite_records})
        raise DataError(f"suite {suite!r} in {results} has only partial records (--limit {', '.join(limits)}); "
                        "pass --include-partial to show them (marked, never ranked), or run without --limit")
    if not records and not with_published:
        raise DataError(f"no result records for suite {suite!r} in {results}"
                        + (f" (suites present: {', '.join(suites)})" if suites else "")
                        + "; run `dabench run --suite " + suite + "` first, or add --with-published")
    spec = load_suite_spec(suite)
    task = spec.task if spec is not None else next((r.get("task") for r in records if r.get("task")), None)
    order = spec.dataset_names if spec is not None else []
    published = []
    if with_published:
        published = published_for_suite(suite, task, order + [str(r.get("dataset")) for r in records])
    _check_filters(suite_records, spec, published, models=models, metrics=metrics, datasets=datasets)
    if metrics == ["all"]:
        metrics = list(spec.metrics) if spec is not None else None
        if metrics is None:
            metrics = sorted({m for r in records for m in (r.get("metrics") or {})},
                             key=lambda m: (METRIC_ORDER.index(m) if m in METRIC_ORDER else 99, m))
    elif metrics is None:
        pub_metrics = []
        for t in published:
            pub_metrics += [m for m in t.metrics if m not in pub_metrics]
        metrics = pub_metrics or (list(spec.primary_metrics) if spec is not None else None)
    title = f"Suite {suite}" + (" vs " + ", ".join(t.table for t in published) if published else "")
    table = build_table(records, published=published, datasets=datasets, metrics=metrics, models=models,
                        title=title, dataset_order=order)
    table.show_ci = show_ci
    if show_ci and not any(r.ci for r in table.own_rows):
        table.notes.append("No confidence intervals in these records (written before dabench.result/2, or run "
                           "with --bootstrap 0).")
    elif show_ci:
        table.notes.append("[low, high]: 95 % percentile-bootstrap interval over images (per-image metrics).")
    if with_published and not published:
        table.notes.append(f"No published numbers match suite {suite!r}.")
    if not table.own_rows:
        table.notes.insert(0, f"No own results found for suite {suite!r}"
                              + (f" in {results}" if results is not None else "") + "; published numbers only.")
    return table


def _check_filters(records: list[dict], spec, published: list[PublishedTable], *, models, metrics,
                   datasets) -> None:
    """A filter naming nothing is a typo: ``ConfigError`` (exit 2) listing the valid names."""
    from dabench.metrics.registry import METRICS

    if models:
        names = sorted({str(r.get("model")) for r in records})
        bad = [p for p in models if not any(fnmatch.fnmatchcase(n, p) for n in names)]
        if bad:
            raise ConfigError(f"--models {', '.join(map(repr, bad))} matches no model of this suite; "
                              f"models with records: {', '.join(names) or 'none'}")
    if metrics and metrics != ["all"]:
        valid = list(dict.fromkeys([*(spec.metrics if spec is not None else []),
                                    *(m for r in records for m in (r.get("metrics") or {})),
                                    *(m for t in published for m in t.metrics)]))
        bad = [m for m in metrics if m not in valid and m not in METRICS]
        if bad:
            raise ConfigError(f"unknown metric(s) {', '.join(map(repr, bad))}; valid: {', '.join(valid)} "
                              "(or 'all')")
    if datasets:
        valid = list(dict.fromkeys([*(spec.dataset_names if spec is not None else []),
                                    *(str(r.get("dataset")) for r in records),
                                    *(d for t in published for d in t.datasets)]))
        bad = [d for d in datasets if d not in valid and not any(t.canonical_dataset(d) for t in published)]
        if bad:
            raise ConfigError(f"unknown dataset(s) {', '.join(map(repr, bad))} for this suite; valid: "
                              f"{', '.join(valid)}")


def print_suite_table(records: list[dict], suite, console=None) -> None:
    """One table for the whole run: a row per model (every ``--model``, plus the published rows of the paper
    tables that match the suite), columns = evaluated dataset × the suite's primary metrics (``suite``: a
    ``dabench.eval.suites.Suite``). Built by :func:`build_table`, as ``dabench table`` builds it from the
    stored records; skipped datasets and synthetic stand-ins are listed under it, never silent."""
    from rich.console import Console
    from rich.markup import escape
    from rich.table import Table

    console = console or Console()
    datasets = list(dict.fromkeys(r["dataset"] for r in records if r.get("status") == "ok"))
    published = published_for_suite(suite.name, suite.task, datasets) if datasets else []
    table = build_table(records, published=published, datasets=datasets, metrics=list(suite.primary_metrics),
                        dataset_order=list(suite.dataset_names), title=f"suite {suite.name} ({suite.task})")
    rows = [r for r in table.rows if r.kind == "own" or any(table.cell(r, c) is not None for c in table.columns)]
    out = Table(title=table.title)
    out.add_column("model", overflow="fold", min_width=min(40, max((len(r.label) for r in rows), default=5)))
    out.add_column("params", justify="right", no_wrap=True)
    for col in table.columns:
        out.add_column(f"{col.dataset_label}\n{col.metric_label}{arrow(col.higher_is_better)}", justify="right")
    for row in rows:
        label = row.label + (f" [{','.join(map(str, row.footnotes))}]" if row.footnotes else "")
        out.add_row(escape(label), format_params(row.params) or "-",
                    *[format_value(table.cell(row, c), c.fmt) or "-" for c in table.columns])
    console.print(out)
    for i, source in enumerate(table.footnotes, 1):
        console.print(escape(f"[{i}] {source}"))
    for note in dict.fromkeys(n for t in published for n in t.notes):
        console.print(f"note: {escape(note)}")
    first = {}
    for r in records:
        first.setdefault(r["dataset"], r)
    for d, r in first.items():  # never silent: what was skipped, and what stood in for it
        if r.get("fallback_for"):
            console.print(f"{d} stands in for {', '.join(r['fallback_for'])} (their data is not on disk)")
        elif r["status"] != "ok":
            console.print(f"[yellow]{d}: skipped[/yellow] — {escape(str(r.get('skip_reason')))}")
