"""dabench.eval.cache: what the prediction-cache key depends on, round trips, and misses that recompute."""
from __future__ import annotations

import numpy as np
import torch

from dabench.eval.cache import PredictionCache, image_fingerprint, model_fingerprint
from dabench.models import create_model


def _img(seed=0, h=14, w=21):
    return np.random.default_rng(seed).integers(0, 256, (h, w, 3), dtype=np.uint8)


def test_key_depends_on_model_image_and_protocol_only():
    proto = {"input_size": 98, "flip": False, "amp": None}
    k = PredictionCache.key("m1", _img(), proto)
    assert k == PredictionCache.key("m1", _img(), dict(reversed(list(proto.items()))))  # order-free
    assert k != PredictionCache.key("m2", _img(), proto)
    assert k != PredictionCache.key("m1", _img(1), proto)
    assert k != PredictionCache.key("m1", _img(), {**proto, "input_size": 112})
    assert k != PredictionCache.key("m1", _img(), {**proto, "flip": True})
    # the same pixels in another dtype or shape are another image
    assert image_fingerprint(_img()) != image_fingerprint(_img().astype(np.float32))
    assert image_fingerprint(_img()) != image_fingerprint(_img().reshape(21, 14, 3))


def test_model_fingerprint_follows_the_weights():
    torch.manual_seed(0)
    a = create_model("da2_test")
    fa = model_fingerprint(a, "da2_test")
    assert fa == model_fingerprint(a, "da2_test")
    with torch.no_grad():
        next(a.parameters()).view(-1)[0] += 1e-3
    assert model_fingerprint(a, "da2_test") != fa
    assert model_fingerprint(a, "da2_test") != model_fingerprint(a, "other_name")


def test_round_trip_miss_and_disabled(tmp_path):
    cache = PredictionCache(tmp_path / "c")
    key = PredictionCache.key("m", _img(), {})
    assert cache.get(key, (14, 21)) is None and cache.misses == 1
    pred = np.random.default_rng(0).random((14, 21)).astype(np.float64)
    cache.put(key, pred)
    got = cache.get(key, (14, 21))
    assert got.dtype == np.float32 and np.array_equal(got, pred.astype(np.float32)) and cache.hits == 1
    assert cache.get(key, (21, 14)) is None  # wrong shape: recompute, not an error
    cache.path(key).write_bytes(b"not an npy file")
    assert cache.get(key, (14, 21)) is None  # damaged: a miss
    off = PredictionCache(tmp_path / "c", enabled=False)
    off.put(key, pred)
    assert off.get(key) is None and off.misses == 1
    assert not any((tmp_path / "c").rglob("*.tmp*"))
