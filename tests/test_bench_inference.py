"""dabench.bench.inference: the official-path baseline (explicit attention) equals dabench's batched path."""
from __future__ import annotations

import numpy as np
import torch


def test_official_attention_switches_only_inside_the_block():
    from dabench.bench.inference import make_images, nondegenerate_head, official_attention, official_infer_image
    from dabench.models import create_model
    from dabench.models.inference import predict_batch
    from timm.models.vision_transformer import Attention

    torch.manual_seed(0)
    model = create_model("da2_test").eval()
    nondegenerate_head(model)
    attn = [m for m in model.modules() if isinstance(m, Attention)]
    assert attn and all(m.fused_attn for m in attn)
    ims = make_images(2, (40, 56))
    with official_attention(model) as n:
        assert n == len(attn) and not any(m.fused_attn for m in attn)
        ref = [official_infer_image(model, np.ascontiguousarray(im[..., ::-1]), 42, "cpu") for im in ims]
    assert all(m.fused_attn for m in attn)
    fast = predict_batch(model, ims, 42, "cpu", batch_size=2)
    scale = max(float(np.abs(r).max()) for r in ref)
    assert scale > 0
    assert max(float(np.abs(r - f).max()) for r, f in zip(ref, fast)) < 1e-4 * scale
