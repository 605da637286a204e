"""Ordinal (pairwise relative-depth) accuracy, as Depth Anything V2's DA-2K benchmark scores it.

A pair is two pixels ``(h1, w1)``, ``(h2, w2)`` of one image with a label saying which is closer
to the camera. The model ranks the pair correctly when, at those exact pixels of its prediction
(full image resolution), the closer point has the *larger* disparity (relative Depth Anything
models) or the *smaller* depth (metric models). Equal values are a wrong answer: a model that
cannot tell the two points apart has not ranked them. No alignment is needed (the order of values
is invariant to any positive scale and shift).

``pair_accuracy`` = correct pairs / all pairs, a fraction in [0, 1] (tables show percent), pooled
over every pair of the dataset (DA-2K weighs pairs, not images) and also per scene type.
"""
from __future__ import annotations

import numpy as np

from dabench.errors import DataError
from dabench.metrics.depth import to_numpy

OUTPUT_SPACES = ("disparity", "depth")


def pairs_correct(pred, pairs, closer, output_space: str, *, name: str = "sample") -> np.ndarray:
    """Bool vector: whether each pair is ranked correctly by ``pred`` (H×W, ``output_space``).

    ``pairs``: int N×4 ``(h1, w1, h2, w2)`` pixel indices; ``closer``: int N, 0 when point 1 is the
    closer one, 1 when point 2 is. A NaN/inf prediction at a pair's pixel is a ``DataError``."""
    if output_space not in OUTPUT_SPACES:
        raise DataError(f"{name}: output space must be one of {', '.join(OUTPUT_SPACES)}, got {output_space!r}")
    pred = to_numpy(pred)
    pairs = np.asarray(pairs, dtype=np.int64).reshape(-1, 4)
    closer = np.asarray(closer, dtype=np.int64).reshape(-1)
    if pred.ndim != 2:
        raise DataError(f"{name}: prediction must be H×W, got shape {pred.shape}")
    if len(closer) != len(pairs) or not np.isin(closer, (0, 1)).all():
        raise DataError(f"{name}: need one closer label (0 or 1) per pair; got {len(closer)} for {len(pairs)} pairs")
    h, w = pred.shape
    if pairs.size and (pairs.min() < 0 or pairs[:, [0, 2]].max() >= h or pairs[:, [1, 3]].max() >= w):
        raise DataError(f"{name}: a pair point lies outside the {h}x{w} prediction")
    v1 = pred[pairs[:, 0], pairs[:, 1]].astype(np.float64)
    v2 = pred[pairs[:, 2], pairs[:, 3]].astype(np.float64)
    if not (np.isfinite(v1).all() and np.isfinite(v2).all()):
        raise DataError(f"{name}: the prediction is NaN/inf at a pair's pixel")
    near, far = np.where(closer == 0, v1, v2), np.where(closer == 0, v2, v1)
    return near > far if output_space == "disparity" else near < far  # ties: False


class PairAccuracyState:
    """Correct / total pair counts, pooled and per group (scene type)."""

    def __init__(self):
        self.correct: dict[str, int] = {}
        self.total: dict[str, int] = {}

    def update(self, group: str, correct) -> None:
        """Add the bool outcomes of one image's pairs under ``group``."""
        c = np.asarray(correct, dtype=bool)
        self.correct[group] = self.correct.get(group, 0) + int(c.sum())
        self.total[group] = self.total.get(group, 0) + int(c.size)

    @property
    def n_pairs(self) -> int:
        return sum(self.total.values())

    def compute(self) -> dict[str, float]:
        """``{"pair_accuracy": fraction}`` over every pair (NaN with no pairs)."""
        n = self.n_pairs
        return {"pair_accuracy": (sum(self.correct.values()) / n) if n else float("nan")}

    def per_group(self) -> dict[str, dict[str, float | int]]:
        """``{group: {"pair_accuracy": fraction, "pairs": count}}`` in sorted group order."""
        return {g: {"pair_accuracy": self.correct[g] / self.total[g] if self.total[g] else float("nan"),
                    "pairs": self.total[g]} for g in sorted(self.total)}
