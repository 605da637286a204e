"""One colour convention for every depth picture dabench draws (`predict`, `data show`, the paper's
qualitative grid, `dabench report`), and the figure helpers they share.

Convention (the official Depth Anything V2 demo, ``run.py``): matplotlib's ``Spectral_r`` applied to
*disparity* (inverse depth) normalised to [0, 1], so near is warm (red) and far is cool (blue).
Metric depth in metres is inverted before colouring; invalid pixels are black. Colorbars say the
unit: metres (ticks placed at 1/d, labelled in m) or "relative disparity".
"""
from __future__ import annotations

import numpy as np

DEPTH_CMAP = "Spectral_r"
ERROR_CMAP = "magma"  # per-pixel AbsRel error maps: dark = small error, bright = large
INVALID_RGB = (0, 0, 0)


def plt():
    """matplotlib.pyplot on the Agg backend (no display needed)."""
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as pyplot

    return pyplot


def disparity_view(x, valid=None, space: str = "disparity", robust: bool = True):
    """``x`` (H×W, disparity or depth in metres per ``space``) as a [0, 1] map of inverse depth.

    Returns ``(view, valid, (lo, hi))``: ``lo``/``hi`` are the disparity values mapped to 0 and 1
    (1/m for metric depth; the model's units for relative disparity); normalisation uses the valid
    pixels' 2–98th percentiles when ``robust``, else min–max (the official demo)."""
    x = np.asarray(x, dtype=np.float64)
    ok = np.isfinite(x) if valid is None else (np.asarray(valid, dtype=bool) & np.isfinite(x))
    if space == "depth":
        ok &= x > 0
        x = np.where(ok, 1.0 / np.where(ok, x, 1.0), 0.0)
    if not ok.any():
        return np.zeros_like(x), ok, (0.0, 1.0)
    if robust:
        lo, hi = np.percentile(x[ok], [2, 98])
    else:
        lo, hi = np.min(x, where=ok, initial=np.inf), np.max(x, where=ok, initial=-np.inf)
    # in place on one array: a full-resolution prediction is several hundred MB in float64
    view = x - lo
    view /= max(hi - lo, 1e-12)
    np.clip(view, 0.0, 1.0, out=view)
    view[~ok] = 0.0
    return view, ok, (float(lo), float(hi))


def colorize_depth(x, valid=None, space: str = "disparity", cmap: str = DEPTH_CMAP, robust: bool = True):
    """RGB uint8 picture of a depth/disparity map in the convention above (invalid pixels black)."""
    import matplotlib

    from dabench.errors import ConfigError

    try:
        cm = matplotlib.colormaps[cmap]
    except KeyError:
        raise ConfigError(f"unknown matplotlib colormap {cmap!r}") from None
    view, ok, _ = disparity_view(x, valid, space, robust)
    # the colormap's own lookup (index = int(view * N), 1.0 -> N - 1) through a uint8 table: the same
    # colours as cm(view), without its H×W×4 float64 intermediate (32 bytes per pixel)
    n = cm.N
    lut = (cm(np.arange(n))[:, :3] * 255.0 + 0.5).astype(np.uint8)
    view *= n
    index = view.astype(np.intp)
    np.clip(index, 0, n - 1, out=index)
    rgb = lut[index]
    rgb[~ok] = INVALID_RGB
    return rgb


def label_palette(n: int) -> np.ndarray:
    """``n`` distinguishable RGB uint8 colours (tab20, then a seeded random tail); 255 (ignore) is black."""
    import matplotlib

    base = (np.asarray(matplotlib.colormaps["tab20"].colors)[:, :3] * 255 + 0.5).astype(np.uint8)
    palette = np.random.default_rng(3).integers(40, 256, (256, 3)).astype(np.uint8)
    palette[:min(n, len(base), 255)] = base[:min(n, len(base), 255)]
    palette[255] = 0
    return palette


