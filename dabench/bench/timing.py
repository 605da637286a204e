"""Timing helpers: paired, interleaved measurements so that both sides of a ratio see the same
machine load (the bench runs on shared CPUs where absolute timings drift by 2x within a minute)."""
from __future__ import annotations

import statistics
import time
from typing import Callable


def clock() -> float:
    return time.perf_counter()


def timed(fn: Callable[[], object]) -> float:
    """Seconds one call of ``fn`` takes (synchronising CUDA first and after, when it is in use)."""
    _sync()
    t0 = time.perf_counter()
    fn()
    _sync()
    return time.perf_counter() - t0


def _sync() -> None:
    try:
        import torch

        if torch.cuda.is_available() and torch.cuda.is_initialized():
            torch.cuda.synchronize()
    except ImportError:  # pragma: no cover
        pass


def paired(baseline: Callable[[], object], candidate: Callable[[], object], repeats: int) -> dict:
    """Time ``baseline`` and ``candidate`` ``repeats`` times each, alternating which goes first.

    Returns the per-call times of both sides and their medians; ``ratio`` = median(baseline) /
    median(candidate) (a speed-up of the candidate when > 1), plus the median of the per-pair ratios
    (robust to load changes between pairs).
    """
    a: list[float] = []
    b: list[float] = []
    for r in range(max(1, repeats)):
        if r % 2 == 0:
            a.append(timed(baseline))
            b.append(timed(candidate))
        else:
            b.append(timed(candidate))
            a.append(timed(baseline))
    ma, mb = statistics.median(a), statistics.median(b)
    return {"baseline_s": a, "candidate_s": b, "baseline_median_s": ma, "candidate_median_s": mb,
            "ratio_of_medians": ma / mb if mb > 0 else float("inf"),
            "median_pair_ratio": statistics.median(x / y for x, y in zip(a, b) if y > 0)}

