"""Tables of one suite: ``table_for_suite`` (``dabench table``, from the stored records' latest view)
and ``print_suite_table`` (the table a run prints), with the published tables that belong next to it."""
from __future__ import annotations

import fnmatch
from typing import Iterable

from dabench.errors import ConfigError
from dabench.results.frame import METRIC_ORDER, arrow, format_params, format_value
from dabench.results.published import PublishedTable
from dabench.results.record import Record, selection_of
from dabench.results.store import latest_records
from dabench.results.tables.build import ComparisonTable, build_table


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


def _check_filters(records: list[Record], spec, published: list[PublishedTable], *, models, metrics,
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


def print_suite_table(records: list[Record], suite, console=None) -> None:
    """One table for the whole run: a row per model (every ``--model``, plus the published rows of the paper
    tables that match the suite), columns = evaluated dataset × the suite's primary metrics (``suite``: a
    ``dabench.eval.suites.Suite``). Built by :func:`build_table`, as ``dabench table`` builds it from the
    stored records; skipped datasets and synthetic stand-ins are listed under it, never silent."""
    from rich.console import Console
    from rich.markup import escape
    from rich.table import Table

    from dabench.console import print_table

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
    print_table(out, console, keep=2)
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
