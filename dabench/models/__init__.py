"""dabench's model zoo: Depth Anything V1/V2 (timm DINOv2 + DPT) and weight-free baselines.

    from dabench.models import create_model, list_models, model_info
    model = create_model("da2_vits14", checkpoint="depth_anything_v2_vits.pth").eval()
    disparity = model(x)  # x: ImageNet-normalised B×3×H×W, H and W multiples of 14 -> B×H×W

Names are registered lazily (``"module:attr"``), so listing them imports neither torch nor timm.
``HEADS`` maps non-relative head names (metric heads from fine-tuning) to builders
``builder(arch: str, config: dict) -> nn.Module``; checkpoints written by :func:`save_checkpoint`
name their head, and :func:`load_model_from_checkpoint` rebuilds the right module.
"""
from __future__ import annotations

import os
from functools import lru_cache
from typing import Any

from dabench.errors import CheckpointError, ConfigError
from dabench.registry import Registry

MODELS = Registry("model")
HEADS = Registry("head")

_DA = "dabench.models.depth_anything"
_DA_VARIANTS = {
    # name: (version, encoder, description)
    "da1_vits14": (1, "vits", "Depth Anything V1, ViT-S/14"),
    "da1_vitb14": (1, "vitb", "Depth Anything V1, ViT-B/14"),
    "da1_vitl14": (1, "vitl", "Depth Anything V1, ViT-L/14"),
    "da2_vits14": (2, "vits", "Depth Anything V2, ViT-S/14"),
    "da2_vitb14": (2, "vitb", "Depth Anything V2, ViT-B/14"),
    "da2_vitl14": (2, "vitl", "Depth Anything V2, ViT-L/14"),
    "da2_vitg14": (2, "vitg", "Depth Anything V2, ViT-G/14"),
    "da1_test": (1, "test", "tiny V1-style test model (width 32, 4 blocks)"),
    "da2_test": (2, "test6", "tiny V2-style test model (width 32, 6 blocks)"),
}
for _name, (_version, _encoder, _desc) in _DA_VARIANTS.items():
    MODELS.register(_name, f"{_DA}:{_name}", kind="depth_anything", version=_version, encoder=_encoder,
                    output_space="disparity", description=_desc, test=_encoder.startswith("test"))
MODELS.register("constant", "dabench.models.baselines:constant", kind="baseline", version=None, encoder=None,
                output_space="disparity", description="constant disparity (no weights)", test=True)
MODELS.register("horizon_prior", "dabench.models.baselines:horizon_prior", kind="baseline", version=None,
                encoder=None, output_space="disparity",
                description="flat-ground prior: disparity linear below a mid-image horizon (no weights)", test=True)

# Metric heads are implemented by the fine-tuning code; registered lazily so nothing is imported here.
HEADS.register("metric_zoe", "dabench.finetune.metric_heads:build_metric_model")
HEADS.register("metric_simple", "dabench.finetune.metric_heads:build_metric_model")


def list_models(include_test: bool = True) -> list[str]:
    """Registered model names (sorted); ``include_test=False`` hides the tiny test variants and baselines."""
    names = MODELS.names()
    if not include_test:
        names = [n for n in names if not MODELS.meta(n).get("test")]
    return names


def is_baseline(name: str) -> bool:
    return MODELS.meta(name).get("kind") == "baseline"


