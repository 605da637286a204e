"""Preprocessing rules (official infer_image / image2tensor) and batched inference."""
from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from dabench.errors import ConfigError, DataError
from dabench.models import create_model
from test_models import tiny_model  # tests/ is on sys.path under pytest
from dabench.models.inference import (network_size, predict_batch, predict_image,
                                      preprocess, resolve_amp_dtype)

# Independent reference: the ImageNet statistics the official Depth Anything transform uses.
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


@pytest.mark.parametrize("hw, expect", [
    # hand-computed: scale = 518 / shorter side; the other side = round(side * scale / 14) * 14
    ((480, 640), (518, 686)),    # 640 * 518/480 = 690.67 -> 49.33 patches -> 49 -> 686
    ((375, 1242), (518, 1722)),  # 1242 * 518/375 = 1715.6 -> 122.54 -> 123 -> 1722
    ((436, 1024), (518, 1218)),  # Sintel: 1216.6 -> 86.9 -> 87 -> 1218
    ((518, 518), (518, 518)),
    ((1000, 300), (1722, 518)),  # portrait: 1000 * 518/300 = 1726.7 -> 123.3 -> 123 -> 1722
    ((98, 98), (518, 518)),      # upscaling small images
])
def test_network_size_official_rule(hw, expect):
    assert network_size(*hw) == expect


def test_network_size_rounds_up_below_input_size():
    # 520 / 14 = 37.14 rounds to 37 -> 518 < 520, so the official rule takes the ceiling (38 -> 532)
    assert network_size(1000, 1000, input_size=520) == (532, 532)
    h, w = network_size(333, 777, input_size=98)
    assert h % 14 == 0 and w % 14 == 0 and min(h, w) >= 98


def test_preprocess_normalisation_by_hand():
    rng = np.random.default_rng(0)
    img = rng.integers(0, 256, (28, 42, 3), dtype=np.uint8)
    x = preprocess(img, input_size=28)  # already the target size: cv2 resize is the identity
    assert x.shape == (1, 3, 28, 42) and x.dtype == torch.float32
    expect = (img / 255.0 - np.array(IMAGENET_MEAN)) / np.array(IMAGENET_STD)
    np.testing.assert_allclose(x[0].numpy(), expect.transpose(2, 0, 1), rtol=0, atol=1e-6)
    # RGB order: channel 0 is normalised with the red mean/std
    red = np.zeros((14, 14, 3), np.uint8)
    red[..., 0] = 255
    y = preprocess(red, input_size=14)[0]
    assert y[0, 0, 0].item() == pytest.approx((1 - 0.485) / 0.229, abs=1e-5)
    assert y[1, 0, 0].item() == pytest.approx(-0.456 / 0.224, abs=1e-5)


def test_preprocess_resize_is_bicubic():
    rng = np.random.default_rng(1)
    img = rng.integers(0, 256, (20, 30, 3), dtype=np.uint8)
    x = preprocess(img, input_size=28)  # -> 28 x 42
    assert x.shape == (1, 3, 28, 42)
    import cv2

    for interp, should_match in [(cv2.INTER_CUBIC, True), (cv2.INTER_LINEAR, False)]:
        ref = cv2.resize(img / 255.0, (42, 28), interpolation=interp)
        ref = ((ref - np.array(IMAGENET_MEAN)) / np.array(IMAGENET_STD)).transpose(2, 0, 1)
        assert np.allclose(x[0].numpy(), ref, atol=1e-5) == should_match


def test_preprocess_bad_inputs():
    with pytest.raises(DataError, match="uint8"):
        preprocess(np.zeros((14, 14, 3), np.float32))
    with pytest.raises(DataError, match="H×W×3"):
        preprocess(np.zeros((14, 14), np.uint8))
    with pytest.raises(DataError, match="numpy"):
        preprocess([[0]])


def test_predict_image_matches_official_infer_image():
    model = tiny_model("da2_test")
    img = np.random.default_rng(2).integers(0, 256, (30, 50, 3), dtype=np.uint8)
    out = predict_image(model, img, input_size=28)
    assert out.shape == (30, 50) and out.dtype == np.float32 and out.std() > 0
    # official: depth = model(image2tensor(img)); interpolate to (h, w), bilinear, align_corners=True
    with torch.no_grad():
        ref = F.interpolate(model(preprocess(img, 28))[:, None], (30, 50), mode="bilinear", align_corners=True)[0, 0]
    np.testing.assert_array_equal(out, ref.numpy())


def test_predict_batch_buckets_mixed_sizes():
    model = tiny_model("da1_test")
    rng = np.random.default_rng(3)
    sizes = [(30, 50), (20, 20), (30, 50), (31, 52), (20, 20)]
    imgs = [rng.integers(0, 256, (*s, 3), dtype=np.uint8) for s in sizes]
    done = []
    preds = predict_batch(model, imgs, input_size=28, batch_size=2, progress=done.append)
    assert [p.shape for p in preds] == sizes and all(p.std() > 0 for p in preds)
    assert sum(done) == len(imgs)
    for img, p in zip(imgs, preds):
        np.testing.assert_allclose(p, predict_image(model, img, input_size=28), rtol=1e-5, atol=1e-6)
    one_by_one = predict_batch(model, imgs, input_size=28, batch_size=1)
    for a, b in zip(preds, one_by_one):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)


def test_predict_batch_bf16_autocast_cpu():
    model = tiny_model("da2_test")
    imgs = [np.random.default_rng(4).integers(0, 256, (28, 28, 3), dtype=np.uint8)]
    ref = predict_batch(model, imgs, input_size=28)[0]
    bf = predict_batch(model, imgs, input_size=28, amp_dtype="bf16")[0]
    assert bf.dtype == np.float32 and ref.std() > 0
    assert np.abs(bf - ref).max() <= 0.05 * np.abs(ref).max() + 1e-6
    assert resolve_amp_dtype("fp16") == torch.float16 and resolve_amp_dtype("fp32") is None
    with pytest.raises(ConfigError, match="precision"):
        resolve_amp_dtype("int8")


def test_predict_batch_names_bad_image():
    model = create_model("constant")
    with pytest.raises(DataError, match="image 1"):
        predict_batch(model, [np.zeros((14, 14, 3), np.uint8), np.zeros((14, 14), np.uint8)], input_size=14)


def test_baselines_through_inference():
    img = np.zeros((40, 30, 3), np.uint8)
    const = predict_batch(create_model("constant"), [img], input_size=28)[0]
    np.testing.assert_allclose(const, np.ones((40, 30)), atol=1e-6)
    hp = predict_image(create_model("horizon_prior"), img, input_size=28)
    assert hp.shape == (40, 30)
    assert hp[-1].min() > hp[25].max() > hp[0].max() - 1e-6  # disparity grows toward the bottom
