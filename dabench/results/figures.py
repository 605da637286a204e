"""Figures for `dabench paper` (matplotlib, Agg backend): per-dataset dot plots of a comparison table
(``bars_*``), parameters vs AbsRel per protocol group and dataset, and a qualitative grid (image |
ground truth | prediction per model). Every figure is written as PNG and PDF (atomically); depth
pictures follow ``dabench.viz`` (Spectral_r on disparity, near = warm)."""
from __future__ import annotations

import io
import math
import os
import re
from pathlib import Path

from dabench.provenance import atomic_write_bytes
from dabench.results.frame import arrow, format_params, format_value
from dabench.results.tables import ComparisonTable

OWN_COLOR = "#d62728"
PUBLISHED_COLOR = "#1f77b4"
BASELINE_COLOR = "#7f7f7f"
KIND_LABELS = (("published", PUBLISHED_COLOR, "published (paper)"), ("own", OWN_COLOR, "measured (dabench)"),
               ("baseline", BASELINE_COLOR, "weight-free baseline (dabench, not ranked)"))


def pyplot():
    """matplotlib.pyplot with dabench's figure style (Agg, imported on first use)."""
    from dabench.viz import plt

    return plt()


def _kind(row) -> str:
    return "baseline" if getattr(row, "baseline", False) else row.kind


def save_figure(fig, stem: str | os.PathLike, formats=("png", "pdf"), dpi: int = 150) -> list[Path]:
    """Write ``fig`` as ``stem.<fmt>`` for each format (atomic) and close it."""
    plt = pyplot()
    out = []
    for fmt in formats:
        buf = io.BytesIO()
        fig.savefig(buf, format=fmt, dpi=dpi, bbox_inches="tight")
        path = Path(f"{stem}.{fmt}")
        atomic_write_bytes(path, buf.getvalue())
        out.append(path)
    plt.close(fig)
    return out


# Which columns of a table its figure draws: per dataset, the first of these groups that has values
# (AbsRel; else single- and multi-scale mIoU, so Table 7 shows both and Table 10 its mIoU datasets),
# else the dataset's first column with values (DA-2K's pair accuracy, Table 12's mean AbsRel).
FIGURE_METRIC_GROUPS = (("abs_rel",), ("miou", "miou_ms"))


def figure_columns(table: ComparisonTable) -> list:
    """The columns ``bar_charts`` draws for ``table`` by default (see ``FIGURE_METRIC_GROUPS``),
    in the table's dataset order."""
    with_values = [c for c in table.columns if any(table.cell(r, c) is not None for r in table.rows)]
    out = []
    for dataset in dict.fromkeys(c.dataset for c in with_values):
        cols = [c for c in with_values if c.dataset == dataset]
        for group in FIGURE_METRIC_GROUPS:
            chosen = [c for m in group for c in cols if c.metric == m]
            if chosen:
                out += chosen
                break
        else:
            out.append(cols[0])
    return out


_LOSS_NAME = re.compile(r"(?<![A-Za-z0-9_-])L_\{?([A-Za-z]+)\}?")


def mathtext(label: str) -> str:
    """A label for a matplotlib text: loss names written ``L_x`` in the published tables ("L_l only",
    "+L_feat") become mathtext (``$L_{\\mathrm{feat}}$``, a subscript); any other ``$`` is escaped so
    that it prints as a dollar sign."""
    label = str(label).replace("$", r"\$")
    return _LOSS_NAME.sub(lambda m: f"$L_{{\\mathrm{{{m.group(1)}}}}}$", label)


