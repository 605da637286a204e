"""The metric registry: one ``MetricSpec`` per reported number, carrying its own math.

Every task (zero-shot relative depth, metric depth, segmentation) reports through these entries,
so tables, comparisons and regressions read ``higher_is_better``, the display name, format,
unit and averaging rule from one place instead of re-deciding them.

A depth metric also owns its math, split as in torchmetrics (``_update`` / ``_compute``):

- ``sums``: named per-pixel terms, each a function of :class:`PixelErrors` (the prediction ``p``,
  ground truth ``g`` and the quantities derived from them once per pixel). The engines sum every
  term over the valid pixels of each map. Written with operators and ``abs()`` only, a term runs
  unchanged on numpy (``dabench.metrics.depth``, float64) and torch (``dabench.metrics.depth_torch``,
  one fused pass); ``x.xp`` is the array module when a term needs a function.
- ``finalize``: the metric from those sums (a mapping term name -> sum, plus ``"n"``, the pixel
  count; values are floats or float64 arrays of one entry per map, so use ``np`` functions).

Adding a depth metric is one ``_add(MetricSpec(...))`` here (or ``register_metric`` at run time);
both engines, the streaming state, records and tables pick it up.

Averaging:
- ``"image"``: the metric is computed on each image and the per-image values are aggregated
  with ``image_aggregation`` (``"mean"``: ZoeDepth / Depth Anything protocol, every image weighs
  the same, streamed as a sum; ``"median"`` or ``"p<q>"`` percentiles keep the per-image values).
- ``"pixel"``: sums are pooled over all valid pixels of the dataset before the metric is formed
  (segmentation confusion areas; available for depth metrics as an alternative).
- ``"pair"``: counts pooled over every annotated point pair of the dataset (DA-2K's ordinal accuracy).
"""
from __future__ import annotations

import functools
import math
import re
from dataclasses import asdict, dataclass, field
from typing import Any, Callable, Mapping

import numpy as np

from dabench.registry import Registry

AVERAGING = ("image", "pixel", "pair")
_PERCENTILE = re.compile(r"^p(\d+(?:\.\d+)?)$")


class PixelErrors:
    """Per-pixel quantities a depth sum term is written in (numpy or torch arrays of valid pixels).

    ``p``, ``g``: prediction and ground truth (> 0, same unit); ``d = p - g``; ``r = p / g``;
    ``e = ln r`` (the log error); ``ae = |e|``; ``xp``: the array module (numpy or torch).
    Each derived quantity is computed once, on first use.
    """

    def __init__(self, p, g, xp):
        self.p, self.g, self.xp = p, g, xp
        self._cache: dict[str, Any] = {}

    def _get(self, key: str, make):
        if key not in self._cache:
            self._cache[key] = make()
        return self._cache[key]

    @property
    def d(self):
        return self._get("d", lambda: self.p - self.g)

    @property
    def r(self):
        return self._get("r", lambda: self.p / self.g)

    @property
    def e(self):
        return self._get("e", lambda: self.xp.log(self.r))

    @property
    def ae(self):
        return self._get("ae", lambda: abs(self.e))


Term = Callable[[PixelErrors], Any]


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
    sums: Mapping[str, Term] = field(default_factory=dict, compare=False, repr=False)
    finalize: Callable[[Mapping[str, Any]], Any] | None = field(default=None, compare=False, repr=False)
    image_aggregation: str = "mean"  # "mean" | "median" | "p<q>" (percentile q of the per-image values)

    def format(self, value: float | None) -> str:
        if value is None or value != value:  # None or NaN
            return "-"
        return format(value, self.fmt)

    @property
    def arrow(self) -> str:
        return "↑" if self.higher_is_better else "↓"

    @property
    def streams_as_sum(self) -> bool:
        """True when the per-image aggregate is a mean (exact from a running sum)."""
        return self.image_aggregation == "mean"

    def aggregate(self, per_image_values) -> float:
        """The dataset value from the per-image values (NaN when there are none)."""
        v = np.asarray(per_image_values, dtype=np.float64)
        if v.size == 0:
            return float("nan")
        if self.image_aggregation == "mean":
            return float(v.mean())
        if self.image_aggregation == "median":
            return float(np.median(v))
        return float(np.percentile(v, float(_PERCENTILE.match(self.image_aggregation).group(1))))

    def as_dict(self) -> dict:
        d = asdict(self)
        d.pop("sums")
        d.pop("finalize")
        d["sum_terms"] = list(self.sums)
        return d


