"""Figures for `dabench paper` (matplotlib, Agg backend): per-dataset bar charts of a comparison
table, parameters vs AbsRel scatter, and a qualitative grid (image | ground truth | prediction).
Every figure is written as PNG and PDF (atomically)."""
from __future__ import annotations

import io
import math
import os
from pathlib import Path

from dabench.provenance import atomic_write_bytes
from dabench.results.frame import arrow, format_params
from dabench.results.tables import ComparisonTable

OWN_COLOR = "#d62728"
PUBLISHED_COLOR = "#1f77b4"


def _plt():
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    return plt


def save_figure(fig, stem: str | os.PathLike, formats=("png", "pdf")) -> list[Path]:
    """Write ``fig`` as ``stem.<fmt>`` for each format (atomic) and close it."""
    plt = _plt()
    out = []
    for fmt in formats:
        buf = io.BytesIO()
        fig.savefig(buf, format=fmt, dpi=150, bbox_inches="tight")
        path = Path(f"{stem}.{fmt}")
        atomic_write_bytes(path, buf.getvalue())
        out.append(path)
    plt.close(fig)
    return out


def _subplots(n: int, width: float = 4.2, height: float = 3.4):
    plt = _plt()
    ncols = min(3, n)
    nrows = math.ceil(n / ncols)
    fig, axes = plt.subplots(nrows, ncols, figsize=(width * ncols, height * nrows), squeeze=False)
    flat = [ax for row in axes for ax in row]
    for ax in flat[n:]:
        ax.axis("off")
    return fig, flat[:n]


def bar_charts(table: ComparisonTable, metric: str, stem, title: str | None = None) -> list[Path] | None:
    """One bar chart per dataset column of ``metric`` (own rows red, published rows blue).
    Returns the written files, or None when the table has no value for ``metric``."""
    cols = [c for c in table.columns if c.metric == metric
            and any(table.cell(r, c) is not None for r in table.rows)]
    if not cols:
        return None
    fig, axes = _subplots(len(cols), width=max(4.2, 0.45 * len(table.rows) + 1.5))
    for ax, col in zip(axes, cols):
        rows = [r for r in table.rows if table.cell(r, col) is not None]
        vals = [table.cell(r, col) for r in rows]
        colors = [OWN_COLOR if r.kind == "own" else PUBLISHED_COLOR for r in rows]
        ax.bar(range(len(rows)), vals, color=colors)
        ax.set_xticks(range(len(rows)))
        ax.set_xticklabels([r.label for r in rows], rotation=60, ha="right", fontsize=7)
        ax.set_title(f"{col.dataset_label} {col.metric_label}{arrow(col.higher_is_better)}", fontsize=10)
        ax.grid(axis="y", alpha=0.3)
    fig.suptitle(title or table.title, fontsize=11)
    fig.tight_layout()
    return save_figure(fig, stem)


def params_scatter(tables: list[ComparisonTable], stem, metric: str = "abs_rel") -> list[Path] | None:
    """Parameters (log x) vs ``metric`` per dataset, from every row that has both a parameter count
    and a value. Returns None when no row qualifies."""
    points: dict[str, list[tuple[float, float, str, str]]] = {}
    labels: dict[str, str] = {}
    for table in tables:
        for col in table.columns:
            if col.metric != metric:
                continue
            for r in table.rows:
                v = table.cell(r, col)
                if v is None or r.params is None or not r.params > 0:
                    continue
                key = col.dataset
                labels[key] = f"{col.dataset_label} {col.metric_label}{arrow(col.higher_is_better)}"
                entry = (float(r.params), float(v), r.label, r.kind)
                if entry not in points.setdefault(key, []):
                    points[key].append(entry)
    if not points:
        return None
    fig, axes = _subplots(len(points))
    for ax, (ds, pts) in zip(axes, points.items()):
        for params, value, label, kind in pts:
            ax.scatter(params, value, color=OWN_COLOR if kind == "own" else PUBLISHED_COLOR,
                       marker="*" if kind == "own" else "o", s=60 if kind == "own" else 30)
            ax.annotate(f"{label} ({format_params(params)})", (params, value), fontsize=6,
                        xytext=(3, 3), textcoords="offset points")
        ax.set_xscale("log")
        from matplotlib.ticker import FuncFormatter, NullFormatter

        ax.xaxis.set_major_formatter(FuncFormatter(lambda x, _pos: format_params(x) or ""))
        ax.xaxis.set_minor_formatter(NullFormatter())
        lo, hi = min(p[0] for p in pts), max(p[0] for p in pts)
        ax.set_xlim(lo / 2, hi * 3)
        ax.set_xlabel("parameters")
        ax.set_title(labels[ds], fontsize=10)
        ax.grid(alpha=0.3)
    fig.suptitle(f"Parameters vs {metric} (blue: published, red stars: dabench)", fontsize=11)
    fig.tight_layout()
    return save_figure(fig, stem)


def _to_disparity_view(x, valid, is_depth: bool):
    """A [0, 1] image of inverse depth (near = bright) normalised on the valid pixels' 2–98 %."""
    import numpy as np

    x = np.asarray(x, dtype=np.float64)
    valid = np.asarray(valid, dtype=bool) & np.isfinite(x)
    if is_depth:
        valid &= x > 0
        x = np.where(valid, 1.0 / np.where(valid, x, 1.0), 0.0)
    if not valid.any():
        return np.zeros_like(x), valid
    lo, hi = np.percentile(x[valid], [2, 98])
    view = np.clip((x - lo) / max(hi - lo, 1e-12), 0, 1)
    return np.where(valid, view, 0.0), valid


def qualitative_grid(samples: list[dict], predictions: list, output_space: str, stem, title: str) -> list[Path]:
    """Rows = samples; columns = image | ground truth | prediction (inverse depth, Spectral_r)."""
    import numpy as np

    plt = _plt()
    n = len(samples)
    fig, axes = plt.subplots(n, 3, figsize=(9, 2.6 * n), squeeze=False)
    for i, (s, p) in enumerate(zip(samples, predictions)):
        gt_view, gt_valid = _to_disparity_view(s["depth"], s.get("valid", np.ones_like(s["depth"], bool)), True)
        pred_view, _ = _to_disparity_view(p, np.ones_like(p, dtype=bool), output_space == "depth")
        axes[i][0].imshow(s["image"])
        gt_rgba = plt.get_cmap("Spectral_r")(gt_view)
        gt_rgba[~gt_valid] = (0, 0, 0, 1)
        axes[i][1].imshow(gt_rgba)
        axes[i][2].imshow(pred_view, cmap="Spectral_r", vmin=0, vmax=1)
        for j, name in enumerate(("image", "ground truth (1/depth)",
                                 "prediction (1/depth)" if output_space == "depth" else "prediction (disparity)")):
            axes[i][j].set_axis_off()
            if i == 0:
                axes[i][j].set_title(name, fontsize=9)
        axes[i][0].text(2, 2, str(s.get("name", i)), fontsize=6, color="white", va="top",
                        bbox=dict(facecolor="black", alpha=0.5, pad=1))
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    return save_figure(fig, stem)
