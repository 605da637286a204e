"""Uncertainty of the reported numbers: percentile-bootstrap confidence intervals over images and the
paired test used by ``dabench compare`` and ``dabench regress``.

- ``bootstrap_ci(values)``: resample the per-image values with replacement ``resamples`` times
  (``numpy.random.default_rng(seed)``), take the mean of each resample, and report the
  ``(1 - confidence) / 2`` and ``(1 + confidence) / 2`` percentiles of those means (the
  percentile method of ``scipy.stats.bootstrap``). Only per-image metrics (averaging ``"image"``)
  get one: their record value is exactly the mean of the per-image values.
- ``paired_difference(a, b)``: per-sample differences ``a - b`` on the same samples, their mean,
  its bootstrap CI and the two-sided Wilcoxon signed-rank p-value (``scipy.stats.wilcoxon``).
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import numpy as np

DEFAULT_RESAMPLES = 1000
DEFAULT_CONFIDENCE = 0.95
DEFAULT_ALPHA = 0.05
_CHUNK_ELEMENTS = 1 << 22  # resample in chunks of ~4M indices to bound memory


def bootstrap_means(values, resamples: int = DEFAULT_RESAMPLES, seed: int = 0) -> np.ndarray:
    """Means of ``resamples`` bootstrap resamples (with replacement, same size) of ``values``."""
    x = np.asarray(values, dtype=np.float64).ravel()
    n = x.size
    if n == 0:
        raise ValueError("bootstrap of an empty set of values")
    if resamples < 1:
        raise ValueError(f"bootstrap resamples must be >= 1, got {resamples}")
    rng = np.random.default_rng(seed)
    out = np.empty(int(resamples), dtype=np.float64)
    step = max(1, _CHUNK_ELEMENTS // n)
    for start in range(0, int(resamples), step):
        k = min(step, int(resamples) - start)
        out[start:start + k] = x[rng.integers(0, n, size=(k, n))].mean(axis=1)
    return out


def bootstrap_ci(values, resamples: int = DEFAULT_RESAMPLES, seed: int = 0,
                 confidence: float = DEFAULT_CONFIDENCE) -> tuple[float, float]:
    """``(low, high)`` percentile-bootstrap CI of the mean of ``values`` (see the module docstring)."""
    if not 0 < confidence < 1:
        raise ValueError(f"confidence must be in (0, 1), got {confidence}")
    means = bootstrap_means(values, resamples, seed)
    tail = 100 * (1 - confidence) / 2
    lo, hi = np.percentile(means, [tail, 100 - tail])
    return float(lo), float(hi)


def record_cis(rows: list[dict], metric_names, averaging: dict[str, str], resamples: int, seed: int,
               confidence: float = DEFAULT_CONFIDENCE) -> dict[str, list[float]]:
    """``{metric: [low, high]}`` from per-sample rows (``status == "ok"``) for the per-image metrics."""
    out: dict[str, list[float]] = {}
    if resamples <= 0:
        return out
    ok = [r for r in rows if r.get("status") == "ok"]
    for m in metric_names:
        if averaging.get(m) != "image":
            continue
        vals = np.array([r[m] for r in ok if r.get(m) is not None], dtype=np.float64)
        vals = vals[np.isfinite(vals)]
        if vals.size == 0:
            continue
        out[m] = list(bootstrap_ci(vals, resamples, seed, confidence))
    return out


@dataclass
class PairedResult:
    """One paired comparison of a metric over the same samples (``diff = a - b``)."""

    n: int
    mean_a: float
    mean_b: float
    mean_diff: float
    ci_low: float
    ci_high: float
    p_value: float

    def significant(self, alpha: float = DEFAULT_ALPHA) -> bool:
        return self.p_value < alpha

    def as_dict(self) -> dict:
        return {k: (None if isinstance(v, float) and not math.isfinite(v) else v) for k, v in asdict(self).items()}


def wilcoxon_p(diff) -> float:
    """Two-sided Wilcoxon signed-rank p-value of ``diff`` (``scipy.stats.wilcoxon``, zero differences
    dropped as in Wilcoxon's original test); 1.0 when every difference is zero."""
    from scipy import stats

    d = np.asarray(diff, dtype=np.float64)
    if d.size == 0 or not np.any(d != 0):
        return 1.0
    return float(stats.wilcoxon(d, zero_method="wilcox", alternative="two-sided").pvalue)


def paired_difference(a, b, resamples: int = DEFAULT_RESAMPLES, seed: int = 0,
                      confidence: float = DEFAULT_CONFIDENCE) -> PairedResult:
    """Compare per-sample values ``a`` and ``b`` of the same samples (same order)."""
    a = np.asarray(a, dtype=np.float64)
    b = np.asarray(b, dtype=np.float64)
    if a.shape != b.shape:
        raise ValueError(f"paired values need the same samples: {a.shape} vs {b.shape}")
    keep = np.isfinite(a) & np.isfinite(b)
    a, b = a[keep], b[keep]
    if a.size == 0:
        raise ValueError("no sample has a finite value on both sides")
    d = a - b
    lo, hi = bootstrap_ci(d, resamples, seed, confidence) if resamples > 0 else (math.nan, math.nan)
    return PairedResult(int(d.size), float(a.mean()), float(b.mean()), float(d.mean()), lo, hi, wilcoxon_p(d))
