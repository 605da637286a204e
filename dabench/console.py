"""Printing rich tables without losing a column, the one helper every command's table goes through.

rich fits a table to the console width. When the columns' minimum widths add up to more than that, it
crops every line at the right edge: columns vanish with no ellipsis and no note. Off a terminal (a file,
a pipe, a CI log) rich assumes 80 columns, so ``dabench run --suite zero-shot | tee log`` used to lose
half of its dataset × metric columns. :func:`print_table` prints instead:

- off a terminal: at the table's natural (full) width, however wide, so a log keeps every column;
- on a terminal narrower than the table's minimum width: folded into several tables of the same rows,
  each repeating the first ``keep`` (label) columns, with "(continued)" in the title;
- otherwise exactly as rich would.
"""
from __future__ import annotations

import copy
from typing import Optional
_UNBOUNDED = 100_000  # measuring width: wider than any table dabench prints


def natural_width(table, console) -> int:
    """The width ``table`` takes when nothing limits it (the widest cell of each column plus borders)."""
    from rich.measure import Measurement

    return Measurement.get(console, console.options.update_width(_UNBOUNDED), table).maximum


def fits(table, console, width: int) -> bool:
    """Whether rich draws ``table`` within ``width`` columns without cutting a cell: the column widths rich
    itself computes add up to at most ``width``, no column is narrower than its longest word and no
    ``no_wrap`` (or fixed-width) column is narrowed (rich would end them with "…"). Asked of rich's own
    layout, because its collapsing does not always reach the sum of the columns' minimum widths."""
    extra = table._extra_width  # borders and padding
    options = console.options.update_width(max(1, width - extra))
    widths = table._calculate_column_widths(console, options)
    if sum(widths) + extra > width:
        return False
    full = console.options.update_width(_UNBOUNDED)
    for w, col in zip(widths, table.columns):
        m = table._measure_column(console, full, col)  # padding included, as in ``widths``
        if w < (m.maximum if (col.no_wrap or col.width is not None) else m.minimum):
            return False
    return True


def fold_table(table, width: int, console, keep: int = 1) -> list:
    """``table`` split by columns into tables that each fit ``width``: every part has the same rows and
    starts with the first ``keep`` columns; the value columns are distributed in order, as many per part
    as fit (at least one, so a part is never empty even if a single column is wider than ``width``).
    The repeated label columns keep their full width where that leaves room for a value column, so rich
    narrows the value columns rather than the labels."""
    keep = min(keep, len(table.columns))
    head, rest = table.columns[:keep], table.columns[keep:]
    if not rest:
        return [table]
    full = console.options.update_width(_UNBOUNDED)
    fixed = [table._measure_column(console, full, c).maximum - table._get_padding_width(c._index) for c in head]
    if not fits(_part(table, head, rest[:1], fixed), console, width):
        fixed = None
    groups: list[list] = [[]]
    for col in rest:
        if groups[-1] and not fits(_part(table, head, groups[-1] + [col], fixed), console, width):
            groups.append([col])
        else:
            groups[-1].append(col)
    return [_part(table, head, g, fixed, continued=i > 0) for i, g in enumerate(groups)]


def _part(table, head: list, values: list, head_widths: Optional[list] = None, continued: bool = False):
    """A copy of ``table`` with only the ``head`` and ``values`` columns (their cells included), re-indexed;
    ``head_widths`` fixes the head columns' content widths."""
    part = copy.copy(table)
    part.columns = []
    for i, col in enumerate(head + values):
        c = copy.copy(col)
        c._index = i
        if head_widths is not None and i < len(head):
            c.width = head_widths[i]
        part.columns.append(c)
    if continued:
        part.title = f"{table.title} (continued)" if table.title else "(continued)"
        part.caption = None
    return part


def print_table(table, console=None, keep: int = 1) -> None:
    """Print a ``rich.table.Table`` on ``console`` (default: a stdout ``Console``) and never drop a column:
    full width off a terminal, folded into several tables (each repeating the first ``keep`` columns) on a
    terminal too narrow for it. See the module docstring."""
    from rich.console import Console

    console: Console = console or Console()
    if not console.is_terminal:
        need = natural_width(table, console)
        if need > console.width:
            saved = console._width  # the width rich was told (None = detect); restored below
            console.width = need
            try:
                console.print(table)
            finally:
                console._width = saved
            return
        console.print(table)
        return
    if fits(table, console, console.width):
        console.print(table)
        return
    for part in fold_table(table, console.width, console, keep=keep):
        console.print(part)


__all__ = ["fits", "fold_table", "natural_width", "print_table"]
