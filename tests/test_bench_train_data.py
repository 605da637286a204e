"""`dabench bench --only train_data` (dabench/bench/train_data.py): keys, arithmetic, and the FLOP count
checked against the ViT's matmul count written out by hand."""
from __future__ import annotations

import math

import pytest

from dabench.bench import train_data


def _vit_matmul_flops(tokens: int, dim: int, depth: int, patches: int, patch: int = 14) -> float:
    """Forward FLOPs (2 per multiply-add) of a ViT's matmuls: patch embedding, then per block qkv,
    attention scores and weighted sum, output projection and the 4x MLP."""
    embed = 2 * patches * (3 * patch * patch) * dim
    block = (2 * tokens * dim * 3 * dim + 2 * 2 * tokens * tokens * dim + 2 * tokens * dim * dim
             + 2 * 2 * tokens * dim * 4 * dim)
    return embed + depth * block


def test_flop_count_matches_the_hand_count():
    f = train_data.student_flops_per_image("da2_vits14", crop=56)
    patches = (56 // 14) ** 2
    assert f["frozen_encoder_forward_flops"] == pytest.approx(_vit_matmul_flops(patches + 1, 384, 12, patches),
                                                              rel=1e-9)
    # backward costs about twice the forward: the step is well above the encoder's forward alone
    assert f["student_forward_backward_flops"] > 2.5 * f["frozen_encoder_forward_flops"]
    assert f["flops_per_image"] == pytest.approx(f["student_forward_backward_flops"]
                                                 + 2 / 3 * f["frozen_encoder_forward_flops"])


def test_train_data_entry_keys_and_arithmetic():
    e = train_data.run(images=2, size=(40, 56), crop=28, steps=2, arch="da2_vits14", flop_crop=28)
    for k in ("images_per_second_per_core", "gpu_demand_images_per_second", "cores_per_gpu", "worker_scaling_1_to_2"):
        assert math.isfinite(e[k]) and e[k] > 0, k
    g = e["gpu"]
    assert g["bf16_dense_peak_tflops"] == 989.4 and g["utilisation"] == 0.4
    assert e["gpu_demand_images_per_second"] == pytest.approx(0.4 * 989.4e12 / g["flops_per_image"])
    assert e["cores_per_gpu"] == pytest.approx(e["gpu_demand_images_per_second"] / e["images_per_second_per_core"])
    assert e["worker_scaling_1_to_2"] == pytest.approx(e["workers"]["2"]["images_per_second"]
                                                       / e["workers"]["1"]["images_per_second"])
    one = e["workers"]["1"]
    assert e["images_per_second_per_core"] == pytest.approx(one["steps"] * 6 / one["worker_cpu_seconds"])
    assert e["goal_op"] == "<=" and e["goal"] == 8.0 and e["ratio"] == e["cores_per_gpu"]
