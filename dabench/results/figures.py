"""Figures for `dabench paper` (matplotlib, Agg backend): per-dataset dot plots of a comparison table
(``bars_*``), parameters vs AbsRel per protocol group and dataset, and a qualitative grid (image |
ground truth | prediction per model). Every figure is written as PNG and PDF (atomically); depth
pictures follow ``dabench.viz`` (Spectral_r on disparity, near = warm)."""
from __future__ import annotations

import io
import math
import os
from pathlib import Path

from dabench.provenance import atomic_write_bytes
from dabench.results.frame import arrow, format_params, format_value
from dabench.results.tables import ComparisonTable

OWN_COLOR = "#d62728"
PUBLISHED_COLOR = "#1f77b4"
BASELINE_COLOR = "#7f7f7f"
KIND_LABELS = (("published", PUBLISHED_COLOR, "published (paper)"), ("own", OWN_COLOR, "measured (dabench)"),
               ("baseline", BASELINE_COLOR, "weight-free baseline (dabench, not ranked)"))


def _plt():
    from dabench.viz import plt

    return plt()


def _kind(row) -> str:
    return "baseline" if getattr(row, "baseline", False) else row.kind


def save_figure(fig, stem: str | os.PathLike, formats=("png", "pdf"), dpi: int = 150) -> list[Path]:
    """Write ``fig`` as ``stem.<fmt>`` for each format (atomic) and close it."""
    plt = _plt()
    out = []
    for fmt in formats:
        buf = io.BytesIO()
        fig.savefig(buf, format=fmt, dpi=dpi, bbox_inches="tight")
        path = Path(f"{stem}.{fmt}")
        atomic_write_bytes(path, buf.getvalue())
        out.append(path)
    plt.close(fig)
    return out


def bar_charts(table: ComparisonTable, metric: str, stem, title: str | None = None,
               panels_per_row: int = 3) -> list[Path] | None:
    """A horizontal dot plot per dataset column of ``metric``: one row per model (full names on the
    shared y axis, never rotated), the value printed beside each dot, an x range fitted to the data
    (differences of 0.005 stay visible), colours for published / measured / baseline rows and a
    legend. Returns the written files, or None when the table has no value for ``metric``."""
    from matplotlib.lines import Line2D
    from matplotlib.ticker import MaxNLocator

    cols = [c for c in table.columns if c.metric == metric
            and any(table.cell(r, c) is not None for r in table.rows)]
    if not cols:
        return None
    rows = [r for r in table.rows if any(table.cell(r, c) is not None for c in cols)]
    plt = _plt()
    ncols = min(panels_per_row, len(cols))
    nrows = math.ceil(len(cols) / ncols)
    height = 0.26 * max(len(rows), 3) + 1.0
    fig, axes = plt.subplots(nrows, ncols, figsize=(2.6 * ncols + 2.4, height * nrows + 0.6), squeeze=False,
                             sharey=True)
    flat = [ax for line in axes for ax in line]
    y = list(range(len(rows)))[::-1]  # first table row at the top
    for ax, col in zip(flat, cols):
        vals = [table.cell(r, col) for r in rows]
        present = [v for v in vals if v is not None]
        lo, hi = min(present), max(present)
        pad = max(hi - lo, 0.02 * max(abs(hi), 1e-9)) * 0.1
        for yy, r, v in zip(y, rows, vals):
            ax.axhline(yy, color="0.92", lw=0.6, zorder=0)
            if v is None:
                ax.text(lo - pad * 0.5, yy, "–", va="center", fontsize=7, color="0.55")
                continue
            color = dict((k, c) for k, c, _ in KIND_LABELS)[_kind(r)]
            ax.plot([v], [yy], "o", color=color, ms=5, zorder=3)
            ax.annotate(format_value(v, col.fmt), (v, yy), xytext=(5, 0), textcoords="offset points",
                        va="center", fontsize=6.5)
        left = lo - pad if lo - pad > 0 or lo < 0 else 0.0  # a non-negative metric's axis stays >= 0
        ax.set_xlim(left, hi + 3.5 * pad)  # room on the right for the printed values
        ax.set_ylim(-0.7, len(rows) - 0.3)  # half a row of air above and below the outer dots
        unit = f" ({col.unit})" if getattr(col, "unit", "") else ""
        better = {True: "higher is better", False: "lower is better", None: ""}[col.higher_is_better]
        ax.set_title(f"{col.dataset_label} {col.metric_label}{unit}{arrow(col.higher_is_better)}", fontsize=9)
        ax.set_xlabel(better, fontsize=7)
        ax.xaxis.set_major_locator(MaxNLocator(nbins=4))  # few ticks: long decimals never collide
        if col.fmt.endswith("%"):  # a fraction printed as a percentage: the axis says percent too
            from matplotlib.ticker import PercentFormatter

            ax.xaxis.set_major_formatter(PercentFormatter(1.0, decimals=0))
        ax.tick_params(axis="x", labelsize=7)
        ax.grid(axis="x", alpha=0.3)
    for ax in flat[len(cols):]:
        ax.axis("off")
    for line in axes:
        line[0].set_yticks(y)
        line[0].set_yticklabels([r.label for r in rows], fontsize=7)
        line[0].tick_params(axis="y", length=0)
    kinds = {_kind(r) for r in rows}
    handles = [Line2D([], [], marker="o", ls="", color=c, label=lab) for k, c, lab in KIND_LABELS if k in kinds]
    fig.suptitle(title or table.title, fontsize=10)
    fig.legend(handles=handles, loc="lower center", ncol=len(handles), fontsize=7, frameon=False,
               bbox_to_anchor=(0.5, 0.0))
    fig.tight_layout(rect=(0, 0.05, 1, 1))
    return save_figure(fig, stem)