METRICS = Registry("metric")
_TERMS: dict[str, Term] = {}  # every depth sum term by name: one definition per name
_GENERATION = [0]  # bumped when a metric is registered or removed: what is derived from the registry caches on it


def cached_until_registry_changes(fn):
    """Memoise ``fn(*args)`` (hashable arguments) until a metric is registered or unregistered: for what
    the scoring hot path derives from the registry (sum layouts, finalisers, kernel support)."""
    cache: dict[tuple, Any] = {}

    @functools.wraps(fn)
    def cached(*args):
        key = (args, _GENERATION[0])
        try:
            return cache[key]
        except KeyError:
            if len(cache) > 256:
                cache.clear()
            value = cache[key] = fn(*args)
            return value

    return cached


def register_metric(spec: MetricSpec) -> MetricSpec:
    """Validate and register ``spec`` (a duplicate name, or a sum term redefined differently, raises)."""
    if spec.averaging not in AVERAGING:
        raise ValueError(f"metric {spec.name}: averaging must be one of {AVERAGING}")
    agg = spec.image_aggregation
    if agg not in ("mean", "median") and not (_PERCENTILE.match(agg) and 0 <= float(agg[1:]) <= 100):
        raise ValueError(f"metric {spec.name}: image_aggregation must be 'mean', 'median' or 'p<q>' (0 <= q <= 100), "
                         f"got {agg!r}")
    if bool(spec.sums) != (spec.finalize is not None):
        raise ValueError(f"metric {spec.name}: give both sums and finalize, or neither")
    if "n" in spec.sums:
        raise ValueError(f"metric {spec.name}: 'n' is the pixel count every metric gets; name the term otherwise")
    for term, fn in spec.sums.items():
        if term in _TERMS and _TERMS[term] is not fn:
            raise ValueError(f"metric {spec.name}: sum term {term!r} is already defined by another metric; "
                             "reuse that function or pick another name")
    METRICS.register(spec.name, spec)
    _TERMS.update(spec.sums)
    _GENERATION[0] += 1
    return spec


_add = register_metric


def unregister_metric(name: str) -> MetricSpec:
    """Remove a metric registered at run time (its sum terms go too unless another metric uses them)."""
    spec = METRICS.get(name)
    METRICS.unregister(name)
    still = {t for n in METRICS.names() for t in (METRICS.get(n).sums or {})}
    for t in spec.sums:
        if t not in still:
            _TERMS.pop(t, None)
    _GENERATION[0] += 1
    return spec


def depth_engine_metrics(family: str = "depth") -> tuple[str, ...]:
    """The depth metrics the engines compute: every registered metric of ``family`` (``depth``, or
    ``depth_da2`` for Depth-Anything-V2 ``metric_depth``'s conventions) that has sums, in order."""
    return tuple(n for n in list_metrics(family) if METRICS.get(n).finalize is not None)


def depth_sum_terms(metrics=None) -> tuple[str, ...]:
    """The sum layout of those metrics: ``"n"`` (valid pixel count) then each term once, in order."""
    return _depth_sum_terms(tuple(metrics) if metrics else None)


@cached_until_registry_changes
def _depth_sum_terms(metrics) -> tuple[str, ...]:
    out = ["n"]
    for m in metrics or depth_engine_metrics():
        out += [t for t in METRICS.get(m).sums if t not in out]
    return tuple(out)


def term_function(name: str) -> Term:
    return _TERMS[name]


# --- depth sum terms (shared by the metrics below) ------------------------------------------------
_LOG_125 = math.log(1.25)
_LN10 = math.log(10.0)


def _abs_rel(x):  # |p - g| / g
    return abs(x.r - 1.0)


def _sq_rel(x):  # (p - g)^2 / g
    return x.d * (x.r - 1.0)


def _sq_err(x):
    return x.d * x.d


def _sq_log(x):
    return x.e * x.e


