"""Tiny random transformers depth models saved as local snapshot folders (offline, seconds).

Weights are reset to PyTorch's default init and perturbed, and one-channel output convolutions get a
positive bias and weights, so the final ReLUs do not zero the output and equality checks are not vacuous.
"""
from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

KINDS = ("dpt", "depth_anything", "depth_anything_metric", "zoedepth", "depth_pro", "glpn")


def _perturb(model: nn.Module, seed: int = 0, positive_head: bool = True) -> nn.Module:
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d, nn.Linear)):
                m.reset_parameters()
        for p in model.parameters():
            p.add_(0.2 * torch.randn(p.shape, generator=g))
        for m in model.modules() if positive_head else ():  # (a sigmoid head needs no help)
            if isinstance(m, nn.Conv2d) and m.out_channels == 1 and m.bias is not None:
                m.weight.abs_()  # its input comes out of a ReLU: a non-negative sum, never clipped to 0
                m.bias.fill_(1.0)
    return model


def _dinov2(**kw):
    import transformers as T

    return T.Dinov2Config(hidden_size=32, num_hidden_layers=4, num_attention_heads=2, intermediate_size=64,
                          image_size=56, patch_size=14, out_features=["stage1", "stage2", "stage3", "stage4"], **kw)


def build(kind: str):
    """``(model, image_processor)`` of a tiny random model of ``kind`` (one of ``KINDS``)."""
    import transformers as T

    torch.manual_seed(0)
    if kind == "dpt":  # as Intel/dpt-large: plain ViT, fixed square input
        cfg = T.DPTConfig(hidden_size=32, num_hidden_layers=4, num_attention_heads=2, intermediate_size=64,
                          image_size=32, patch_size=8, backbone_out_indices=[0, 1, 2, 3],
                          neck_hidden_sizes=[8, 16, 32, 32], fusion_hidden_size=16, readout_type="project")
        model = T.DPTForDepthEstimation(cfg)
        proc = T.DPTImageProcessor(size={"height": 32, "width": 32}, keep_aspect_ratio=False)
    elif kind in ("depth_anything", "depth_anything_metric"):
        extra = {"depth_estimation_type": "metric", "max_depth": 20} if kind.endswith("metric") else {}
        cfg = T.DepthAnythingConfig(backbone_config=_dinov2(reshape_hidden_states=False),
                                    neck_hidden_sizes=[8, 16, 32, 32], fusion_hidden_size=16, head_hidden_size=8,
                                    reassemble_hidden_size=32, patch_size=14, **extra)
        model = T.DepthAnythingForDepthEstimation(cfg)
        proc = T.DPTImageProcessor(size={"height": 56, "width": 56}, keep_aspect_ratio=True, ensure_multiple_of=14,
                                   do_pad=False, resample=3)
    elif kind == "zoedepth":
        bb = T.BeitConfig(hidden_size=32, num_hidden_layers=4, num_attention_heads=2, intermediate_size=64,
                          image_size=32, patch_size=8, out_features=["stage1", "stage2", "stage3", "stage4"],
                          use_relative_position_bias=True, reshape_hidden_states=False)
        cfg = T.ZoeDepthConfig(backbone_config=bb, neck_hidden_sizes=[8, 16, 32, 32], fusion_hidden_size=16,
                               reassemble_hidden_size=32, bottleneck_features=16, num_attractors=[4, 4, 2, 2],
                               bin_embedding_dim=8, patch_size=8, num_relative_features=8)
        model = T.ZoeDepthForDepthEstimation(cfg)
        proc = T.ZoeDepthImageProcessor(size={"height": 32, "width": 32}, keep_aspect_ratio=True, ensure_multiple_of=8)
    elif kind == "depth_pro":
        cfg = T.DepthProConfig(image_model_config=_dinov2(), patch_model_config=_dinov2(), fov_model_config=_dinov2(),
                               patch_size=56, scaled_images_ratios=[0.5, 1.0], scaled_images_overlap_ratios=[0.0, 0.25],
                               scaled_images_feature_dims=[32, 32], intermediate_hook_ids=[1, 0],
                               intermediate_feature_dims=[16, 16], fusion_hidden_size=16, use_fov_model=True)
        model = T.DepthProForDepthEstimation(cfg)
        proc = T.DepthProImageProcessor(size={"height": 112, "width": 112})
    elif kind == "glpn":
        cfg = T.GLPNConfig(num_encoder_blocks=4, depths=[1, 1, 1, 1], sr_ratios=[4, 2, 1, 1],
                           hidden_sizes=[8, 16, 32, 32], patch_sizes=[7, 3, 3, 3], strides=[4, 2, 2, 2],
                           num_attention_heads=[1, 1, 2, 2], mlp_ratios=[2, 2, 2, 2], decoder_hidden_size=16)
        model = T.GLPNForDepthEstimation(cfg)
        proc = T.GLPNImageProcessor(size_divisor=32)
    else:
        raise ValueError(kind)
    return _perturb(model.eval(), positive_head=kind != "depth_anything_metric"), proc


def save(kind: str, folder: Path) -> Path:
    """Write a tiny ``kind`` snapshot (config.json, model.safetensors, preprocessor_config.json) to ``folder``."""
    model, proc = build(kind)
    model.save_pretrained(folder)
    proc.save_pretrained(folder)
    return folder