def bar_charts(table: ComparisonTable, metric: str | None, stem, title: str | None = None,
               panels_per_row: int = 3, columns: list | None = None) -> list[Path] | None:
    """A horizontal dot plot per dataset column: the columns of ``metric`` (or the given ``columns``,
    e.g. ``figure_columns(table)``). Each panel has one row per model *that has a value in it* (full
    names, never rotated; panels whose rows differ each name their own), the value printed beside
    each dot, an x range fitted to the data (differences of 0.005 stay visible; a panel with a single
    value runs from 0, so one number is not blown up across the axis), colours for published /
    measured / baseline rows and a legend. Returns the written files, or None when no panel has two
    values to compare (a single number is a table cell, not a figure)."""
    from matplotlib.lines import Line2D
    from matplotlib.ticker import MaxNLocator, PercentFormatter

    if columns is None:
        columns = [c for c in table.columns if c.metric == metric]
    panels = [(c, [r for r in table.rows if table.cell(r, c) is not None]) for c in columns]
    panels = [(c, rows) for c, rows in panels if rows]
    if not panels or max(len(rows) for _, rows in panels) < 2:
        return None
    plt = pyplot()
    ncols = min(panels_per_row, len(panels))
    lines = [panels[i:i + ncols] for i in range(0, len(panels), ncols)]
    # a panel names its rows unless it shows exactly the rows of its left neighbour
    labelled = [[k == 0 or [id(r) for r in line[k][1]] != [id(r) for r in line[k - 1][1]]
                 for k in range(len(line))] for line in lines]
    label_w = 0.06 * max(len(r.label) for _, rows in panels for r in rows) + 0.2  # inches at 7 pt
    per_panel = 2.6 + (label_w if any(any(f[1:]) for f in labelled) else 0.0)
    width = per_panel * ncols + (label_w if per_panel == 2.6 else 0.0) + 0.3
    heights = [0.26 * max(max(len(rows) for _, rows in line), 2) + 1.0 for line in lines]
    fig = plt.figure(figsize=(width, sum(heights) + 0.7))
    grid = fig.add_gridspec(len(lines), ncols, height_ratios=heights)
    color = {k: c for k, c, _ in KIND_LABELS}
    kinds = set()
    for li, line in enumerate(lines):
        n_line = max(len(rows) for _, rows in line)
        for k, (col, rows) in enumerate(line):
            ax = fig.add_subplot(grid[li, k])
            y = [n_line - 1 - i for i in range(len(rows))]  # first table row at the top, rows evenly spaced
            vals = [table.cell(r, col) for r in rows]
            for yy, r, v in zip(y, rows, vals):
                ax.axhline(yy, color="0.92", lw=0.6, zorder=0)
                kinds.add(_kind(r))
                ax.plot([v], [yy], "o", color=color[_kind(r)], ms=5, zorder=3)
                ax.annotate(format_value(v, col.fmt), (v, yy), xytext=(5, 0), textcoords="offset points",
                            va="center", fontsize=6.5)
            lo, hi = min(vals), max(vals)
            if len(vals) == 1:  # one number: an axis from 0 (no range to fit, no fake precision)
                lo, hi = min(lo, 0.0), max(hi, 0.0)
                left, pad = lo, (hi - lo or 1.0) * 0.1
            else:
                pad = max(hi - lo, 0.02 * max(abs(hi), 1e-9)) * 0.1
                left = lo - pad if lo - pad > 0 or lo < 0 else 0.0  # a non-negative metric's axis stays >= 0
            ax.set_xlim(left, hi + 3.5 * pad)  # room on the right for the printed values
            ax.set_ylim(-0.7, n_line - 0.3)  # half a row of air above and below the outer dots
            ax.set_yticks(y)
            ax.set_yticklabels([mathtext(r.label) for r in rows] if labelled[li][k] else [], fontsize=7)
            ax.tick_params(axis="y", length=0)
            unit = f" ({col.unit})" if getattr(col, "unit", "") else ""
            better = {True: "higher is better", False: "lower is better", None: ""}[col.higher_is_better]
            ax.set_title(f"{col.dataset_label} {col.metric_label}{unit}{arrow(col.higher_is_better)}", fontsize=9)
            ax.set_xlabel(better, fontsize=7)
            ax.xaxis.set_major_locator(MaxNLocator(nbins=4))  # few ticks: long decimals never collide
            if col.fmt.endswith("%"):  # a fraction printed as a percentage: the axis says percent too
                ax.xaxis.set_major_formatter(PercentFormatter(1.0, decimals=0))
            ax.tick_params(axis="x", labelsize=7)
            ax.grid(axis="x", alpha=0.3)
    handles = [Line2D([], [], marker="o", ls="", color=c, label=lab) for k, c, lab in KIND_LABELS if k in kinds]
    fig.suptitle(mathtext(title or table.title), fontsize=10)
    fig.legend(handles=handles, loc="lower center", ncol=len(handles), fontsize=7, frameon=False,
               bbox_to_anchor=(0.5, 0.0))
    fig.tight_layout(rect=(0, 0.35 / (sum(heights) + 0.7), 1, 1))
    return save_figure(fig, stem)


GRID_MIN_WIDTH = 240  # px: a qualitative-grid column is at least this wide (integer upscaling)
MIN_SCATTER_MODELS = 3  # a parameters-vs-metric panel needs this many models to show a relation


def round_params(x: float) -> str:
    """A round parameter count as an axis tick: ``200K``, ``1.5M``, ``1B`` (no trailing ``.0``)."""
    for unit, div in (("B", 1e9), ("M", 1e6), ("K", 1e3)):
        if x >= div:
            return f"{x / div:.3g}{unit}"
    return f"{x:.3g}"


