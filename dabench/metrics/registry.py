"""The metric registry: one ``MetricSpec`` per reported number.

Every task (zero-shot relative depth, metric depth, segmentation) reports through these entries,
so tables, comparisons and regressions read ``higher_is_better``, the display name, format,
unit and averaging rule from one place instead of re-deciding them.

Averaging:
- ``"image"``: the metric is computed on each image and the per-image values are averaged
  (ZoeDepth / Depth Anything metric-depth protocol: every image weighs the same).
- ``"pixel"``: sums are pooled over all valid pixels of the dataset before the metric is formed
  (segmentation confusion areas; available for depth metrics as an alternative).
"""
from __future__ import annotations

from dataclasses import asdict, dataclass

from dabench.registry import Registry

AVERAGING = ("image", "pixel")


@dataclass(frozen=True)
class MetricSpec:
    name: str
    display: str
    higher_is_better: bool
    fmt: str  # python format spec for tables, e.g. ".3f"
    unit: str  # "" (ratio), "m", "%", "x100"
    averaging: str  # "image" | "pixel"
    task: str  # "depth" | "segmentation"
    description: str = ""

    def format(self, value: float | None) -> str:
        if value is None or value != value:  # None or NaN
            return "-"
        return format(value, self.fmt)

    @property
    def arrow(self) -> str:
        return "↑" if self.higher_is_better else "↓"

    def as_dict(self) -> dict:
        return asdict(self)


METRICS = Registry("metric")


def _add(spec: MetricSpec) -> None:
    if spec.averaging not in AVERAGING:
        raise ValueError(f"metric {spec.name}: averaging must be one of {AVERAGING}")
    METRICS.register(spec.name, spec)


# Depth metrics: the set of ZoeDepth's ``compute_errors`` (per image, then averaged over images).
_add(MetricSpec("abs_rel", "AbsRel", False, ".3f", "", "image", "depth", "mean |p - g| / g"))
_add(MetricSpec("sq_rel", "SqRel", False, ".3f", "", "image", "depth", "mean (p - g)^2 / g"))
_add(MetricSpec("rmse", "RMSE", False, ".3f", "score-space unit", "image", "depth", "sqrt(mean (p - g)^2)"))
_add(MetricSpec("rmse_log", "RMSE log", False, ".3f", "", "image", "depth", "sqrt(mean (ln p - ln g)^2)"))
_add(MetricSpec("log10", "log10", False, ".3f", "", "image", "depth", "mean |log10 p - log10 g|"))
_add(MetricSpec("silog", "SILog", False, ".2f", "x100", "image", "depth",
                "100 * sqrt(mean e^2 - (mean e)^2), e = ln p - ln g"))
for _k in (1, 2, 3):
    _add(MetricSpec(f"delta{_k}", f"δ{_k}", True, ".3f", "", "image", "depth",
                    f"fraction of pixels with max(p/g, g/p) < 1.25^{_k}"))

# Segmentation metrics: from per-class intersection/union areas pooled over the dataset (mmseg IoUMetric).
_add(MetricSpec("miou", "mIoU", True, ".2f", "%", "pixel", "segmentation",
                "mean over classes present of intersection / union, percent"))
_add(MetricSpec("macc", "mAcc", True, ".2f", "%", "pixel", "segmentation",
                "mean over classes present of per-class pixel accuracy, percent"))
_add(MetricSpec("aacc", "aAcc", True, ".2f", "%", "pixel", "segmentation",
                "overall pixel accuracy over labelled pixels, percent"))

DEPTH_METRICS: tuple[str, ...] = ("abs_rel", "sq_rel", "rmse", "rmse_log", "log10", "silog",
                                  "delta1", "delta2", "delta3")
SEG_METRICS: tuple[str, ...] = ("miou", "macc", "aacc")


def get_metric(name: str) -> MetricSpec:
    """The spec of a registered metric; an unknown name raises listing the valid ones."""
    return METRICS.get(name)


def list_metrics(task: str | None = None) -> list[str]:
    """Registered metric names (optionally of one task) in registration order."""
    names = list(DEPTH_METRICS) + list(SEG_METRICS) + [n for n in METRICS.names()
                                                       if n not in DEPTH_METRICS and n not in SEG_METRICS]
    return [n for n in names if task is None or METRICS.get(n).task == task]


def higher_is_better(names) -> dict[str, bool]:
    return {n: METRICS.get(n).higher_is_better for n in names if n in METRICS}
