"""Display facts shared by tables, figures and regression reports: metric direction / name /
format (from the metric registry when importable), dataset display names, number formatting."""
from __future__ import annotations

import math

# Used only when ``dabench.metrics`` is not importable or does not know a metric (e.g. the
# multi-scale mIoU column of the paper's Table 7, which is a protocol variant of ``miou``).
_FALLBACK_METRICS: dict[str, dict] = {
    "abs_rel": dict(display="AbsRel", higher_is_better=False, fmt=".3f", unit=""),
    "sq_rel": dict(display="SqRel", higher_is_better=False, fmt=".3f", unit=""),
    "rmse": dict(display="RMSE", higher_is_better=False, fmt=".3f", unit=""),
    "rmse_log": dict(display="RMSE log", higher_is_better=False, fmt=".3f", unit=""),
    "log10": dict(display="log10", higher_is_better=False, fmt=".3f", unit=""),
    "silog": dict(display="SILog", higher_is_better=False, fmt=".2f", unit="x100"),
    "delta1": dict(display="δ1", higher_is_better=True, fmt=".3f", unit=""),
    "delta2": dict(display="δ2", higher_is_better=True, fmt=".3f", unit=""),
    "delta3": dict(display="δ3", higher_is_better=True, fmt=".3f", unit=""),
    "miou": dict(display="mIoU", higher_is_better=True, fmt=".1f", unit="%"),
    "macc": dict(display="mAcc", higher_is_better=True, fmt=".1f", unit="%"),
    "aacc": dict(display="aAcc", higher_is_better=True, fmt=".1f", unit="%"),
}

LATEX_METRIC_NAMES = {"delta1": r"$\delta_1$", "delta2": r"$\delta_2$", "delta3": r"$\delta_3$",
                      "abs_rel": "AbsRel", "rmse_log": "RMSE$_{\\log}$", "log10": "log10"}

DATASET_DISPLAY = {
    "kitti": "KITTI", "nyu": "NYUv2", "sintel": "Sintel", "ddad": "DDAD", "eth3d": "ETH3D",
    "diode": "DIODE", "diode-indoor": "DIODE-Indoor", "diode-outdoor": "DIODE-Outdoor",
    "sunrgbd": "SUN RGB-D", "ibims": "iBims-1", "hypersim": "HyperSim", "vkitti2": "vKITTI2",
    "cityscapes": "Cityscapes", "ade20k": "ADE20K", "mean": "Mean",
}

# Default column order when nothing else (suite, published table, --metrics) decides it.
METRIC_ORDER = ("abs_rel", "sq_rel", "rmse", "rmse_log", "log10", "silog", "delta1", "delta2", "delta3",
                "miou", "miou_ms", "macc", "aacc")


def metric_info(name: str) -> dict:
    """``{name, display, higher_is_better (bool|None), fmt, unit}`` for a metric name.

    The registry (``dabench.metrics.METRICS``) wins; then a built-in table; an unknown metric gets
    ``higher_is_better=None`` (direction unknown: never ranked, any change beyond tolerance is flagged)."""
    if name.endswith("_ms") and name[:-3] in _FALLBACK_METRICS:  # multi-scale variant of a registered metric
        base = metric_info(name[:-3])
        return dict(base, name=name, display=base["display"] + " (MS)")
    try:
        from dabench.metrics import METRICS  # noqa: PLC0415

        if name in METRICS:
            spec = METRICS.get(name)
            return dict(name=name, display=spec.display, higher_is_better=bool(spec.higher_is_better),
                        fmt=spec.fmt, unit=spec.unit)
    except ImportError:
        pass
    if name in _FALLBACK_METRICS:
        return dict(name=name, **_FALLBACK_METRICS[name])
    return dict(name=name, display=name, higher_is_better=None, fmt=".4g", unit="")


def arrow(higher_is_better: bool | None) -> str:
    return "" if higher_is_better is None else ("↑" if higher_is_better else "↓")


def format_value(value, fmt: str) -> str | None:
    """``value`` formatted with a format spec (``".3f"`` or ``"{:.3f}"``); None for missing/NaN."""
    if value is None:
        return None
    try:
        v = float(value)
    except (TypeError, ValueError):
        return None
    if math.isnan(v):
        return None
    if "{" in fmt:
        return fmt.format(v)
    return format(v, fmt)


def format_params(params) -> str | None:
    """Parameter count as the paper prints it: ``24.8M``; ``1.3B``; ``12.3K``."""
    if params is None:
        return None
    try:
        p = float(params)
    except (TypeError, ValueError):
        return None
    if math.isnan(p):
        return None
    if p >= 1e9:
        return f"{p / 1e9:.1f}B"
    if p >= 1e6:
        return f"{p / 1e6:.1f}M"
    if p >= 1e3:
        return f"{p / 1e3:.1f}K"
    return f"{int(p)}"


def dataset_display(name: str) -> str:
    """Human name of a dataset key: built-in names for the paper's datasets, else the dataset card's
    ``display_name``/``title`` when the data package can load it, else the key itself."""
    if name in DATASET_DISPLAY:
        return DATASET_DISPLAY[name]
    try:
        from dabench.data import load_card  # noqa: PLC0415

        card = load_card(name)
        for key in ("display_name", "display", "title"):
            if isinstance(card.get(key), str):
                return card[key]
    except Exception:  # noqa: BLE001 - any failure just means "no nicer name"
        pass
    return name