def _abs_log10(x):  # |log10 p - log10 g|
    return x.ae * (1.0 / _LN10)


def _log_err(x):
    return x.e


def _delta_term(k: int) -> Term:
    threshold = 1.25 ** k

    def term(x):  # max(g/p, p/g) < 1.25^k exactly as ZoeDepth/Marigold/DA-V2 compute it: the log form
        # |ln p/g| < k ln 1.25 disagrees at exact ratio ties (quantised ground truth vs a clamped
        # prediction, e.g. gt 8.000 m, pred clamped at 10 m), which do occur
        return x.xp.maximum(x.g / x.p, x.r) < threshold
    term.__name__ = f"_delta{k}"
    return term


def _mean(term: str):
    return lambda s: s[term] / s["n"]


def _silog(s):
    mean_log, mean_sq = s["log_err"] / s["n"], s["sq_log"] / s["n"]
    # max(., 0): rounding can make the variance a hair negative for a perfect prediction
    return 100.0 * np.sqrt(np.maximum(mean_sq - mean_log * mean_log, 0.0))


# Depth metrics: the set of ZoeDepth's ``compute_errors`` (per image, then averaged over images).
_add(MetricSpec("abs_rel", "AbsRel", False, ".3f", "", "image", "depth", "mean |p - g| / g",
                sums={"abs_rel": _abs_rel}, finalize=_mean("abs_rel")))
_add(MetricSpec("sq_rel", "SqRel", False, ".3f", "", "image", "depth", "mean (p - g)^2 / g",
                sums={"sq_rel": _sq_rel}, finalize=_mean("sq_rel")))
_add(MetricSpec("rmse", "RMSE", False, ".3f", "score-space unit", "image", "depth", "sqrt(mean (p - g)^2)",
                sums={"sq_err": _sq_err}, finalize=lambda s: np.sqrt(s["sq_err"] / s["n"])))
_add(MetricSpec("rmse_log", "RMSE log", False, ".3f", "", "image", "depth", "sqrt(mean (ln p - ln g)^2)",
                sums={"sq_log": _sq_log}, finalize=lambda s: np.sqrt(s["sq_log"] / s["n"])))
_add(MetricSpec("log10", "log10", False, ".3f", "", "image", "depth", "mean |log10 p - log10 g|",
                sums={"abs_log10": _abs_log10}, finalize=_mean("abs_log10")))
_add(MetricSpec("silog", "SILog", False, ".2f", "x100", "image", "depth",
                "100 * sqrt(mean e^2 - (mean e)^2), e = ln p - ln g",
                sums={"sq_log": _sq_log, "log_err": _log_err}, finalize=_silog))
for _k in (1, 2, 3):
    _add(MetricSpec(f"delta{_k}", f"δ{_k}", True, ".3f", "", "image", "depth",
                    f"fraction of pixels with max(p/g, g/p) < 1.25^{_k}",
                    sums={f"delta{_k}": _delta_term(_k)}, finalize=_mean(f"delta{_k}")))

# Segmentation metrics: from per-class intersection/union areas pooled over the dataset (mmseg IoUMetric).
_add(MetricSpec("miou", "mIoU", True, ".2f", "%", "pixel", "segmentation",
                "mean over classes present of intersection / union, percent"))
_add(MetricSpec("macc", "mAcc", True, ".2f", "%", "pixel", "segmentation",
                "mean over classes present of per-class pixel accuracy, percent"))
_add(MetricSpec("aacc", "aAcc", True, ".2f", "%", "pixel", "segmentation",
                "overall pixel accuracy over labelled pixels, percent"))

# Depth-Anything-V2 ``metric_depth`` conventions (DepthAnything/Depth-Anything-V2
# metric_depth/util/metric.py:4-26): the same formulas as above except SILog, which is
# sqrt(mean e^2 - 0.5 (mean e)^2) without the x100 (metric.py:23). Named da2_* (family depth_da2) so a
# table never puts them in a column of the ZoeDepth-convention metrics; the da2-metric suite reports them.
def _silog_da2(s):
    mean_log, mean_sq = s["log_err"] / s["n"], s["sq_log"] / s["n"]
    return np.sqrt(np.maximum(mean_sq - 0.5 * mean_log * mean_log, 0.0))