def create_model(name: str, checkpoint: str | os.PathLike | None = None, **kwargs: Any):
    """Build model ``name``; with ``checkpoint`` (``.pth`` or ``.safetensors``) load its weights strictly.

    A dabench safetensors file whose ``dabench.head`` is not ``"relative"`` is built through
    ``HEADS`` (e.g. a metric-depth model) and must name the same ``dabench.arch``.
    Without a checkpoint the weights are random (baselines have none).
    """
    MODELS.check(name)
    if checkpoint is None:
        model = MODELS.get(name)(**kwargs)
        model.arch = name
        model.checkpoint_path = None
        return model
    from dabench.models import checkpoint as ckpt

    if is_baseline(name):
        raise ConfigError(f"model {name!r} is a weight-free baseline; it takes no checkpoint (got {checkpoint})")
    meta = ckpt.read_metadata(checkpoint)
    arch = meta.get(ckpt.META_ARCH)
    if arch is not None and arch != name:
        raise CheckpointError(f"checkpoint {checkpoint} was written for {arch!r}, not {name!r}; "
                              f"use --model {arch} (or load_model_from_checkpoint)")
    head = meta.get(ckpt.META_HEAD, ckpt.RELATIVE_HEAD)
    if head == ckpt.RELATIVE_HEAD:
        model = MODELS.get(name)(**kwargs)
    else:
        builder = HEADS.get(head)
        model = builder(name, ckpt.checkpoint_config(meta, checkpoint))
    sd = ckpt.read_state_dict(checkpoint)
    ckpt.load_state_dict_strict(model, sd, checkpoint, arch=name)
    model.arch = name
    model.checkpoint_path = str(checkpoint)
    if meta.get(ckpt.META_INPUT_SIZE):
        model.input_size = int(meta[ckpt.META_INPUT_SIZE])
    return model


def load_model_from_checkpoint(path: str | os.PathLike):
    """Rebuild a model from a dabench safetensors file (its metadata names the arch and head)."""
    from dabench.models import checkpoint as ckpt

    meta = ckpt.read_metadata(path)
    arch = meta.get(ckpt.META_ARCH)
    if not arch:
        raise CheckpointError(f"checkpoint {path} has no {ckpt.META_ARCH} metadata (official .pth files do not "
                              "say which model they belong to); use create_model(NAME, checkpoint=path)")
    if arch not in MODELS:
        raise CheckpointError(f"checkpoint {path} names unknown model {arch!r}; known: {', '.join(MODELS.names())}")
    return create_model(arch, checkpoint=path)


def save_checkpoint(model, path: str | os.PathLike, arch: str, head: str = "relative", config: dict | None = None,
                    extra_metadata: dict | None = None):
    """Write ``model`` as safetensors with ``dabench.arch``/``dabench.head``/``dabench.config`` metadata (atomic)."""
    from dabench.models.checkpoint import save_checkpoint as _save

    return _save(model, path, arch, head=head, config=config, extra_metadata=extra_metadata)


def load_encoder_weights(model, path: str | os.PathLike) -> None:
    """Load DINOv2 / timm / Depth Anything encoder weights into ``model.pretrained`` (see
    ``dabench.models.checkpoint.load_encoder_weights``); the decoder is left as it is."""
    from dabench.models.checkpoint import load_encoder_weights as _load

    _load(model, path)


@lru_cache(maxsize=None)
def _param_count(name: str) -> int:
    import torch

    if is_baseline(name):
        return 0
    with torch.device("meta"):  # no memory, no init cost: ViT-G builds instantly
        model = MODELS.get(name)()
    return int(sum(p.numel() for p in model.parameters()))


def model_info(name: str) -> dict[str, Any]:
    """Facts about a registered model: ``params`` (int), ``encoder``, ``version``, ``output_space``, ..."""
    meta = dict(MODELS.meta(name))
    info: dict[str, Any] = {"name": name, "kind": meta["kind"], "version": meta["version"],
                            "encoder": meta["encoder"], "output_space": meta["output_space"],
                            "output": meta["output_space"], "description": meta["description"],
                            "test": meta["test"], "params": _param_count(name)}
    if meta["kind"] == "depth_anything":
        from dabench.models.depth_anything import CONFIGS, official_tap_indices

        cfg = CONFIGS[name]
        info.update(taps=list(official_tap_indices(name)), features=cfg.features, out_channels=list(cfg.out_channels))
    return info


__all__ = ["MODELS", "HEADS", "create_model", "list_models", "model_info", "load_model_from_checkpoint",
           "save_checkpoint", "load_encoder_weights", "is_baseline"]
