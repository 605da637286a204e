"""dabench.metrics.depth_torch (``DepthMetricState.update_batch``): the fused torch pass against the
numpy engine, map by map."""
from __future__ import annotations

import numpy as np
import pytest
import torch


def _maps(b=3, h=24, w=32, seed=0):
    rng = np.random.default_rng(seed)
    gt = rng.uniform(0.5, 12.0, (b, h, w)).astype(np.float32)
    gt[:, :2] = 0.0  # holes
    pred = (gt.clip(0.5) * np.exp(rng.normal(0, 0.2, gt.shape))).astype(np.float32)
    return gt, pred


@pytest.mark.parametrize("engine", ["auto", "torch"])
@pytest.mark.parametrize("shared_mask", [True, False])
def test_update_batch_equals_per_image_updates(shared_mask, engine):
    from dabench.metrics import DepthMetricState

    gt, pred = _maps()
    rng = np.random.default_rng(1)
    valid = rng.random(gt.shape[1:] if shared_mask else gt.shape) > 0.3
    ref, fast = DepthMetricState(), DepthMetricState()
    for i in range(gt.shape[0]):
        v = (valid if shared_mask else valid[i]) & (gt[i] > 1e-3) & (gt[i] < 10)
        ref.update(pred[i], gt[i], v)
    per_image = fast.update_batch(torch.from_numpy(pred), torch.from_numpy(gt), torch.from_numpy(valid),
                                  min_depth=1e-3, max_depth=10.0, engine=engine)
    assert len(per_image) == gt.shape[0]
    a, b = ref.compute(), fast.compute()
    for k in a:
        assert b[k] == pytest.approx(a[k], rel=1e-5, abs=1e-9), k
    assert fast.n_images == ref.n_images


@pytest.mark.parametrize("engine", ["auto", "torch"])
def test_update_batch_counts_empty_maps_and_rejects_bad_predictions(engine):
    from dabench.errors import DataError
    from dabench.metrics import DepthMetricState

    gt, pred = _maps(2)
    gt[1] = 0.0  # no valid pixel
    st = DepthMetricState()
    out = st.update_batch(pred, gt, engine=engine)
    assert out[1] is None and st.skipped_no_valid == 1 and st.n_images == 1
    pred[0, 5, 5] = -1.0
    with pytest.raises(DataError, match="valid pixels"):
        DepthMetricState().update_batch(pred, gt, names=["a", "b"], engine=engine)


@pytest.mark.slow
def test_compiled_pass_equals_the_numpy_engine():
    """The torch.compile'd kernel (what GPU runs use, and the CPU without a C compiler) gives the numpy
    engine's metrics."""
    from dabench.metrics import DepthMetricState

    gt, pred = _maps(2, 20, 28)
    ref, fast = DepthMetricState(), DepthMetricState()
    for i in range(2):
        ref.update(np.clip(pred[i], 1e-3, 10.0), gt[i], (gt[i] > 1e-3) & (gt[i] < 10))
    fast.update_batch(torch.from_numpy(pred), torch.from_numpy(gt), min_depth=1e-3, max_depth=10.0,
                      clamp_pred=True, compile=True, engine="torch")
    a, b = ref.compute(), fast.compute()
    for k in a:
        assert b[k] == pytest.approx(a[k], rel=1e-5, abs=1e-9), k
