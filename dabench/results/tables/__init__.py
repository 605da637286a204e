"""Comparison tables: rows are models (own runs and published rows), columns are dataset × metric.

The ranking, unit, baseline and partial-record rules shared by every output format are listed once,
in :mod:`dabench.results.tables.build`.

The package is split by what each part does: ``build`` (``ComparisonTable``, ``build_table``),
``render`` (Markdown, LaTeX, CSV, HTML) and ``suite`` (``table_for_suite``, ``print_suite_table``);
every public name is importable from ``dabench.results.tables``.
"""
from __future__ import annotations

from dabench.results.tables.build import (MISSING, OWN_SUFFIX, TABLE_FMT, Column, ComparisonTable, TableRow,
                                          build_table, metric_unit, own_column_key, record_is_baseline,
                                          record_source)
from dabench.results.tables.render import (RENDERERS, latex_escape, render, to_csv, to_frame, to_html, to_latex,
                                           to_markdown)
from dabench.results.tables.suite import load_suite_spec, print_suite_table, published_for_suite, table_for_suite

__all__ = ["MISSING", "OWN_SUFFIX", "TABLE_FMT", "Column", "ComparisonTable", "TableRow", "build_table", "metric_unit",
           "own_column_key", "record_is_baseline", "record_source", "RENDERERS", "latex_escape", "render", "to_csv", "to_frame",
           "to_html", "to_latex", "to_markdown", "load_suite_spec", "print_suite_table", "published_for_suite",
           "table_for_suite"]