for _name, _disp, _hib, _fmt, _term in (("abs_rel", "AbsRel", False, ".3f", "abs_rel"), ("sq_rel", "SqRel", False, ".3f", "sq_rel"),
                                        ("rmse", "RMSE", False, ".3f", "sq_err"), ("rmse_log", "RMSE log", False, ".3f", "sq_log"),
                                        ("log10", "log10", False, ".3f", "abs_log10")):
    _base = METRICS.get(_name)
    _add(MetricSpec(f"da2_{_name}", f"{_disp} (DA2)", _hib, _fmt, _base.unit, "image", "depth_da2",
                    f"{_base.description} (Depth-Anything-V2 metric_depth eval_depth)",
                    sums={_term: term_function(_term)}, finalize=_base.finalize))
for _k in (1, 2, 3):
    _add(MetricSpec(f"da2_d{_k}", f"d{_k} (DA2)", True, ".3f", "", "image", "depth_da2",
                    f"fraction of pixels with max(p/g, g/p) < 1.25^{_k} (Depth-Anything-V2 metric_depth eval_depth)",
                    sums={f"delta{_k}": term_function(f"delta{_k}")}, finalize=METRICS.get(f"delta{_k}").finalize))
_add(MetricSpec("da2_silog", "SILog (DA2)", False, ".3f", "", "image", "depth_da2",
                "sqrt(mean e^2 - 0.5 (mean e)^2), e = ln p - ln g, not x100 (Depth-Anything-V2 metric_depth)",
                sums={"sq_log": term_function("sq_log"), "log_err": term_function("log_err")}, finalize=_silog_da2))
DA2_METRICS: tuple[str, ...] = ("da2_d1", "da2_d2", "da2_d3", "da2_abs_rel", "da2_sq_rel", "da2_rmse", "da2_rmse_log",
                                "da2_log10", "da2_silog")

# Ordinal accuracy on annotated point pairs (Depth Anything V2's DA-2K): a fraction in [0, 1]; the
# ".1%" format makes tables show percent (dabench.metrics.ordinal).
_add(MetricSpec("pair_accuracy", "Pair acc", True, ".1%", "", "pair", "ordinal",
                "fraction of point pairs whose closer point the model ranks closer (ties wrong)"))

# the built-in per-pixel sum terms, as registered at import: dabench.metrics.depth_native computes exactly
# these in C and is used only while every requested term is still this very function
BUILTIN_DEPTH_TERMS: dict[str, Term] = {t: _TERMS[t] for t in ("abs_rel", "sq_rel", "sq_err", "sq_log", "abs_log10",
                                                               "log_err", "delta1", "delta2", "delta3")}

# the nine standard depth metrics (the published tables' columns); the engines compute
# ``depth_engine_metrics()``, which also holds any metric registered later
DEPTH_METRICS: tuple[str, ...] = ("abs_rel", "sq_rel", "rmse", "rmse_log", "log10", "silog",
                                  "delta1", "delta2", "delta3")
SEG_METRICS: tuple[str, ...] = ("miou", "macc", "aacc")


def get_metric(name: str) -> MetricSpec:
    """The spec of a registered metric; an unknown name raises listing the valid ones."""
    return METRICS.get(name)


def list_metrics(task: str | None = None) -> list[str]:
    """Registered metric names (optionally of one task): the standard ones first, then the rest by name."""
    names = list(DEPTH_METRICS) + list(SEG_METRICS) + [n for n in METRICS.names()
                                                       if n not in DEPTH_METRICS and n not in SEG_METRICS]
    return [n for n in names if task is None or METRICS.get(n).task == task]


def higher_is_better(names) -> dict[str, bool]:
    return {n: METRICS.get(n).higher_is_better for n in names if n in METRICS}


# MoGe's invariance levels and Depth Pro's boundary metrics (no sums: scored per image by
# dabench.metrics.geometry); registered here so that suites can name them
def _register_geometry_metrics() -> None:
    import dabench.metrics.geometry_specs as geometry_specs

    for spec in geometry_specs.metric_specs():
        if spec[0] not in METRICS:
            register_metric(MetricSpec(*spec))


_register_geometry_metrics()
