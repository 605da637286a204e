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

The package is split by what each part does: ``build`` (``ComparisonTable``, ``build_table``),
``render`` (Markdown, LaTeX, CSV, HTML) and ``suite`` (``table_for_suite``, ``print_suite_table``);
every public name is importable from ``dabench.results.tables``.
"""
from __future__ import annotations

from dabench.results.tables.build import (MISSING, OWN_SUFFIX, TABLE_FMT, Column, ComparisonTable, TableRow,
                                          build_table, metric_unit, own_column_key, record_is_baseline)
from dabench.results.tables.render import (RENDERERS, latex_escape, render, to_csv, to_frame, to_html, to_latex,
                                           to_markdown)
from dabench.results.tables.suite import load_suite_spec, print_suite_table, published_for_suite, table_for_suite

__all__ = ["MISSING", "OWN_SUFFIX", "TABLE_FMT", "Column", "ComparisonTable", "TableRow", "build_table", "metric_unit",
           "own_column_key", "record_is_baseline", "RENDERERS", "latex_escape", "render", "to_csv", "to_frame",
           "to_html", "to_latex", "to_markdown", "load_suite_spec", "print_suite_table", "published_for_suite",
           "table_for_suite"]