def param_ticks(lo: float, hi: float) -> list[float]:
    """Round tick positions (1, 2, 5 × 10^k, finer when the range is narrow, coarser when it spans many
    decades) inside ``[lo, hi]``: at most seven, and at least three when ``hi / lo >= 4`` (the
    scatter's axes span at least that). Ticks are round numbers, never model
    sizes, so no tick can be read as the size of a nearby model (the legend gives those)."""
    first, last = math.floor(math.log10(lo)) - 1, math.ceil(math.log10(hi)) + 1
    best: list[float] = []
    for subs in ((1,), (1, 3), (1, 2, 5), (1, 1.5, 2, 3, 4, 5, 6, 8)):
        ticks = sorted({float(f"{m * 10.0 ** e:.6g}") for e in range(first, last + 1) for m in subs})
        best = [t for t in ticks if lo <= t <= hi]
        if len(best) >= 3:
            break
    while len(best) > 7:
        best = best[::2]
    return best


def params_scatter(tables, stem, metric: str = "abs_rel",
                   min_models: int = MIN_SCATTER_MODELS) -> tuple[list[Path] | None, list[str]]:
    """Parameters (log x) vs ``metric``, one panel per (protocol group, dataset): ``tables`` is a
    list of ``(group, ComparisonTable)`` (or bare tables, grouped by title), so aligned relative-depth
    AbsRel never shares a panel with unaligned metric-depth AbsRel. Each model keeps one colour
    across panels and is named, with its exact size, in one legend (no labels on the points to
    overlap); measured rows are stars, published rows circles. The x ticks are round numbers
    (``param_ticks``). A panel with fewer than ``min_models`` models is left out (one or two points
    show no relation; their values are in the tables).

    Returns ``(written files or None, names of the panels left out)``; None when no panel is left."""
    from matplotlib.lines import Line2D
    from matplotlib.ticker import FixedLocator, FuncFormatter, NullFormatter, NullLocator

    groups = [t if isinstance(t, tuple) else (t.title, t) for t in tables]
    points: dict[tuple[str, str], list[tuple[float, float, str, str]]] = {}
    titles: dict[tuple[str, str], str] = {}
    for group, table in groups:
        for col in table.columns:
            if col.metric != metric:
                continue
            for r in table.rows:
                v = table.cell(r, col)
                if v is None or r.params is None or not r.params > 0:
                    continue
                key = (group, col.dataset)
                titles[key] = f"{col.dataset_label} {col.metric_label}{arrow(col.higher_is_better)}\n{group}"
                entry = (float(r.params), float(v), r.label, _kind(r))
                if entry not in points.setdefault(key, []):
                    points[key].append(entry)
    left_out = [titles[k].replace("\n", " — ") for k, pts in points.items() if len({p[2] for p in pts}) < min_models]
    points = {k: pts for k, pts in points.items() if len({p[2] for p in pts}) >= min_models}
    if not points:
        return None, left_out
    plt = pyplot()
    models = list(dict.fromkeys((p[2], p[3], p[0]) for pts in points.values() for p in pts))
    palette = plt.get_cmap("tab10" if len(models) <= 10 else "tab20")
    color = {m[0]: palette(i % palette.N) for i, m in enumerate(models)}
    n = len(points)
    ncols = min(3, n)
    nrows = math.ceil(n / ncols)
    legend_rows = math.ceil(len(models) / min(3, len(models)))
    fig_h = 3.0 * nrows + 0.5 + 0.2 * legend_rows
    fig, axes = plt.subplots(nrows, ncols, figsize=(3.6 * ncols, fig_h), squeeze=False)
    flat = [ax for line in axes for ax in line]
    for ax, (key, pts) in zip(flat, points.items()):
        for params, value, label, kind in pts:
            ax.scatter(params, value, color=color[label], marker="*" if kind == "own" else "o",
                       s=80 if kind == "own" else 30, edgecolors="black" if kind == "own" else "none",
                       linewidths=0.4, zorder=3)
        ax.set_xscale("log")
        sizes = [p[0] for p in pts]
        lo, hi = min(sizes) / 2, max(sizes) * 2
        ax.set_xlim(lo, hi)
        ax.xaxis.set_major_locator(FixedLocator(param_ticks(lo, hi)))
        ax.xaxis.set_major_formatter(FuncFormatter(lambda x, _pos: round_params(x)))
        ax.xaxis.set_minor_locator(NullLocator())
        ax.xaxis.set_minor_formatter(NullFormatter())
        ax.tick_params(labelsize=7)
        vals = [p[1] for p in pts]
        span = max(max(vals) - min(vals), 0.05 * max(abs(max(vals)), 1e-9))
        ax.set_ylim(min(vals) - 0.2 * span, max(vals) + 0.2 * span)
        ax.set_xlabel("parameters (log scale)", fontsize=7)
        ax.set_title(titles[key], fontsize=8)
        ax.grid(alpha=0.3)
    for ax in flat[n:]:
        ax.axis("off")
    handles = [Line2D([], [], ls="", marker="*" if kind == "own" else "o", color=color[label],
                      markeredgecolor="black" if kind == "own" else color[label], markersize=8 if kind == "own" else 5,
                      label=f"{mathtext(label)} ({format_params(params)})") for label, kind, params in models]
    ncol_leg = min(3, len(handles))
    fig.suptitle(f"Parameters vs {metric} (circles: published, stars: measured by dabench)", fontsize=10)
    fig.legend(handles=handles, loc="lower center", ncol=ncol_leg, fontsize=7, frameon=False)
    fig.tight_layout(rect=(0, (0.2 * legend_rows + 0.1) / fig_h, 1, 1))
    return save_figure(fig, stem), left_out