def colorize_labels(labels, n_classes: int = 20) -> np.ndarray:
    """Semantic ids (255 = ignore) as RGB uint8 with ``label_palette``."""
    return label_palette(n_classes)[np.clip(np.asarray(labels), 0, 255).astype(np.int64)]


def add_depth_colorbar(fig, ax, lo: float, hi: float, space: str, cmap: str = DEPTH_CMAP):
    """A colorbar beside ``ax`` for a picture made by ``colorize_depth``: ticks in metres for metric
    depth (``space="depth"``, colour is 1/d so ticks sit at 1/d), else "relative disparity"."""
    import matplotlib

    norm = matplotlib.colors.Normalize(vmin=lo, vmax=hi if hi > lo else lo + 1e-12)
    sm = matplotlib.cm.ScalarMappable(norm=norm, cmap=cmap)
    cb = fig.colorbar(sm, ax=ax, fraction=0.046, pad=0.02)
    if space == "depth" and lo > 0:
        # ticks evenly spaced in colour (disparity), labelled with depths rounded to 2 significant digits
        depths = sorted({float(f"{1.0 / v:.2g}") for v in np.linspace(lo, hi, 6)})
        slack = 0.03 * (hi - lo)  # rounding may push an end tick just outside the bar
        depths = [d for d in depths if lo - slack <= 1.0 / d <= hi + slack] or [float(f"{2.0 / (lo + hi):.2g}")]
        cb.set_ticks([1.0 / d for d in depths])
        cb.set_ticklabels([f"{d:g}" for d in depths])
        cb.set_label("depth (m)", fontsize=7)
    else:
        cb.set_label("relative disparity", fontsize=7)
    cb.ax.tick_params(labelsize=6)
    return cb


def panel_figure(panels: list[dict], title: str | None = None, scale: float | None = None,
                 min_height_px: int = 160):
    """Side-by-side panels at their real pixel size (times an integer ``scale`` so that tiny images
    reach ``min_height_px``; never shrunk), each with a title. A panel is ``{"title", "rgb"}`` plus
    optional ``"colorbar": (lo, hi, space)`` (with ``"cmap"``, default ``DEPTH_CMAP``) and ``"legend": [(name, rgb_uint8), ...]``."""
    pyplot = plt()
    h = max(p["rgb"].shape[0] for p in panels)
    if scale is None:
        scale = max(1, int(np.ceil(min_height_px / max(h, 1))))
    dpi = 100
    widths = [p["rgb"].shape[1] * scale / dpi + (0.9 if p.get("colorbar") else 0.1) for p in panels]
    legend_rows = max((len(p.get("legend") or ()) for p in panels), default=0)
    fig_h = h * scale / dpi + 0.45 + (0.25 if title else 0) + 0.16 * int(np.ceil(legend_rows / 3))
    fig, axes = pyplot.subplots(1, len(panels), figsize=(sum(widths), fig_h), dpi=dpi, squeeze=False,
                                gridspec_kw={"width_ratios": widths})
    for ax, p in zip(axes[0], panels):
        ax.imshow(p["rgb"], interpolation="nearest")
        ax.set_title(p["title"], fontsize=8)
        ax.set_xticks([])
        ax.set_yticks([])
        for spine in ax.spines.values():  # a thin frame: an all-white mask stays visible on white
            spine.set_linewidth(0.5)
            spine.set_color("0.6")
        if p.get("colorbar"):
            lo, hi, space = p["colorbar"]
            add_depth_colorbar(fig, ax, lo, hi, space, cmap=p.get("cmap", DEPTH_CMAP))
        if p.get("legend"):
            import matplotlib.patches as mpatches

            handles = [mpatches.Patch(color=np.asarray(c) / 255.0, label=n) for n, c in p["legend"]]
            ax.legend(handles=handles, loc="upper center", bbox_to_anchor=(0.5, -0.02), ncol=3, fontsize=6,
                      frameon=False, handlelength=1.0, columnspacing=0.8)
    if title:
        fig.suptitle(title, fontsize=9)
    return fig
