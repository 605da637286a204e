"""dabench.bench.metric_engine: the ZoeDepth baseline transcription agrees with dabench's metrics."""
from __future__ import annotations

import numpy as np
import pytest

from test_metrics_torch import _maps


def test_zoedepth_baseline_matches_dabench_metrics():
    from dabench.bench.metric_engine import ZOE_KEYS, zoedepth_compute_metrics
    from dabench.metrics import depth_metrics

    gt, pred = _maps(1, 48, 64)
    box = (4, 47, 4, 60)  # a small Eigen-like window (the NYU crop itself needs 480x640 frames)
    theirs = zoedepth_compute_metrics(gt[0], pred[0], eigen_box=box)
    crop = np.zeros((48, 64), bool)
    crop[4:47, 4:60] = True
    valid = (gt[0] > 1e-3) & (gt[0] < 10) & crop
    ours = depth_metrics(np.clip(pred[0], 1e-3, 10), gt[0], valid)
    for k, zk in ZOE_KEYS.items():
        assert ours[k] == pytest.approx(float(theirs[zk]), rel=1e-5), k


def test_kernel_parts_variants_edit_the_real_source():
    """Each variant of dabench.bench.metric_parts takes out exactly what it names from the kernel source."""
    from dabench.bench.metric_parts import VARIANTS, variant_source
    from dabench.metrics.depth_native import SOURCE

    full = SOURCE.read_text()
    for name, edits in VARIANTS.items():
        text = variant_source(edits).decode()
        assert (text == full) == (name == "full"), name
        assert ("log_ps(r)" in text) == ("log" not in name), name
        assert ("_div_ps" in text) == ("divisions" not in name), name
