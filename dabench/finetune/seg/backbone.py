"""The Depth Anything encoder as an mmsegmentation backbone (``type='DepthAnythingEncoder'``).

It wraps the timm DINOv2 ViT of a dabench model (``dabench.models``) and returns the encoder
blocks that Depth Anything taps for its DPT decoder (V1: the last four blocks; V2: fixed indices
per size), each as a ``B×C×(H/14)×(W/14)`` map, ready for mmseg's ``Feature2Pyramid`` neck.

``init`` loads the encoder from an official Depth Anything ``.pth`` (``pretrained.*`` keys,
read with ``torch.load(weights_only=True)``) or a dabench ``.safetensors`` file; the decoder
(``depth_head.*``) is dropped. Loading is strict: a checkpoint of another size is an error naming
the file.
"""
from __future__ import annotations

import os
from pathlib import Path

import torch
import torch.nn.functional as F
from mmengine.model import BaseModule
from torch import nn

from dabench.errors import CheckpointError, ConfigError
from dabench.finetune.seg.mmcv_compat import ensure_mmcv_ops

ensure_mmcv_ops()
from mmseg.registry import MODELS  # noqa: E402

from dabench.models.dinov2 import PATCH_SIZE as PATCH  # noqa: E402  (the Depth Anything family's patch)


def infer_arch(checkpoint: str | os.PathLike, preferred: str | None = None) -> str:
    """The dabench model name a checkpoint belongs to.

    dabench safetensors name it in their metadata. Official ``.pth`` files do not: the encoder
    width and depth give the size; V1 vs V2 (same shapes) is taken from ``preferred`` when it
    matches, else from the file name (``..._v2_...`` → V2).
    """
    from dabench.models import checkpoint as ckpt

    meta = ckpt.read_metadata(checkpoint)
    if meta.get(ckpt.META_ARCH):
        return meta[ckpt.META_ARCH]
    sd = ckpt.to_dabench_keys(ckpt.read_shapes(checkpoint))  # shapes only: no tensor data is read
    matches = ckpt._matching_archs(sd)
    if not matches:
        raise CheckpointError(f"checkpoint {checkpoint} holds {ckpt.describe_state_dict(sd)}, "
                              "which matches no registered Depth Anything model")
    if preferred in matches:
        return preferred
    stem = Path(checkpoint).name.lower()
    version = "da2_" if ("v2" in stem or "depth_anything_v2" in stem) else "da1_"
    versioned = [m for m in matches if m.startswith(version)]
    return (versioned or matches)[0]


@MODELS.register_module()
class DepthAnythingEncoder(BaseModule):
    """Depth Anything (DINOv2) encoder returning its four tapped blocks as feature maps.

    Args:
        arch: a registered dabench Depth Anything model (``da2_vits14``, ``da1_vitl14``, ``da2_test``...).
        init: checkpoint to load the encoder from (official ``.pth`` or dabench ``.safetensors``);
            ``None`` keeps the random initialisation.
        freeze: keep the encoder fixed (no gradients, eval mode).
        out_indices: encoder blocks to return; default = the ones the model's DPT decoder taps.
    """

    def __init__(self, arch: str = "da2_vits14", init: str | None = None, freeze: bool = False,
                 out_indices: list[int] | None = None, init_cfg=None):
        super().__init__(init_cfg=init_cfg)
        from dabench.models import MODELS as DABENCH_MODELS, create_model, is_baseline

        DABENCH_MODELS.check(arch)
        if is_baseline(arch):
            raise ConfigError(f"backbone arch {arch!r} is a weight-free baseline, not a Depth Anything encoder")
        self.arch = arch
        self.init = str(init) if init else None
        if self.init:
            ckpt_arch = infer_arch(self.init, preferred=arch)
            if ckpt_arch != arch:
                raise CheckpointError(f"checkpoint {self.init} belongs to {ckpt_arch!r}, but the config's backbone "
                                      f"is {arch!r}; set model.backbone.arch={ckpt_arch!r} (the CLI does this for --init)")
        full = create_model(arch, checkpoint=self.init)  # strict load of the whole DA model
        if not hasattr(full, "pretrained"):
            raise CheckpointError(f"checkpoint {self.init} did not build a Depth Anything model with an encoder")
        self.encoder: nn.Module = full.pretrained
        self.out_indices = list(out_indices) if out_indices is not None else list(full.intermediate_layer_idx)
        self.embed_dim = int(self.encoder.embed_dim)
        self.freeze = bool(freeze)
        del full
        if self.freeze:
            for p in self.encoder.parameters():
                p.requires_grad_(False)

    def init_weights(self):
        # the encoder is initialised at construction (random or from `init`); mmengine's
        # init_weights must not overwrite loaded weights
        pass

    def train(self, mode: bool = True):
        super().train(mode)
        if self.freeze:
            self.encoder.eval()
        return self

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, ...]:
        from dabench.models.dinov2 import get_intermediate_layers

        b, _, h, w = x.shape
        if h % PATCH or w % PATCH:
            # resample to the nearest multiples of 14 so the token grid spans the whole image
            h, w = max(PATCH, round(h / PATCH) * PATCH), max(PATCH, round(w / PATCH) * PATCH)
            x = F.interpolate(x, size=(h, w), mode="bilinear", align_corners=False)
        gh, gw = h // PATCH, w // PATCH
        with torch.set_grad_enabled(torch.is_grad_enabled() and not self.freeze):
            layers = get_intermediate_layers(self.encoder, x, self.out_indices)
        return tuple(tokens.transpose(1, 2).reshape(b, self.embed_dim, gh, gw).contiguous()
                     for tokens, _cls in layers)