def qualitative_grid(samples: list[dict], predictions, output_space, stem, title: str,
                     colorbar: bool = False) -> list[Path]:
    """Rows = samples; columns = image | ground truth | one prediction per model, every depth picture
    in dabench's convention (``dabench.viz``: Spectral_r on disparity, near = warm, invalid black).
    ``predictions`` is a list (one model) or ``{model label: list}``; ``output_space`` a string or
    ``{label: space}``. Images are drawn at their real pixel size, or an integer multiple of it
    (nearest neighbour) so that a column is at least ``GRID_MIN_WIDTH`` pixels wide: the column
    headers (model name, then what the picture is) fit on two lines."""
    import textwrap

    import numpy as np

    from dabench.viz import add_depth_colorbar, colorize_depth, disparity_view

    if not isinstance(predictions, dict):
        predictions = {"prediction": predictions}
    if not isinstance(output_space, dict):
        output_space = {k: output_space for k in predictions}
    plt = pyplot()
    n, ncols = len(samples), 2 + len(predictions)
    h = max(np.asarray(s["image"]).shape[0] for s in samples)
    w = max(np.asarray(s["image"]).shape[1] for s in samples)
    dpi = 100
    scale = max(1, math.ceil(GRID_MIN_WIDTH / w))
    cell_w, cell_h = scale * w / dpi + (1.2 if colorbar else 0.12), scale * h / dpi + 0.35
    wrap = max(12, int(scale * w / 5.5))  # characters of 7-pt text across one picture
    title_lines = textwrap.wrap(title, max(40, int(cell_w * ncols * 100 / 5.5)))
    fig, axes = plt.subplots(n, ncols, figsize=(cell_w * ncols, cell_h * n + 0.3 + 0.14 * len(title_lines)),
                             dpi=dpi, squeeze=False)
    for i, s in enumerate(samples):
        valid = np.asarray(s.get("valid", np.ones_like(s["depth"], bool)), dtype=bool)
        cells = [("image", np.asarray(s["image"]), None),
                 ("ground truth", colorize_depth(s["depth"], valid, "depth"),
                  disparity_view(s["depth"], valid, "depth")[2] + ("depth",))]
        for label, preds in predictions.items():
            space = output_space[label]
            p = preds[i]
            what = "metric depth" if space == "depth" else "relative disparity"
            cells.append((f"{label}\n{what}", colorize_depth(p, None, space),
                          disparity_view(p, None, space)[2] + (space,)))
        for j, (name, rgb, bar) in enumerate(cells):
            ax = axes[i][j]
            ax.imshow(rgb, interpolation="nearest")
            ax.set_xticks([])
            ax.set_yticks([])
            if i == 0:  # wrapped to the picture's width: titles of neighbouring columns never overlap
                ax.set_title("\n".join(textwrap.fill(part, wrap) for part in name.split("\n")), fontsize=7)
            if colorbar and bar is not None:
                add_depth_colorbar(fig, ax, *bar)
        axes[i][0].set_ylabel(str(s.get("name", i)).rsplit("/", 1)[-1], fontsize=6)  # the id; the title names the set
    fig.suptitle("\n".join(title_lines + ["depth pictures: Spectral_r on disparity, near = warm, invalid black"]),
                 fontsize=8)
    fig.tight_layout()
    return save_figure(fig, stem, dpi=dpi)