def params_scatter(tables, stem, metric: str = "abs_rel") -> list[Path] | None:
    """Parameters (log x) vs ``metric``, one panel per (protocol group, dataset): ``tables`` is a
    list of ``(group, ComparisonTable)`` (or bare tables, grouped by title), so aligned relative-depth
    AbsRel never shares a panel with unaligned metric-depth AbsRel. Each model keeps one colour
    across panels and is named in one legend (no labels on the points to overlap); measured rows are
    stars, published rows circles. Returns None when no row has both a parameter count and a value."""
    from matplotlib.lines import Line2D
    from matplotlib.ticker import FixedLocator, FuncFormatter, NullFormatter

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
    if not points:
        return None
    plt = _plt()
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
        sizes = sorted({p[0] for p in pts})
        lo, hi = sizes[0], sizes[-1]
        ax.set_xlim(lo / 2, hi * 2)
        # ticks on every panel: the models' own sizes (a log axis spanning less than a decade has none)
        ticks: list[float] = []
        for size in sizes:  # sizes within 35 % of a kept tick would print on top of it
            if not ticks or size > ticks[-1] * 1.35:
                ticks.append(size)
        if len(ticks) > 5:
            ticks = [ticks[round(k * (len(ticks) - 1) / 4)] for k in range(5)]
        ax.xaxis.set_major_locator(FixedLocator(ticks))
        ax.xaxis.set_major_formatter(FuncFormatter(lambda x, _pos: format_params(x) or ""))
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
                      label=f"{label} ({format_params(params)})") for label, kind, params in models]
    ncol_leg = min(3, len(handles))
    fig.suptitle(f"Parameters vs {metric} (circles: published, stars: measured by dabench)", fontsize=10)
    fig.legend(handles=handles, loc="lower center", ncol=ncol_leg, fontsize=7, frameon=False)
    fig.tight_layout(rect=(0, (0.2 * legend_rows + 0.1) / fig_h, 1, 1))
    return save_figure(fig, stem)


def qualitative_grid(samples: list[dict], predictions, output_space, stem, title: str,
                     colorbar: bool = False) -> list[Path]:
    """Rows = samples; columns = image | ground truth | one prediction per model, every depth picture
    in dabench's convention (``dabench.viz``: Spectral_r on disparity, near = warm, invalid black).
    ``predictions`` is a list (one model) or ``{model label: list}``; ``output_space`` a string or
    ``{label: space}``. Images are drawn at their real pixel size (the figure is sized from them)."""
    import numpy as np

    from dabench.viz import add_depth_colorbar, colorize_depth, disparity_view

    if not isinstance(predictions, dict):
        predictions = {"prediction": predictions}
    if not isinstance(output_space, dict):
        output_space = {k: output_space for k in predictions}
    plt = _plt()
    n, ncols = len(samples), 2 + len(predictions)
    h = max(np.asarray(s["image"]).shape[0] for s in samples)
    w = max(np.asarray(s["image"]).shape[1] for s in samples)
    dpi = 100
    cell_w, cell_h = w / dpi + (1.2 if colorbar else 0.12), h / dpi + 0.35
    fig, axes = plt.subplots(n, ncols, figsize=(cell_w * ncols, cell_h * n + 0.4), dpi=dpi, squeeze=False)
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
                import textwrap

                width = max(8, int(rgb.shape[1] / 5.5))
                ax.set_title("\n".join(textwrap.fill(part, width) for part in name.split("\n")), fontsize=7)
            if colorbar and bar is not None:
                add_depth_colorbar(fig, ax, *bar)
        axes[i][0].set_ylabel(str(s.get("name", i)).rsplit("/", 1)[-1], fontsize=6)  # the id; the title names the set
    fig.suptitle(f"{title}\ndepth pictures: Spectral_r on disparity, near = warm, invalid black", fontsize=8)
    fig.tight_layout()
    return save_figure(fig, stem, dpi=dpi)
